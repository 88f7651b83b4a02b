"""The modified field of a step from its iterates: h f~ = log of the shift, on the iterates' Taylor series.

On the slow manifold the iterates theta_n = Phi_h^n(theta_0) lie on the flow of f~ = f_0 + h f_1
+ ...: theta_n = exp(n h f~)(theta_0) as formal series in h. Newton's forward-difference formula
for a derivative is then exact term by term:

    h f~(theta_0) = log(1 + Delta) theta_0 = sum_{k>=1} (-1)^{k+1} Delta^k theta_0 / k,

with Delta theta_n = theta_{n+1} - theta_n, and Delta^k theta_0 = O(h^k). So f_0, ..., f_p are the
h^1 .. h^{p+1} Taylor coefficients of sum_{n=0}^{p+1} w_n theta_n(h), w_n the weights of the
one-sided difference formula on p + 2 nodes: p + 1 steps. This is the operator form of seed 000's
recursion f_l = d_{l+1} - sum L_{n,k}/n!: log(Phi^*) = h L_f~ (Hairer, Lubich & Wanner, Geometric
Numerical Integration, 2nd ed., Sect. IX.9, doi:10.1007/3-540-30666-8), evaluated on functions
instead of on trees: the Lie derivatives are the jvps that the Taylor coefficients of the composed
steps contain.

The iterates are carried as truncated Taylor series in h (Griewank & Walther, Evaluating Derivatives,
2nd ed., SIAM 2008, ch. 13, doi:10.1137/1.9780898717761), which makes two savings visible that
differentiating the composed steps as one function of h cannot:

- degree: a step is theta' = theta + sum_{b>=1} h^b G_b(theta, s), with G_b = (1/b!) d^b/dh^b of
  the step at h = 0 and fixed (theta, s) (consistency: the h^0 part is theta itself). The h^k
  coefficient of theta' needs G_b along the iterate's series only through h^(k-b), and the state
  enters theta only through the G_b: every nonlinear evaluation (the gradient) is expanded through
  h^p, one order below the p + 1 that the field needs; only the sums reach h^(p+1). For optimizers
  whose update is linear in the learning rate (optax's sgd, adam: checked on the step's jaxpr), the
  G_b with b >= 2 vanish and are not computed.
- sharing: every series starts at the same point (theta_0 and the state's h = 0 value), so the
  h^0 evaluations of all steps are one and the same gradient, and the first step, whose parameters
  do not move with h, is one gradient with no derivative through the network.

Since theta_{n,k} (the h^k coefficient of theta_n) is a polynomial of degree <= k in n with
theta_{0,k} = 0, f_{k-1} is also the order-k difference formula on theta_{0..k,k} alone: a stateful
optimizer's iterates come order by order from `_slow_series` (the slow manifold solved on the
iterates themselves), which provides theta_{n,k} for n <= k only.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

from ._manifold import Contraction
from ._slow_series import slow_iterates
from ._step import Step
from ._truncated import add, expand, scaled, step_expansion

__all__ = ["difference_weights", "modified_terms"]


def difference_weights(order: int) -> list[Fraction]:
    """w_0..w_{order+1}: sum_k=1..order+1 (-1)^{k+1}/k Delta^k as weights on theta_0..theta_{order+1}."""
    nodes = order + 1
    weights = [Fraction(0)] * (nodes + 1)
    for k in range(1, nodes + 1):
        for n in range(k + 1):
            weights[n] += Fraction((-1) ** (k + 1), k) * comb(k, n) * (-1) ** (k - n)
    return weights


def modified_terms(step: Step, order: int, params, *, contraction: Contraction | None, mode: str = "auto") -> list:
    """[f_0, ..., f_order] at `params` (pytrees like params): the module's formula, on the slow manifold
    (exact through h^order) for a step with state (`contraction` not None)."""
    top = order + 1  # the iterates are needed through h^top, everything nonlinear through h^order
    template, degree, coefficients = step_expansion(step, params, top, mode)
    if contraction is not None:  # the state's update is affine in the state (checked by `contraction`)
        thetas = slow_iterates(coefficients, params, step.state_leaves(template), contraction, order, degree, mode)
        return [_difference(thetas, k) for k in range(1, top + 1)]
    states = [step.state_leaves(template)] + [None] * order
    iterates = [[params] + [None] * top]
    for n in range(top):  # theta_{n,1} = n f_0: the expansions share the direction f_0 (`_truncated.expand`)
        direction = iterates[1][1] if n > 1 else None
        thetas, states = _advance(coefficients, iterates[-1], states, order, degree, mode, n, direction)
        iterates.append(thetas)
    return [_difference(iterates, k) for k in range(1, top + 1)]


def _difference(iterates: list, k: int):
    """f_{k-1} = sum_{n<=k} w_n theta_{n,k}, w the difference weights of order k - 1 (module docstring)."""
    total = None
    for n, w in enumerate(difference_weights(k - 1)):
        total = add(total, scaled(float(w), iterates[n][k]))
    return total if total is not None else scaled(0.0, iterates[0][0])


def _advance(coefficients, thetas: list, states: list, order: int, degree: int, mode: str, n: int, direction):
    """One step on truncated series: theta through h^(order+1), the state's float leaves through h^order.

    theta'_k = theta_k + sum_{b=1..min(k, degree)} [G_b(theta(h), s(h))]_{k-b};
    s'_k = sum_b [T_b(theta(h), s(h))]_{k-b}, with (G_b, T_b) the h^b coefficient of the step at fixed
    (theta, s) (`_truncated.step_coefficients`): one expansion through h^order serves every b.
    """
    out = expand(coefficients, thetas, states, order, mode, scale=max(n, 1), direction=direction)

    def part(j, b, which):
        return None if out[j] is None else out[j][b][which]

    new_thetas = [thetas[0]]
    for k in range(1, order + 2):
        increment = None
        for b in range(1, min(k, degree) + 1):
            increment = add(increment, part(k - b, b, 0))
        new_thetas.append(add(thetas[k], increment))
    new_states = []
    for k in range(order + 1):
        total = None
        for b in range(0, min(k, degree) + 1):
            total = add(total, part(k - b, b, 1))
        new_states.append(total)
    return new_thetas, new_states
