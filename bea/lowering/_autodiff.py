"""Coordinate-free results on real models: elementary differentials by automatic differentiation.

A coordinate-free term is a sum of c(t) G(t) over rooted trees, with

    G(.) = grad E,    G([t_1, ..., t_m]) = nabla^{m+1} E [G(t_1), ..., G(t_m)].

nabla^{m+1} E[v_1, ..., v_m] is the m-fold directional derivative of grad E,
computed by m nested `jax.jvp`s (forward over reverse): a Hessian-vector
product for m = 1, never a Hessian or larger tensor, so memory stays linear in
the number of parameters. Subtrees shared between terms are computed once
(Griewank & Walther, Evaluating Derivatives, 2nd ed., SIAM 2008, doi:10.1137/1.9780898717761).

With several losses each node uses the gradient of its own loss; in games the
params are one pytree per player and a node of player p keeps p's part only
(the projection P_p: the other players' leaves set to zero).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .._errors import InvalidArrayError, UnknownSymbolError
from ..engines.series._jet import STEP_SIZE
from ._x64 import check_floating, check_scalar, require_x64

__all__ = ["lower_coordinate_free", "lower_elementwise", "lower_initial_point_loss"]


def _directional(grad: Callable, x, directions: list):
    """D^m grad(x)[v_1, ..., v_m] by nested forward-mode derivatives."""
    import jax

    fn = grad
    for v in directions:
        fn = (lambda inner, v: lambda y: jax.jvp(inner, (y,), (v,))[1])(fn, v)
    return fn(x)


def _check_params(params, *, allow_float32: bool = True, what: str = "params") -> None:
    """A non-empty pytree of floating leaves (float64 unless allow_float32); static, so fine under jit/vmap."""
    import jax
    import jax.numpy as jnp

    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise UnknownSymbolError(f"the parameter pytree {what} has no leaves")
    for leaf in leaves:
        try:
            dtype = jnp.asarray(leaf).dtype
        except TypeError:
            raise InvalidArrayError(f"every leaf of {what} must be an array, got {leaf!r}") from None
        check_floating(dtype, f"a leaf of {what}", allow_float32=allow_float32,
                       how="lower with to_jax(loss=..., allow_float32=True)")


def _check_call(names, values: dict, params, h=0.0, *, allow_float32: bool = True, params0=None) -> None:
    """Every hyperparameter given, none unknown, all scalars (as h); floating leaves; params0 shaped like params."""
    import jax

    missing = [n for n in names if n not in values]
    if missing:
        raise UnknownSymbolError(f"missing hyperparameter value(s) {', '.join(missing)}; pass them as keywords")
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UnknownSymbolError(f"unknown keyword(s) {', '.join(unknown)}; this field takes {list(names)}")
    check_scalar(h, "h")
    for n in names:
        check_scalar(values[n], n)
    _check_params(params, allow_float32=allow_float32)
    if params0 is not None:  # the initial point: the same structure and shapes as the parameters
        _check_params(params0, allow_float32=allow_float32, what="params0")
        shapes = jax.tree_util.tree_map(lambda x: jax.numpy.shape(x), params)
        shapes0 = jax.tree_util.tree_map(lambda x: jax.numpy.shape(x), params0)
        if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(params0) or shapes != shapes0:
            raise InvalidArrayError(
                f"params0 (the step's initial point) must be shaped like params: expected {shapes}, got {shapes0}"
            )


def _loss_functions(cf, loss) -> list:
    functions = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    if not all(callable(f) for f in functions):
        raise TypeError("loss= must be a JAX function of the parameter pytree returning a scalar (or a list of them)")
    needed = cf.n_losses if cf.colored else 1
    if len(functions) != needed:
        raise TypeError(f"{getattr(cf.rule, 'name', 'the rule')} has {needed} loss(es); loss= gave {len(functions)}")
    return functions


def lower_coordinate_free(cf, loss, *, allow_float32: bool = False):
    """field(params, h, **hyperparameters) -> pytree like params, for JAX losses of a parameter pytree."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from ..engines.trees._colored_trees import Colored

    functions = _loss_functions(cf, loss)
    if not allow_float32:
        require_x64("lowering a coordinate-free modified equation to JAX")
    coefficients = [(l, c, t) for l in range(cf.order + 1) for c, t in cf.terms[l]]
    free = set().union(*(sp.sympify(c).free_symbols for _, c, _ in coefficients)) - {STEP_SIZE}
    symbols = tuple(sorted(free, key=str))
    names = tuple(s.name for s in symbols)
    weights = sp.lambdify([STEP_SIZE, *symbols], [STEP_SIZE**l * c for l, c, _ in coefficients], modules="jax")
    trees = [t for _, _, t in coefficients]
    players = cf.n_players

    def field_flat(flat, unravel, masks, h, values):
        def energy(k):
            def value_of(x):
                value = functions[k](unravel(x))
                if jnp.shape(value) != ():
                    raise TypeError(f"the loss must return a scalar, got shape {jnp.shape(value)}")
                return value

            return value_of

        grads = [jax.grad(energy(k)) for k in range(len(functions))]
        cache: dict = {}

        def G(tree):
            if tree not in cache:
                if isinstance(tree, Colored):
                    grad, kids, block = grads[tree.label.loss], tree.children, tree.label.block
                else:
                    grad, kids, block = grads[0], tree, None
                value = grad(flat) if not kids else _directional(grad, flat, [G(c) for c in kids])
                cache[tree] = value if block is None else value * masks[block]
            return cache[tree]

        total = jnp.zeros_like(flat)
        for w, t in zip(weights(h, *values), trees):
            total = total + w * G(t)
        return total

    @jax.jit
    def run(params, h, values):
        flat, unravel = ravel_pytree(params)
        # one pytree per player: P_p keeps player p's entries of the flat vector
        masks = _player_masks(params, flat, players) if players else []
        return unravel(field_flat(flat, unravel, masks, h, values))

    def field(params, h, **values):
        if players and (not isinstance(params, (list, tuple)) or len(params) != players):
            raise InvalidArrayError(
                f"this field has {players} players: pass params as a tuple of {players} pytrees, one each"
            )
        _check_call(names, values, params, h, allow_float32=allow_float32)
        return run(params, jnp.asarray(h, dtype=jnp.float64 if not allow_float32 else None),
                   tuple(jnp.asarray(values[n]) for n in names))

    field.symbols = names
    field.__doc__ = f"Coordinate-free modified field of {getattr(cf.rule, 'name', cf.rule)} through order {cf.order}."
    return field


def _player_masks(params, flat, players: int):
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    sizes = [ravel_pytree(p)[0].size for p in params]
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    index = jnp.arange(flat.size)
    return [((index >= offsets[i]) & (index < offsets[i + 1])).astype(flat.dtype) for i in range(players)]


def lower_initial_point_loss(ip, loss, *, allow_float32: bool = False):
    """loss_fn(params, params0, h, **hyperparameters): Rosca's E~(theta; theta_0), a tuple per player in games."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    functions = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    if not all(callable(f) for f in functions):
        raise TypeError("loss= must be a JAX function of the parameter pytree returning a scalar (or a list of them)")
    if not allow_float32:
        require_x64("lowering an initial-point modified loss to JAX")
    pieces = [(p, l, c, pot) for p, orders in enumerate(ip.players) for l, terms in enumerate(orders) for c, pot in terms]
    needed = max(max(pot.a, pot.b or 0) for *_, pot in pieces) + 1
    if len(functions) < needed:
        raise TypeError(f"this loss involves {needed} loss functions; loss= gave {len(functions)}")
    free = set().union(*(sp.sympify(c).free_symbols for _, _, c, _ in pieces)) - {STEP_SIZE}
    symbols = tuple(sorted(free, key=str))
    names = tuple(s.name for s in symbols)
    weights = sp.lambdify([STEP_SIZE, *symbols], [STEP_SIZE**l * c for _, l, c, _ in pieces], modules="jax")
    players = ip.cf.n_players

    @jax.jit
    def run(params, params0, h, values):
        flat, unravel = ravel_pytree(params)
        flat0, _ = ravel_pytree(params0)
        masks = _player_masks(params, flat, players) if players else []
        grads = [jax.grad(lambda x, f=f: f(unravel(x))) for f in functions]
        out = [jnp.zeros((), flat.dtype) for _ in range(len(ip.players))]
        for w, (p, _, _, pot) in zip(weights(h, *values), pieces):
            if pot.b is None:
                value = functions[pot.a](unravel(flat))
            else:
                mask = 1.0 if pot.block is None else masks[pot.block]
                value = jnp.vdot(grads[pot.a](flat) * mask, grads[pot.b](flat0 if pot.frozen else flat) * mask)
            out[p] = out[p] + w * value
        return tuple(out) if players else out[0]

    def loss_fn(params, params0, h, **values):
        _check_call(names, values, params, h, allow_float32=allow_float32, params0=params0)
        return run(params, params0, jnp.asarray(h, dtype=jnp.float64 if not allow_float32 else None),
                   tuple(jnp.asarray(values[n]) for n in names))

    loss_fn.symbols = names
    return loss_fn


def lower_elementwise(result, loss, *, allow_float32: bool = False):
    """field(params, h, **hyperparameters) for an element-wise result (Adam, RMSProp): every atom
    nabla^{m+1} E[w..] by nested jvps of grad with the arguments w evaluated element-wise first."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from ..engines.elementwise._elementwise import THETA, atom_arguments, inner_arguments, is_atom, is_inner

    if not callable(loss):
        raise TypeError("loss= must be a JAX function of the parameter pytree returning a scalar")
    if not allow_float32:
        require_x64("lowering an element-wise modified equation to JAX")
    total = sum((STEP_SIZE**l * f for l, f in enumerate(result.terms)), sp.S.Zero)

    def arguments(s):
        return atom_arguments(s) if is_atom(s) else inner_arguments(s) if is_inner(s) else None

    def hyperparameters(expr) -> set:
        """The scalar symbols of an element, inside contractions and inner products too."""
        out = set()
        for s in expr.free_symbols:
            inside = arguments(s)
            if inside is not None:
                out |= set().union(*(hyperparameters(w) for w in inside))
            elif s not in (THETA, STEP_SIZE):
                out.add(s)
        return out

    free = hyperparameters(total)
    symbols = tuple(sorted(free, key=str))
    names = tuple(s.name for s in symbols)
    compiled: dict = {}

    def element(expr, atoms, flat, h, values):
        """An element on arrays: atoms first (nested jvps), then the expression entry by entry."""
        inputs = sorted((s for s in expr.free_symbols if arguments(s) is not None), key=str)
        if expr not in compiled:
            compiled[expr] = sp.lambdify([inputs, THETA, STEP_SIZE, symbols], expr, modules="jax", dummify=True)
        return compiled[expr]([atoms(s) for s in inputs], flat, h, values) + jnp.zeros_like(flat)

    def field_flat(flat, unravel, h, values):
        def energy(x):
            value = loss(unravel(x))
            if jnp.shape(value) != ():
                raise TypeError(f"the loss must return a scalar, got shape {jnp.shape(value)}")
            return value

        grad = jax.grad(energy)
        cache: dict = {}

        def atoms(s):
            """A contraction by nested jvps, or an inner product <p, q> (a scalar) of two elements."""
            if s not in cache:
                evaluated = [element(w, atoms, flat, h, values) for w in arguments(s)]
                if is_inner(s):
                    cache[s] = jnp.sum(evaluated[0] * evaluated[1])
                else:
                    cache[s] = grad(flat) if not evaluated else _directional(grad, flat, evaluated)
            return cache[s]

        return element(total, atoms, flat, h, values)

    @jax.jit
    def run(params, h, values):
        flat, unravel = ravel_pytree(params)
        return unravel(field_flat(flat, unravel, h, values))

    def field(params, h, **values):
        _check_call(names, values, params, h, allow_float32=allow_float32)
        return run(params, jnp.asarray(h, dtype=jnp.float64 if not allow_float32 else None),
                   tuple(jnp.asarray(values[n]) for n in names))

    field.symbols = names
    return field
