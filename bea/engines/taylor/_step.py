"""An optimizer step as a pair of pure functions on pytrees: the numeric engine's input.

`Step.apply(params, state, h) -> (params, state)` is one update at step size h; `Step.init(params,
h)` gives the state's structure. Counters (integer leaves of the state: optax's step counts) are
held at a fixed value, so bias corrections and schedules are those of that step: the field is
autonomous, as BEA needs. Float leaves are the state the slow manifold solves for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["Step", "float_leaves", "optax_step", "update_step", "with_float_leaves"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One update of an optimizer with state, as functions of a parameter pytree and a traced h.

    Attributes:
        name: for messages.
        init: `init(params, h) -> state` (any pytree; `()` for a stateless update).
        apply: `apply(params, state, h) -> (params, state)`, counters held.
        grad: the loss gradient the update calls (`jax.grad(loss)`), for the checks of the engine.
        assumptions: what was fixed to make the step autonomous (counters, bias corrections), in words.
    """

    name: str
    init: Callable
    apply: Callable
    grad: Callable
    assumptions: tuple[str, ...] = ()


def _is_float(leaf) -> bool:
    import jax.numpy as jnp

    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def float_leaves(state) -> list:
    """The state's float leaves, in tree order (the dynamical state; integers are counters)."""
    import jax

    return [leaf for leaf in jax.tree_util.tree_leaves(state) if _is_float(leaf)]


def with_float_leaves(state, leaves):
    """`state` with its float leaves replaced by `leaves` (in tree order); other leaves kept."""
    import jax

    flat, treedef = jax.tree_util.tree_flatten(state)
    it = iter(leaves)
    return jax.tree_util.tree_unflatten(treedef, [next(it) if _is_float(x) else x for x in flat])


def _hold_counters(new_state, count):
    """Integer leaves set to `count`: optax increments its step counts; BEA holds them (module docstring)."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda x: x if _is_float(x) else jnp.full_like(x, count), new_state)


def optax_step(factory: Callable, loss: Callable, *, count: int, name: str = "optax optimizer") -> Step:
    """The Step of `factory(learning_rate) -> optax.GradientTransformation` on `loss(params) -> scalar`.

    The transformation is built inside the traced function with learning_rate = h, so h enters
    wherever the optimizer uses its learning rate (schedules included, evaluated at `count`).
    """
    import jax
    import optax

    grad = jax.grad(loss)

    def init(params, h):
        return _hold_counters(factory(h).init(params), count)

    def apply(params, state, h):
        transformation = factory(h)
        updates, new_state = transformation.update(grad(params), state, params)
        return optax.apply_updates(params, updates), _hold_counters(new_state, count)

    assumptions = (f"step counters held at {count} (bias corrections 1 - b^count, schedules evaluated there)",)
    return Step(name, init, apply, grad, assumptions)


def update_step(update: Callable, loss: Callable, *, init: Callable | None = None, name: str = "update") -> Step:
    """The Step of a plain JAX update: `update(params, grad_fn, h) -> params`, or with `init(params) ->
    state`, `update(params, state, grad_fn, h) -> (params, state)`; `grad_fn = jax.grad(loss)`."""
    import jax

    grad = jax.grad(loss)
    if init is None:
        def no_state(params, h):
            return ()

        def apply(params, state, h):
            return update(params, grad, h), state

        return Step(name, no_state, apply, grad)

    def apply_with_state(params, state, h):
        return update(params, state, grad, h)

    return Step(name, lambda params, h: init(params), apply_with_state, grad)
