"""The gradient oracle a rule sees while the engine expands it.

A rule's step calls `grad(x)` (and `grad.hvp(x, v)`, `grad.value(x)`, or
`grad[k]` for its k-th loss) at points x that are truncated series in h,
x = x_0 + delta(h) with delta(0) = 0. Every such evaluation is an exact Taylor
expansion of the loss's derivatives about x_0,

    d^beta E(x_0 + delta) = sum_{|alpha| <= N} d^{beta+alpha} E(x_0) delta^alpha / alpha!,

truncated at h^N (delta^alpha = O(h^|alpha|)). Derivatives of E are
computed once per multi-index and cached; x_0 is almost always theta itself,
but any base point is handled by substitution (SAM with an independent radius
rho evaluates at theta + rho grad E(theta)).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations_with_replacement
from math import factorial

from sympy import Rational

from ._algebra import Algebra
from ._jet import ScalarSeries, VectorSeries

__all__ = ["PointOracle", "SymbolicOracle", "taylor_at"]


class PointOracle:
    """What the series oracles share: checking that a rule evaluates at the parameter vector, and numbering the
    distinct base points theta + O(h) they are evaluated at (0 is theta itself), whose derivatives are cached."""

    _shared: dict
    algebra: Algebra

    def _as_point(self, x) -> VectorSeries:
        if not isinstance(x, VectorSeries):
            raise TypeError(
                "the gradient oracle was called with something that is not the parameter vector "
                f"(got {type(x).__name__}); call grad(theta + ...) on expressions built from theta"
            )
        return x

    def _base_index(self, x0: tuple) -> int:
        if x0 == self.algebra.identity:
            return 0
        points = self._shared["points"]
        for k, point in enumerate(points):
            if point == x0:
                return k + 1
        points.append(x0)
        return len(points)


class SymbolicOracle(PointOracle):
    """Gradient oracle over exact series; `oracle[k]` is the oracle of the k-th loss."""

    def __init__(self, algebra: Algebra, losses: Sequence, order: int, loss_index: int = 0, _shared=None):
        self.algebra = algebra
        self.order = order
        self.loss_index = loss_index
        # The derivative and base-point caches are shared by all per-loss views.
        self._shared = _shared if _shared is not None else {"losses": list(losses), "derivs": {}, "points": []}

    @property
    def n_losses(self) -> int:
        return len(self._shared["losses"])

    def __getitem__(self, k: int) -> SymbolicOracle:
        if not 0 <= k < self.n_losses:
            raise IndexError(f"the rule asked for loss {k}, but {self.n_losses} loss(es) were given")
        return SymbolicOracle(self.algebra, (), self.order, k, self._shared)

    # -- the three questions a rule may ask --------------------------------------------------
    def __call__(self, x: VectorSeries) -> VectorSeries:
        """grad E_k(x)."""
        x = self._as_point(x)
        return VectorSeries.stack([self._derivative_at((i,), x) for i in range(x.dim)])

    def value(self, x: VectorSeries) -> ScalarSeries:
        """E_k(x)."""
        return self._derivative_at((), self._as_point(x))

    def hvp(self, x: VectorSeries, v: VectorSeries) -> VectorSeries:
        """Hessian of E_k at x applied to v."""
        x = self._as_point(x)
        rows = []
        for i in range(x.dim):
            rows.append(sum((self._derivative_at((i, j), x) * v.component(j) for j in range(x.dim)), 0))
        return VectorSeries.stack(rows)

    # -- machinery ----------------------------------------------------------------------------
    def _derivative(self, multi_index: tuple[int, ...], base: int):
        """d^multi_index E_k at base point number `base` (0 is theta itself)."""
        key = (self.loss_index, multi_index, base)
        cache = self._shared["derivs"]
        if key not in cache:
            if base:
                point = self._shared["points"][base - 1]
                cache[key] = self.algebra.substitute(self._derivative(multi_index, 0), point)
            elif not multi_index:
                cache[key] = self._shared["losses"][self.loss_index]
            else:
                cache[key] = self.algebra.diff(self._derivative(multi_index[:-1], 0), multi_index[-1])
        return cache[key]

    def _derivative_at(self, beta: tuple[int, ...], x: VectorSeries) -> ScalarSeries:
        base = self._base_index(x.coeffs[0])
        return taylor_at(self.algebra, lambda alpha: self._derivative(tuple(sorted(beta + alpha)), base), x)


def taylor_at(algebra: Algebra, derivative, x: VectorSeries) -> ScalarSeries:
    """sum_alpha derivative(alpha) delta^alpha / alpha! for x = x_0 + delta(h), truncated like x.

    `derivative(alpha)` returns the partial derivative of the expanded function at
    x_0 for a sorted multi-index alpha.
    """
    n, order = x.dim, len(x.coeffs) - 1
    zero = algebra.zero
    delta = [x.component(j) for j in range(n)]
    for d in delta:
        d.coeffs[0] = zero
    moving = [j for j in range(n) if any(not algebra.is_zero(c) for c in delta[j].coeffs)]
    total = [zero] * (order + 1)
    powers: dict[tuple[int, ...], ScalarSeries] = {(): None}
    for m in range(order + 1):
        for alpha in combinations_with_replacement(moving, m):
            if m:
                prev = powers[alpha[:-1]]
                powers[alpha] = delta[alpha[-1]] if prev is None else prev * delta[alpha[-1]]
            deriv = derivative(alpha)
            if algebra.is_zero(deriv):
                continue
            if m == 0:
                total[0] = total[0] + deriv
                continue
            weight = _inverse_multinomial(alpha)
            for k, c in enumerate(powers[alpha].coeffs):
                if not algebra.is_zero(c):
                    total[k] = total[k] + algebra.mul(deriv, c) * weight
    return ScalarSeries(algebra, total, x.valid)


def _inverse_multinomial(alpha: tuple[int, ...]):
    """1/alpha! for a multi-index given as a sorted tuple of indices."""
    denominator = 1
    run = 1
    for i in range(1, len(alpha) + 1):
        if i < len(alpha) and alpha[i] == alpha[i - 1]:
            run += 1
        else:
            denominator *= factorial(run)
            run = 1
    return Rational(1, denominator)
