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

from ._manifold import Contraction
from ._truncated import add, expand, scaled

__all__ = ["slow_iterates", "slow_state_series"]


def slow_state_series(step, params, contraction: Contraction, order: int, mode: str = "auto") -> list:
    """[s_0, ..., s_order]: the slow manifold's Taylor coefficients in h at params, each a list of the state's
    float leaves (the passes of `slow_iterates` through order; no Newton tree of 2^order steps)."""
    from ._truncated import step_expansion

    template, degree, coefficients = step_expansion(step, params, order + 1, mode)
    _, states = _passes(coefficients, params, step.state_leaves(template), contraction, order, degree, mode)
    return states[0]


def slow_iterates(coefficients, params, state0: list, contraction: Contraction, order: int, degree: int,
                  mode: str) -> list:
    """thetas[n][k] (n <= k <= order + 1; None where zero) of the iterates from the slow manifold at params.

    coefficients: `_truncated.step_coefficients` of the step (its h^b parts at fixed (theta, s), b <= degree);
    state0: the state's float leaves from the optimizer's init (the h = 0 fixed point is solved from there).
    """
    return _passes(coefficients, params, state0, contraction, order, degree, mode)[0]


def _passes(coefficients, params, state0: list, contraction: Contraction, order: int, degree: int, mode: str):
    """(thetas, states): the passes k = 0..order of the module docstring; states[n][k] for n <= k + 1."""
    import jax

    top = order + 1
    # the h = 0 fixed point s0 = T(theta_0, s0, 0): one Newton step from the initial state, T being affine in s
    start, initial = jax.linearize(lambda leaves: coefficients(params, leaves), state0)
    inverse = _resolvent(lambda leaves: initial(leaves)[0][1], contraction.eigenvalues)  # (I - A)^{-1}
    state0 = add(state0, inverse(add(start[0][1], scaled(-1.0, state0))))
    _, linear = jax.linearize(lambda leaves: coefficients(params, leaves), state0)  # d/ds at the base point
    thetas = [[params] + [None] * top for _ in range(top + 1)]
    states = [[state0] + [None] * order for _ in range(top + 1)]
    for k in range(order + 1):
        # the iterates 0..k through h^k, with s_{n,k} (unknown yet) left out
        outs = [expand(coefficients, thetas[n][:k + 1], states[n][:max(k, 1)] + [None] * min(k, 1), k, mode,
                       scale=max(n, 1), direction=thetas[1][1]) for n in range(k + 1)]
        corrections = [None] * (k + 1)
        if k >= 1:
            r = [_state_remainder(outs[n], k, degree, state0) for n in range(k + 1)]
            total = None
            for i in range(k, -1, -1):  # Horner: P (d_0 - P (d_1 - P (d_2 - ...)))
                difference = None
                for j in range(i + 1):
                    difference = add(difference, scaled(float(comb(i, j) * (-1) ** (i - j)), r[j]))
                total = inverse(add(difference, scaled(-1.0, total)))
            states[0][k] = total
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
    return thetas, states


def _resolvent(A, eigenvalues):
    """v -> (I - A)^{-1} v on lists of arrays: `_manifold.resolvent`'s polynomial in A, leaf by leaf. The state is
    never raveled into one vector: XLA would sink each leaf's elementwise operations into the whole raveled
    vector (slices of a concatenation), repeating them once per leaf."""
    def linear(v):
        return None if v is None else A(v)

    def apply(v):  # Newton's interpolation of 1/(1 - lambda) at the rates; None stands for zero
        term_re, term_im, total, weight = v, None, None, 1.0 + 0j
        for lam in eigenvalues:
            weight /= 1.0 - lam
            total = add(total, add(_times(weight.real, term_re), _times(-weight.imag, term_im)))
            term_re, term_im = (add(linear(term_re), add(_times(-lam.real, term_re), _times(lam.imag, term_im))),
                                add(linear(term_im), add(_times(-lam.real, term_im), _times(-lam.imag, term_re))))
        return total

    return apply


def _times(w: float, a):
    """w a, None when w is zero or a is None (the imaginary parts of real rates stay structurally zero)."""
    return None if a is None or w == 0 else scaled(w, a)


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
