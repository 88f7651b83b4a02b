"""The slow manifold of a rule with memory, as an exact power series in h.

For (theta', s') = update(theta, s), with s_i' = decay_i s_i + ... and every
|decay_i| < 1, there is an invariant graph s = S(theta) = S_0 + h S_1 + ...:

    S(theta') = s'(theta, S(theta))        (invariance).

Writing R(S) = s'(theta, S) - S(theta'(theta, S)), R vanishes on the manifold
and its linearization at h = 0 is (decay - 1) dS. The quasi-Newton iteration

    S <- S + R(S) / (1 - decay)

fixes one more power of h per sweep (when the coupling between states is
triangular, as in Adam or AdaBelief, after at most m sweeps per order), so it
terminates exactly on truncated series. The restricted map theta -> theta'(theta, S(theta))
is the one-step rule whose modified equation describes the iterates once the
transients (decay^n) have died out.
"""

from __future__ import annotations

import sympy as sp

from ..._errors import InconsistentRuleError
from ..series._jet import ScalarSeries, VectorSeries
from ..series._oracle import taylor_at

__all__ = ["settle", "slow_manifold_step"]


def settle(rule, theta, grad, h, *, zero_state, compose, vanishes, order: int, state0=None):
    """The quasi-Newton sweeps on any representation: returns (theta', states on the slow manifold).

    `zero_state()` is an empty state, `compose(S, point)` evaluates S at a point
    theta + O(h), `vanishes(residual)` is an exact zero test. Used on truncated
    series (concrete view) and on B-series (`_bseries_step`, coordinate-free view).
    `state0` starts the sweeps from a known leading part instead of zeros.
    """
    decays = [sp.sympify(d) for d in rule.decays()]
    state = [zero_state() for _ in decays] if state0 is None else list(state0)
    sweeps = (order + 2) * (len(decays) + 1) + 2
    for _ in range(sweeps):
        theta_next, state_next = rule.update(theta, tuple(state), grad, h, None)
        if len(state_next) != len(decays):
            raise InconsistentRuleError(
                f"the update of {rule.name} must return (theta, state) with {len(decays)} state vector(s)"
            )
        residual = [s_next - compose(s, theta_next) for s, s_next in zip(state, state_next)]
        if all(vanishes(r) for r in residual):
            return theta_next, state
        state = [s + r / (1 - d) for s, r, d in zip(state, residual, decays)]
    raise InconsistentRuleError(
        f"the state recursion of {rule.name} did not settle on a slow manifold after {sweeps} sweeps: "
        "check that decays() gives each state's contraction factor at h = 0 and that it lies in [0, 1)"
    )


def slow_manifold_step(rule, theta: VectorSeries, grad, h: ScalarSeries) -> tuple[VectorSeries, list]:
    """(theta' = update(theta, S_h(theta)), [S_h]) with S_h the slow manifold, to the truncation of theta."""
    algebra = theta.algebra

    def zero_state():
        return VectorSeries.constant(algebra, [algebra.zero] * theta.dim, theta.order)

    def vanishes(residual) -> bool:
        _check_state(rule, [residual], 1)
        return _vanishes(algebra, residual)

    return settle(rule, theta, grad, h, zero_state=zero_state, compose=_compose, vanishes=vanishes, order=theta.order)


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


def _vanishes(algebra, residual: VectorSeries) -> bool:
    """Exact zero test; falls back to expanded expressions where atoms are not independent (sqrt(v)^2 = v)."""
    coefficients = [c for coeff in residual.coeffs[: residual.valid] for c in coeff]
    if all(algebra.is_zero(c) for c in coefficients):
        return True
    return all(sp.expand(algebra.to_expr(c)) == 0 for c in coefficients if not algebra.is_zero(c))
