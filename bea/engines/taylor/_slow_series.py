"""The iterates of a stateful optimizer on its slow manifold, solved order by order on their own Taylor series.

On the slow manifold s = S(theta, h) (`_manifold`), the iterates theta_n = exp(n h f~)(theta_0)
and states s_n = S(theta_n, h) have h^k coefficients theta_{n,k}, s_{n,k} that are polynomials in n
of degree <= k. The state's update s_{n+1} = T(theta_n, s_n, h), at order k, reads

    s_{n+1,k} = A s_{n,k} + r_{n,k},

A = dT/ds at (theta_0, s_0, h = 0) (s_0 the h = 0 fixed point) and r_{n,k} the part of the order-k
coefficient that lower orders give. Its only solution polynomial in n (A has no eigenvalue 1) is
(E - A)^{-1} r with the shift E = 1 + Delta:

    s_{0,k} = sum_{i=0..k} (-1)^i (I - A)^{-(i+1)} (Delta^i r)_0,

which needs r_{0,k}..r_{k,k}: the iterates 0..k expanded through h^k. So pass k = 1..p expands
the iterates 0..k through h^k, solves s_{0,k}, runs s_{n,k} forward, and adds the state's order-k
part to the parameter increments (a jvp at the base point: the state enters the update elementwise).
Every evaluation lies on the iterates the field needs anyway; (I - A)^{-1} is `_manifold.resolvent`
(a polynomial in A from the rates, Kovachki & Stuart, JMLR 22, 2021, arXiv:1906.04285 for the
manifold). The field f_{k-1} is the order-k difference formula on theta_{0..k, k} (`_field`).

This is the slow manifold of `_manifold.settle`, without its Newton tree of 2^p evaluation points;
like it, it needs the state's update affine in the state (every moving average is; `contraction`
checks it), so that A is one matrix.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

from ._manifold import Contraction, resolvent
from ._truncated import add, expand, scaled

__all__ = ["slow_iterates"]


def slow_iterates(coefficients, params, state0: list, contraction: Contraction, order: int, degree: int,
                  mode: str) -> list:
    """thetas[n][k] (n <= k <= order + 1; None where zero) of the iterates from the slow manifold at params.

    coefficients: `_truncated.step_coefficients` of the step (its h^b parts at fixed (theta, s), b <= degree);
    state0: the state's float leaves at the h = 0 fixed point.
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    top = order + 1
    _, unravel = ravel_pytree(state0)
    _, linear = jax.linearize(lambda leaves: coefficients(params, leaves), state0)  # d/ds at the base point

    def A(vector):
        return ravel_pytree(linear(unravel(vector))[0][1])[0]

    inverse = resolvent(A, contraction.eigenvalues)  # (I - A)^{-1}
    thetas = [[params] + [None] * top for _ in range(top + 1)]
    states = [[state0] + [None] * order for _ in range(top + 1)]
    for k in range(order + 1):
        # the iterates 0..k through h^k, with s_{n,k} (unknown yet) left out
        outs = [expand(coefficients, thetas[n][:k + 1], states[n][:max(k, 1)] + [None] * min(k, 1), k, mode,
                       scale=max(n, 1), direction=thetas[1][1]) for n in range(k + 1)]
        corrections = [None] * (k + 1)
        if k >= 1:
            r = [_state_remainder(outs[n], k, degree, state0) for n in range(k + 1)]
            total = jnp.zeros_like(ravel_pytree(state0)[0])
            for i in range(k, -1, -1):  # Horner: P (d_0 - P (d_1 - P (d_2 - ...)))
                difference = sum(comb(i, j) * (-1) ** (i - j) * ravel_pytree(r[j])[0] for j in range(i + 1))
                total = inverse(difference - total)
            states[0][k] = unravel(total)
            for n in range(k + 1):
                tangent = linear(states[n][k])
                states[n + 1][k] = add(r[n], tangent[0][1])
                corrections[n] = tangent[1][0]  # the state's order-k part in the h^1 increment
            column = _extrapolate([row[k] for row in states], k + 2)
            for n in range(k + 2, top + 1):  # the later iterates' states, inputs of the next passes
                states[n][k] = column[n]
        for n in range(k + 1):
            increment = corrections[n]
            for b in range(1, min(k + 1, degree) + 1):
                increment = add(increment, _part(outs[n], k + 1 - b, b, 0))
            thetas[n + 1][k + 1] = add(thetas[n][k + 1], increment)
        column = _extrapolate([row[k + 1] for row in thetas], k + 2)
        for n in range(k + 2, top + 1):  # the later iterates' order-(k+1) inputs of the next passes
            thetas[n][k + 1] = column[n]
    return thetas


def _extrapolate(values: list, known: int) -> list:
    """values with entries known..end filled in: values[0..known-1] (None = 0) are those of a polynomial in n
    of degree < known (module docstring), evaluated by Lagrange's formula on the nodes 0..known-1."""
    filled = list(values[:known])
    for n in range(known, len(values)):
        total = None
        for j in range(known):
            weight = Fraction(1)
            for m in range(known):
                if m != j:
                    weight *= Fraction(n - m, j - m)
            total = add(total, scaled(float(weight), values[j]))
        filled.append(total)
    return filled


def _part(out: list, order: int, b: int, which: int):
    """The h^order coefficient of G_b (which = 0) or T_b (which = 1) in an expansion, None if zero."""
    return None if out[order] is None else out[order][b][which]


def _state_remainder(out: list, k: int, degree: int, state0: list) -> list:
    """r_{n,k}: the order-k coefficient of s_{n+1} without the A s_{n,k} term (s_{n,k} was left out)."""
    import jax.numpy as jnp

    total = None
    for b in range(0, min(k, degree) + 1):
        total = add(total, _part(out, k - b, b, 1))
    return total if total is not None else [jnp.zeros_like(x) for x in state0]
