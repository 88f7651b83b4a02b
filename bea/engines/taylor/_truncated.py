"""Truncated Taylor series in h of the optimizer's iterates: lists of coefficients, None for a structural zero.

A quantity x(h) = x_0 + x_1 h + ... + x_K h^K is the list [x_0, ..., x_K] of pytrees (the parameters)
or of lists of arrays (the state's float leaves). Every series of the engine starts at the same point
(theta_0 and the state's h = 0 value), so x_0 is shared, and a coefficient that is zero by construction
is None: functions of inputs constant in h are evaluated once, with no derivative through them
(truncated Taylor arithmetic: Griewank & Walther, Evaluating Derivatives, 2nd ed., SIAM 2008, ch. 13,
doi:10.1137/1.9780898717761).

A step (theta, s) -> (theta', s') is split by its h-coefficients at fixed (theta, s):
`step_coefficients` gives [(G_0, T_0), (G_1, T_1), ..., (G_D, T_D)], the h^b Taylor coefficients of
the new parameters and state, so that theta' = G_0 + sum_b h^b G_b with G_0 = theta (consistency).
"""

from __future__ import annotations

from collections.abc import Callable

from ._series import by_mode, jet_series, taylor_series
from ._step import Step, abstract, reached_from

__all__ = ["add", "curve", "expand", "linear_in_h", "scaled", "step_coefficients", "step_expansion"]


def step_expansion(step: Step, params, degree: int, mode: str):
    """(template, degree, coefficients): the state template at h = 0 and `step_coefficients` through `degree`,
    or through 1 where the step is affine in h (`linear_in_h`: optax scales its update by the learning rate)."""
    import jax.numpy as jnp

    template = step.template(params, jnp.asarray(0.0, jnp.float64))
    degree = 1 if linear_in_h(step, params, template) else degree
    return template, degree, step_coefficients(step, template, degree, mode)


def step_coefficients(step: Step, template, degree: int, mode: str) -> Callable:
    """(theta, leaves) -> [(G_b, T_b) for b = 0..degree]: the step's h^b coefficients at fixed (theta, s).

    degree 1 is one jvp in h; the step's evaluation (its gradient) is the jvp's primal, shared by all b.
    """
    def step_at(theta, leaves, h):
        new_theta, new_state = step.apply(theta, step.with_state_leaves(template, leaves), h)
        return new_theta, step.state_leaves(new_state)

    def coefficients(theta, leaves):
        return taylor_series(lambda h: step_at(theta, leaves, h), degree, mode=mode)

    return coefficients


def expand(fun: Callable, thetas: list, states: list, order: int, mode: str, *, scale: int = 1,
           direction=None) -> list:
    """[c_0, ..., c_order]: the series of fun(theta(h), s(h)) through h^order, each c_j a pytree like
    fun's output, or None when theta and s do not move with h (then c_0 is one evaluation of fun).

    With `scale` n and `direction` a (theta's h^1 coefficient is n a, as for the n-th iterate, whose
    first coefficient is n f_0), the series is taken in u = n h along theta_0 + a u + (theta_2 / n^2) u^2
    + ..., and c_j = n^j times its coefficients: every iterate's expansion then starts along the same
    array a, and XLA's CSE computes the parts that only see a (the derivatives of the gradient along f_0)
    once for all iterates.
    """
    if all(x is None for x in thetas[1:order + 1] + states[1:order + 1]):
        return [fun(thetas[0], states[0])] + [None] * order
    if direction is not None and scale != 1:
        thetas = [thetas[0], direction] + [scaled(1.0 / scale**k, x) for k, x in enumerate(thetas[2:], start=2)]
        states = [states[0]] + [scaled(1.0 / scale**k, x) for k, x in enumerate(states[1:], start=1)]
        series = expand(fun, thetas, states, order, mode)
        return [scaled(float(scale**k), c) for k, c in enumerate(series)]

    def by_jvps():
        theta, state = curve(thetas[:order + 1]), curve(states[:order + 1])
        return taylor_series(lambda h: fun(theta(h), state(h)), order, mode="jvp")

    def by_jet():
        inputs = [(thetas[0], states[0])]
        for theta, state in zip(thetas[1:order + 1], states[1:order + 1]):
            both = theta is not None and state is not None
            inputs.append(None if theta is None and state is None else (theta, state) if both else
                          (theta if theta is not None else scaled(0.0, thetas[0]),
                           state if state is not None else scaled(0.0, states[0])))
        return jet_series(lambda x: fun(*x), inputs, order)

    return by_mode(by_jet, by_jvps, order, mode)


def curve(coefficients: list) -> Callable:
    """h -> sum_k coefficients[k] h^k for nested jvps at h = 0, whose primal is coefficients[0] itself.

    Evaluated as a polynomial, theta_0 + 0 * theta_1 + ... is a new point to XLA (0 * x is not folded for
    floats), so the gradient at theta_0 would be recomputed in every expansion. Here the value is
    coefficients[0] and each jvp in h returns the derivative's curve, sum_k k coefficients[k] h^(k-1), again
    as such a function: every expansion's primal is the one gradient at theta_0 (XLA's CSE merges them),
    and its first-order part is shared by the expansions along the same direction. Valid at h = 0 only, the
    one point `taylor_series` evaluates at; coefficients perturbed by an outer transformation (a jvp or grad
    of the field in the parameters) get their own curve.
    """
    import jax
    from jax.custom_derivatives import SymbolicZero

    while len(coefficients) > 1 and coefficients[-1] is None:
        coefficients = coefficients[:-1]
    if len(coefficients) == 1:
        value = coefficients[0]
        return lambda h: value
    base = coefficients[0]
    coefficients = [c if c is not None else scaled(0.0, base) for c in coefficients]  # a zero inside: rare

    @jax.custom_jvp
    def at(h, cs):
        return cs[0]

    def rule(primals, tangents):
        h, cs = primals
        h_dot, cs_dot = tangents
        tangent = None
        if not isinstance(h_dot, SymbolicZero):
            derivative = curve([scaled(float(k), c) for k, c in enumerate(cs) if k >= 1])(h)
            tangent = jax.tree_util.tree_map(lambda x: h_dot.astype(x.dtype) * x, derivative)  # float32 params stay so
        leaves = jax.tree_util.tree_leaves(cs_dot, is_leaf=lambda x: isinstance(x, SymbolicZero))
        if not all(isinstance(x, SymbolicZero) for x in leaves):
            instantiated = jax.tree_util.tree_map(
                lambda d, x: jax.numpy.zeros_like(x) if isinstance(d, SymbolicZero) else d, cs_dot, cs,
                is_leaf=lambda x: isinstance(x, SymbolicZero))
            tangent = add(tangent, curve(list(instantiated))(h))
        return at(h, cs), tangent  # the primal through `at` again: an outer jvp in h differentiates it too

    at.defjvp(rule, symbolic_zeros=True)
    return lambda h: at(h, list(coefficients))


def linear_in_h(step: Step, params, template) -> bool:
    """Whether the step is affine in h at fixed (theta, s): the jaxpr of d/dh of the step has no data
    path from h to its outputs. A structural test on abstract values: it proves linearity (optax's
    learning rate scales the update), never guesses it; a sub-jaxpr (pjit, custom_jvp) that h reaches
    counts as a dependence."""
    import jax
    import jax.numpy as jnp
    from jax.extend.core import Literal

    def slope(h, theta, leaves):
        def at(x):
            new_theta, new_state = step.apply(theta, step.with_state_leaves(template, leaves), x)
            return new_theta, step.state_leaves(new_state)

        return jax.jvp(at, (h,), (jnp.ones_like(h),))[1]

    closed = jax.make_jaxpr(slope)(jax.ShapeDtypeStruct((), jnp.float64), abstract(params),
                                   abstract(step.state_leaves(template)))
    jaxpr = closed.jaxpr
    reached = reached_from(jaxpr, [jaxpr.invars[0]])
    return not any(not isinstance(v, Literal) and v in reached for v in jaxpr.outvars)


def add(a, b):
    """a + b for pytrees (lists of arrays included), None being zero."""
    import jax

    if a is None or b is None:
        return b if a is None else a
    return jax.tree_util.tree_map(lambda x, y: x + y, a, b)


def scaled(w: float, a):
    """w a for a pytree, None being zero."""
    import jax

    return None if a is None else jax.tree_util.tree_map(lambda x: w * x, a)
