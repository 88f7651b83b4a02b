"""Coordinate-free results on real models: elementary differentials by automatic differentiation.

A coordinate-free term is a sum of c(t) G(t) over rooted trees, with

    G(.) = grad E,    G([t_1, ..., t_m]) = nabla^{m+1} E [G(t_1), ..., G(t_m)].

nabla^{m+1} E[v_1, ..., v_m] is the m-fold directional derivative of grad E,
computed by m nested `jax.jvp`s (forward over reverse): a Hessian-vector
product for m = 1, never a Hessian or larger tensor, so memory stays linear in
the number of parameters. Subtrees shared between terms are computed once
(Griewank & Walther, Evaluating Derivatives, 2nd ed., SIAM 2008, doi:10.1137/1.9780898717761).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .._errors import UnknownSymbolError
from ..series._jet import STEP_SIZE
from ._x64 import require_x64

__all__ = ["lower_coordinate_free"]


def _directional(grad: Callable, x, directions: list):
    """D^m grad(x)[v_1, ..., v_m] by nested forward-mode derivatives."""
    import jax

    fn = grad
    for v in directions:
        fn = (lambda inner, v: lambda y: jax.jvp(inner, (y,), (v,))[1])(fn, v)
    return fn(x)


def _check_params(params):
    import jax
    import jax.numpy as jnp

    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise UnknownSymbolError("the parameter pytree has no leaves")
    for leaf in leaves:
        dtype = jnp.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"parameter leaves must be floating-point arrays, got one of dtype {dtype}; "
                "integer leaves have no gradient (cast with .astype(jnp.float64))"
            )


def lower_coordinate_free(cf, loss: Callable, *, allow_float32: bool = False):
    """field(params, h, **hyperparameters) -> pytree like params, for a JAX loss of a parameter pytree."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    if not callable(loss):
        raise TypeError("loss= must be a JAX function of the parameter pytree returning a scalar")
    if not allow_float32:
        require_x64("lowering a coordinate-free modified equation to JAX")
    coefficients = [(l, c, t) for l in range(cf.order + 1) for c, t in cf.terms[l]]
    free = set().union(*(sp.sympify(c).free_symbols for _, c, _ in coefficients)) - {STEP_SIZE}
    symbols = tuple(sorted(free, key=str))
    names = tuple(s.name for s in symbols)
    weights = sp.lambdify([STEP_SIZE, *symbols], [STEP_SIZE**l * c for l, c, _ in coefficients], modules="jax")
    trees = [t for _, _, t in coefficients]

    def field_flat(flat, unravel, h, values):
        def energy(x):
            value = loss(unravel(x))
            if jnp.shape(value) != ():
                raise TypeError(f"the loss must return a scalar, got shape {jnp.shape(value)}")
            return value

        grad = jax.grad(energy)
        cache: dict = {}

        def G(tree):
            if tree not in cache:
                cache[tree] = grad(flat) if not tree else _directional(grad, flat, [G(c) for c in tree])
            return cache[tree]

        total = jnp.zeros_like(flat)
        for w, t in zip(weights(h, *values), trees):
            total = total + w * G(t)
        return total

    @jax.jit
    def run(params, h, values):
        flat, unravel = ravel_pytree(params)
        return unravel(field_flat(flat, unravel, h, values))

    def field(params, h, **values):
        missing = [n for n in names if n not in values]
        if missing:
            raise UnknownSymbolError(f"missing hyperparameter value(s) {', '.join(missing)}; pass them as keywords")
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UnknownSymbolError(f"unknown keyword(s) {', '.join(unknown)}; this field takes {list(names)}")
        _check_params(params)
        return run(params, jnp.asarray(h, dtype=jnp.float64 if not allow_float32 else None),
                   tuple(jnp.asarray(values[n]) for n in names))

    field.symbols = names
    field.__doc__ = f"Coordinate-free modified field of {getattr(cf.rule, 'name', cf.rule)} through order {cf.order}."
    return field
