"""Taylor coefficients in h of a function h -> pytree at h = 0, by nested jvps or by Taylor-mode AD.

Nested jvps (`mode="jvp"`) differentiate k times with k forward passes stacked: every JAX
primitive has a jvp, and JAX's symbolic zeros keep the cost low at the orders BEA uses. Taylor
mode (`mode="jet"`, Bettencourt, Johnson & Duvenaud, "Taylor-mode automatic differentiation for
higher-order derivatives in JAX", 2019, openreview.net/forum?id=SkxEF3FNPH) propagates all k
coefficients at once, O(k^2) per bilinear operation instead of O(2^k), but `jax.experimental.jet`
lacks rules for some primitives (control flow, sort): "auto" takes jets from order 4 and nested
jvps below and where jet fails. Measured on the CNN and the transformer (benchmarks/optax_fields.py,
XLA flops per gradient): at order 2 nested jvps cost 8.7 / 10.1 / 11.9 gradients for GD / heavy
ball / Adam against 9.2 / 14.4 / 15.4 by jets; at order 3 jets win for GD (23 against 26) and lose
for heavy ball (34 against 29).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..._errors import BeaError, UnsupportedError

__all__ = ["MODES", "by_mode", "jet_series", "taylor_series"]

MODES = ("auto", "jvp", "jet")
_JET_FROM = 4  # "auto": nested jvps through order 3 (measured faster there), jets above
#: What jax.experimental.jet raises where it has no rule (KeyError: the primitive's name) or a rule fails.
_JET_FAILURES = (NotImplementedError, KeyError, TypeError, ValueError)


def taylor_series(fun: Callable, order: int, *, mode: str = "auto") -> list:
    """[c_0, c_1, ..., c_order] of fun(h) = c_0 + c_1 h + c_2 h^2 + ... at h = 0 (c_k = fun^(k)(0)/k!).

    `fun` maps a float64 scalar to a pytree of float arrays; c_0 = fun(0) is the primal value the
    derivatives are computed with (no second evaluation).
    """
    if order == 0:
        import jax.numpy as jnp

        return [fun(jnp.asarray(0.0, dtype=jnp.float64))]
    return by_mode(lambda: _by_jet(fun, order), lambda: _by_jvps(fun, order), order, mode)


def by_mode(by_jet: Callable, by_jvps: Callable, order: int, mode: str):
    """by_jvps() or by_jet(), as `mode` asks: "auto" takes jets from order _JET_FROM and nested jvps where jet fails;
    an explicit "jet" that fails raises `UnsupportedError` naming what jet lacks."""
    if mode == "jvp" or (mode == "auto" and order < _JET_FROM):
        return by_jvps()
    if mode == "jet":
        try:
            return by_jet()
        except _JET_FAILURES as exc:
            if isinstance(exc, BeaError):  # the step's own error, not jet's
                raise
            missing = f"no Taylor rule for the primitive {exc.args[0]!r}" if isinstance(exc, KeyError) else \
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            raise UnsupportedError(f"mode='jet': jax.experimental.jet failed on this step ({missing}); it lacks rules "
                                   "for control flow (lax.cond, scan, while_loop), sort and some others: use "
                                   "mode='jvp' (nested jvps handle every primitive) or mode='auto'") from exc
    try:
        return by_jet()
    except _JET_FAILURES:
        # a primitive without a jet rule (jet raises KeyError or NotImplementedError) or a rule that trips on its
        # input: nested jvps handle every primitive; a genuine error in `fun` raises again from there
        return by_jvps()


def _by_jvps(fun, order):
    import jax
    import jax.numpy as jnp

    def derivatives(k):  # h -> (fun(h), fun'(h), ..., fun^(k)(h)), each level one jvp of the one below
        if k == 0:
            return lambda h: (fun(h),)
        below = derivatives(k - 1)

        def stacked(h):
            values, tangents = jax.jvp(below, (h,), (jnp.ones_like(h),))
            return values + (tangents[-1],)

        return stacked

    values = derivatives(order)(jnp.asarray(0.0, dtype=jnp.float64))
    return [values[0]] + [jax.tree_util.tree_map(lambda x, k=k: x / math.factorial(k), values[k])
                          for k in range(1, order + 1)]


def _by_jet(fun, order):
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, dtype=jnp.float64)
    one = jnp.asarray(1.0, dtype=jnp.float64)
    return jet_series(fun, [zero, one], order)


def jet_series(fun: Callable, inputs: list, order: int) -> list:
    """[c_0, ..., c_order] of fun(x(h)), x(h) = sum_k inputs[k] h^k (a pytree each, None for zero), by one jet.

    jet takes x(0) itself as the primal (no 0 * x_1 terms: the evaluation at the base point is the same
    computation wherever it appears) and x's derivatives k! x_k as its series.
    """
    import jax
    from jax.experimental import jet

    leaves, treedef = jax.tree_util.tree_flatten(inputs[0])
    terms = []
    for k in range(1, order + 1):
        x = inputs[k] if k < len(inputs) else None
        terms.append([math.factorial(k) * y for y in jax.tree_util.tree_leaves(x)] if x is not None else
                     [jax.numpy.zeros_like(y) for y in leaves])

    def flat(*xs):
        return fun(jax.tree_util.tree_unflatten(treedef, list(xs)))

    # jet's rule for a jitted call (jnp functions are jitted) gives every input of the call a series, and optax's
    # b ** count (an integer count) then reaches jet's pow rule with mixed dtypes; inlined, the power of two
    # constants is just evaluated
    with jax.disable_jit():
        primal, series = jet.jet(flat, tuple(leaves), tuple([term[i] for term in terms] for i in range(len(leaves))))
    # jet's series hold derivatives: term k-1 of each leaf's list is fun^(k)(0). The lists are cut at the primal's
    # leaves (flatten_up_to), not found by type: the output's own lists (state leaves, an empty state) are containers
    structure = jax.tree_util.tree_structure(primal)
    per_leaf = structure.flatten_up_to(series)
    return [primal] + [structure.unflatten([s[k - 1] / math.factorial(k) for s in per_leaf]) for k in range(1, order + 1)]
