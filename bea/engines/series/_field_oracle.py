"""The gradient oracle of a general vector field: a rule applied to theta' = f(theta).

Every rule is written for the gradient flow theta' = -grad E: its step calls
`grad(x)` and `grad.hvp(x, v)`. On a field f that need not be a gradient
(Lotka-Volterra, a pendulum, a game), the same step runs with

    grad(x) := -f(x),        grad.hvp(x, v) := -f'(x) v,

so gradient descent becomes explicit Euler on f and a Runge-Kutta map its
Runge-Kutta method on f (Hairer, Lubich & Wanner, Geometric Numerical
Integration, Sec. IX.1, doi:10.1007/3-540-30666-8). `grad.value(x)` has no
meaning (a general field has no loss) and is refused.

The field may depend on the step size polynomially, f = f^0 + h f^1 + h^2 f^2 + ...
(modifying integrators build such fields). At a point x = x_0 + delta(h),
component i is the sum over k of h^k times the Taylor series of f_i^k about x_0:

    f_i^k(x_0 + delta) = sum_alpha d^alpha f_i^k(x_0) delta^alpha / alpha!,

where only the derivative indices alpha commute (unlike d^beta E, the component
index i does not join them).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..._errors import UnsupportedError
from ._algebra import Algebra
from ._jet import ScalarSeries, VectorSeries
from ._oracle import PointOracle, taylor_at

__all__ = ["FieldOracle"]


class FieldOracle(PointOracle):
    """The oracle of fields: `fields[k][i][m]` is the h^m part of component i of field k (algebra elements)."""

    def __init__(self, algebra: Algebra, fields: Sequence, order: int, field_index: int = 0, _shared=None):
        self.algebra = algebra
        self.order = order
        self.field_index = field_index
        self._shared = _shared if _shared is not None else {"fields": list(fields), "derivs": {}, "points": []}

    @property
    def n_losses(self) -> int:
        return len(self._shared["fields"])

    def __getitem__(self, k: int) -> FieldOracle:
        if not 0 <= k < self.n_losses:
            raise IndexError(f"the rule asked for field {k}, but {self.n_losses} field(s) were given")
        return FieldOracle(self.algebra, (), self.order, k, self._shared)

    def __call__(self, x: VectorSeries) -> VectorSeries:
        """-f(x): the 'gradient' whose descent is the flow of f."""
        x = self._as_point(x)
        return VectorSeries.stack([-self._component_at(i, (), x) for i in range(x.dim)])

    def hvp(self, x: VectorSeries, v: VectorSeries) -> VectorSeries:
        """-f'(x) v (the Jacobian of f, which need not be symmetric, applied to v)."""
        x = self._as_point(x)
        rows = []
        for i in range(x.dim):
            rows.append(-sum((self._component_at(i, (j,), x) * v.component(j) for j in range(x.dim)), 0))
        return VectorSeries.stack(rows)

    def value(self, x):
        raise UnsupportedError(
            "the rule evaluates the loss (grad.value), but it was given a vector field (field=...), which has no "
            "loss: a general field need not be a gradient. Derive it on a loss (loss=..., params=...) instead, or "
            "use a rule that only calls grad(x) and grad.hvp(x, v)"
        )

    # -- machinery ----------------------------------------------------------------------------
    def _as_point(self, x) -> VectorSeries:
        x = super()._as_point(x)
        if x.dim != len(self._shared["fields"][self.field_index]):
            raise UnsupportedError(
                f"the rule evaluated the field at a vector of {x.dim} components, but the field has "
                f"{len(self._shared['fields'][self.field_index])}"
            )
        return x

    def _derivative(self, i: int, power: int, alpha: tuple[int, ...], base: int):
        """d^alpha f_i^power at base point number `base` (0 is theta itself); alpha sorted."""
        key = (self.field_index, i, power, alpha, base)
        cache = self._shared["derivs"]
        if key not in cache:
            if base:
                point = self._shared["points"][base - 1]
                cache[key] = self.algebra.substitute(self._derivative(i, power, alpha, 0), point)
            elif not alpha:
                cache[key] = self._shared["fields"][self.field_index][i][power]
            else:
                cache[key] = self.algebra.diff(self._derivative(i, power, alpha[:-1], 0), alpha[-1])
        return cache[key]

    def _component_at(self, i: int, beta: tuple[int, ...], x: VectorSeries) -> ScalarSeries:
        """d^beta f_i(x) = sum_m h^m d^beta f_i^m(x), truncated like x."""
        base = self._base_index(x.coeffs[0])
        algebra, n = self.algebra, len(x.coeffs)
        total = [algebra.zero] * n
        valid = x.valid
        for power, part in enumerate(self._shared["fields"][self.field_index][i]):
            if power >= n or algebra.is_zero(part):
                continue
            series = taylor_at(algebra, lambda alpha: self._derivative(i, power, tuple(sorted(beta + alpha)), base), x)
            for k in range(n - power):
                total[k + power] = total[k + power] + series.coeffs[k]
            valid = min(valid, series.valid + power)
        return ScalarSeries(algebra, total, valid)
