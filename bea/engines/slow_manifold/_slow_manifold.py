"""The slow manifold of a rule with memory, as an exact power series in h.

For (theta', s') = update(theta, s), with s_i' = decay_i s_i + ... and every
|decay_i| < 1, there is an invariant graph s = S(theta) = S_0 + h S_1 + ...:

    S(theta') = s'(theta, S(theta))        (invariance).

Writing R(S) = s'(theta, S) - S(theta'(theta, S)), R vanishes on the manifold
and its linearization at h = 0 is (decay - 1) dS. The quasi-Newton iteration

    S <- S + R(S) / (1 - decay)

fixes one more power of h per sweep (when the coupling between states is
triangular, as in Adam or AdaBelief, after at most m sweeps per order), so it
terminates exactly on truncated series. The sweeps run on series truncated after
h^1, h^2, ..., h^order in turn (`Truncations.at`): the sweep that fixes h^k needs
nothing beyond h^k, and a sweep's cost grows steeply with the truncation, so all
but the last two sweeps are cheap (heavy ball at order 4: 7 sweeps at full
truncation before, 2 now). The restricted map theta -> theta'(theta, S(theta))
is the one-step rule whose modified equation describes the iterates once the
transients (decay^n) have died out.
"""

from __future__ import annotations

import sympy as sp

from ..._errors import InconsistentRuleError
from ..series._jet import ScalarSeries, VectorSeries
from ..series._oracle import taylor_at

__all__ = ["Truncations", "settle", "slow_manifold_step"]


class Truncations:
    """What `settle` needs of a representation (series, B-series, element series); subclasses fill it in.

    at(k) -> (theta, grad, h) truncated after h^k; resize(state, k) pads (with zeros) or cuts a state to
    h^k; zero_state(k); compose(S, point) = S(point) for a point theta + O(h); lowest(residual, start) is
    the lowest power of h from h^start on whose coefficient is not exactly zero (None when all vanish).
    """

    def at(self, k: int):  # pragma: no cover - interface
        raise NotImplementedError

    def zero_state(self, k: int):  # pragma: no cover - interface
        raise NotImplementedError

    def resize(self, state, k: int):  # pragma: no cover - interface
        raise NotImplementedError

    def compose(self, state, point):  # pragma: no cover - interface
        raise NotImplementedError

    def lowest(self, residual, start: int) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError


def settle(rule, truncations: Truncations, *, order: int, state0=None):
    """The quasi-Newton sweeps, truncation by truncation: (theta', states on the slow manifold) after h^order.

    At truncation k the state is exact through h^{k-1} (checked: the residual's lower coefficients
    vanish), one sweep fixes h^k, and the next truncation checks it; the last truncation sweeps until
    the whole residual vanishes. A sweep that leaves a lower power wrong (coupled states) is repeated
    at the same truncation. `state0` starts the sweeps from a known leading part instead of zeros.
    The residual's h^i coefficient depends only on the state's coefficients through h^i, so after a
    sweep that found the first nonzero one at h^j, those below stay zero and are not tested again
    (exact zero tests are the expensive part where atoms are related, sqrt(v)^2 = v).
    """
    decays = [sp.sympify(d) for d in rule.decays()]
    level = min(1, order)
    state = [truncations.zero_state(level) for _ in decays] if state0 is None else \
        [truncations.resize(s, level) for s in state0]
    budget = (order + 2) * (len(decays) + 1) + 2
    known = 0  # the residual's coefficients below h^known vanish
    for _ in range(budget):
        theta, grad, h = truncations.at(level)
        theta_next, state_next = rule.update(theta, tuple(state), grad, h, None)
        if len(state_next) != len(decays):
            raise InconsistentRuleError(
                f"the update of {rule.name} must return (theta, state) with {len(decays)} state vector(s)"
            )
        residual = [s_next - truncations.compose(s, theta_next) for s, s_next in zip(state, state_next)]
        lowest = min((k for r in residual if (k := truncations.lowest(r, known)) is not None), default=None)
        if lowest is None and level == order:
            return theta_next, state
        if lowest is not None:
            state = [s + r / (1 - d) for s, r, d in zip(state, residual, decays)]
            known = lowest
        else:
            known = level + 1  # every coefficient through h^level vanished (tested up to the exact ones)
        if (lowest is None or lowest >= level) and level < order:
            level += 1  # exact through h^{level - 1}; the next truncation fixes h^level and checks this one
            state = [truncations.resize(s, level) for s in state]
    raise InconsistentRuleError(
        f"the state recursion of {rule.name} did not settle on a slow manifold after {budget} sweeps: "
        "check that decays() gives each state's contraction factor at h = 0 and that it lies in [0, 1)"
    )


class _SeriesTruncations(Truncations):
    """Truncated power series in h with coefficients in the concrete engine's algebra."""

    def __init__(self, rule, theta: VectorSeries, grad, h: ScalarSeries):
        self.rule, self.theta, self.grad, self.h = rule, theta, grad, h
        self.algebra = theta.algebra

    def at(self, k):
        return (VectorSeries(self.algebra, self.theta.coeffs[: k + 1], min(self.theta.valid, k + 1)), self.grad,
                ScalarSeries(self.algebra, self.h.coeffs[: k + 1], min(self.h.valid, k + 1)))

    def zero_state(self, k):
        return VectorSeries.constant(self.algebra, [self.algebra.zero] * self.theta.dim, k)

    def resize(self, state, k):
        _check_state(self.rule, [state], 1)
        zero = [self.algebra.zero] * state.dim
        coeffs = (state.coeffs + [zero] * k)[: k + 1]
        exact = k + 1 if state.valid >= len(state.coeffs) else min(state.valid, k + 1)  # padding is a guess, not a loss
        return VectorSeries(self.algebra, coeffs, exact)

    def compose(self, state, point):
        return _compose(state, point)

    def lowest(self, residual, start):
        _check_state(self.rule, [residual], 1)
        return _lowest(self.algebra, residual, start)


def slow_manifold_step(rule, theta: VectorSeries, grad, h: ScalarSeries) -> tuple[VectorSeries, list]:
    """(theta' = update(theta, S_h(theta)), [S_h]) with S_h the slow manifold, to the truncation of theta."""
    return settle(rule, _SeriesTruncations(rule, theta, grad, h), order=theta.order)


def _check_state(rule, state, expected: int) -> None:
    if len(state) != expected or not all(isinstance(s, VectorSeries) for s in state):
        raise InconsistentRuleError(
            f"the update of {rule.name} must return (theta, state) with {expected} state vector(s) shaped like theta"
        )


def _compose(function: VectorSeries, point: VectorSeries) -> VectorSeries:
    """S(point) for S = sum_k h^k S_k(theta) and a point theta + O(h)."""
    algebra = function.algebra
    if point.coeffs[0] != algebra.identity:
        raise InconsistentRuleError("the update moves theta by O(1) at h = 0; scale its step by h")
    order = point.order
    components = []
    for j in range(function.dim):
        total = ScalarSeries(algebra, [algebra.zero] * (order + 1))
        for k in range(order + 1):
            element = function.coeffs[k][j]
            if algebra.is_zero(element):
                continue
            truncated = VectorSeries(algebra, point.coeffs[: order + 1 - k], point.valid)
            cache: dict = {(): element}

            def derivative(alpha, cache=cache):
                if alpha not in cache:
                    cache[alpha] = algebra.diff(derivative(alpha[:-1]), alpha[-1])
                return cache[alpha]

            value = taylor_at(algebra, derivative, truncated)
            shifted = [algebra.zero] * k + value.coeffs
            total = total + ScalarSeries(algebra, shifted, min(point.valid, value.valid + k))
        components.append(total)
    return VectorSeries.stack(components)


def _lowest(algebra, residual: VectorSeries, start: int) -> int | None:
    """The lowest power of h with a nonzero coefficient, through the exact ones (`Algebra.vanishes`: exact
    also where atoms are not independent, sqrt(v)^2 = v)."""
    for k in range(start, residual.valid):
        if not all(algebra.vanishes(c) for c in residual.coeffs[k]):
            return k
    # Coefficients past the exact ones cannot be confirmed zero: report the first of them, never "all vanish".
    return residual.valid if residual.valid < len(residual.coeffs) else None
