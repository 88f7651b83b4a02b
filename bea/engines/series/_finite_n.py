"""The finite-n view of a rule with memory: the piecewise modified field on [n h, (n+1) h].

Started from its `init` state (zeros), a rule with memory is not yet on its slow
manifold: at step n the state still carries transients beta^{n+1}, rho^{n+1}.
Following Cattaneo, Klusowski & Shigida (arXiv:2309.00079, Theorems 3.1 and
4.2), the iterates are matched to first order by the piecewise ODE

    theta' = f_0^{(n)} + h f_1^{(n)}    on [n h, (n+1) h],

where every earlier iterate is expressed through the current one,
theta_k = theta_n - h sum_{l=k}^{n-1} f_0^{(l)}(theta_n) + O(h^2). Here the
rule's own `update` is run over that history on exact series (a general
mechanism, no formula per optimizer), and f^{(n)} follows from the step
theta_n -> theta_{n+1} by the correction recursion. As n grows it tends to the
large-n field of `modified_equation`.
"""

from __future__ import annotations

import numbers

from ..._errors import InvalidOrderError, UnknownSymbolError
from ._jet import VectorSeries

__all__ = ["finite_n_runner"]

MAX_STEP_INDEX = 200  # the history is unrolled: n + 1 updates on exact series


def finite_n_runner(n: int):
    """A step runner for `expand_step`: theta_{n+1} as a series in h about theta = theta_n."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise InvalidOrderError(f"the step index n must be a non-negative integer, got {n!r}")
    if n > MAX_STEP_INDEX:
        raise InvalidOrderError(
            f"n = {n} unrolls {n + 1} exact updates; above {MAX_STEP_INDEX} use the large-n field "
            "(bea.modified_equation), which the finite-n field approaches like decay^n"
        )

    def run(rule, theta: VectorSeries, grad, h) -> VectorSeries:
        if not hasattr(rule, "decays"):
            raise UnknownSymbolError(f"{rule.name} keeps no state: its field does not depend on n")
        algebra = theta.algebra
        zero = tuple(algebra.zero for _ in range(theta.dim))

        def constant(vector) -> VectorSeries:
            return VectorSeries(algebra, [vector] + [zero] * theta.order)

        # f_0^{(l)}(theta) for l < n: the O(h) drift of step l with the whole history at theta.
        drifts = []
        state = rule.init(theta, grad)
        for l in range(n):
            moved, state = rule.update(theta, state, grad, h, l)
            drifts.append(constant((moved - theta).coeffs[1]))
        # The history theta_k = theta - h sum_{l >= k} f_0^{(l)}, then the step from theta_n = theta.
        state = rule.init(theta, grad)
        for k in range(n + 1):
            behind = sum(drifts[k:], constant(zero))
            moved, state = rule.update(theta - h * behind, state, grad, h, k)
        return moved

    return run
