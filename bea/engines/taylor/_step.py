"""An optimizer step as a pair of pure functions on pytrees: the numeric engine's input.

`Step.apply(params, state, h) -> (params, state)` is one update at step size h; `Step.init(params,
h)` gives the state's structure. Counters (integer leaves of the state: optax's step counts) are
held at a fixed value, so bias corrections and schedules are those of that step: the field is
autonomous, as BEA needs. Float leaves are the state the slow manifold solves for, except those the
update returns unchanged: constants an optimizer keeps in its state (optax.contrib.muon's
Newton-Schulz coefficients) are held like counters, not treated as a state of rate 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..._errors import InvalidRuleError

__all__ = ["Step", "optax_step", "update_step"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One update of an optimizer with state, as functions of a parameter pytree and a traced h.

    Attributes:
        name: for messages.
        init: `init(params, h) -> state` (any pytree; `()` for a stateless update).
        apply: `apply(params, state, h) -> (params, state)`, counters held.
        grad: the loss gradient the update calls (`jax.grad(loss)`), for the checks of the engine.
        assumptions: what was fixed to make the step autonomous (counters, bias corrections), in words.
        increment: `increment(params, state, h) -> (params' - params, state')` computed without forming
            params' (optax's updates before `apply_updates`), or None: the verification measures the
            step's displacement from it, free of the round-off of params + update.
    """

    name: str
    init: Callable
    apply: Callable
    grad: Callable
    assumptions: tuple[str, ...] = ()
    increment: Callable | None = None
    # per state structure: which float leaves the update returns unchanged (held constants)
    _held: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def template(self, params, h):
        """`init(params, h)`, recording which float leaves `apply` passes through unchanged. The engine
        takes every state from here, so `state_leaves` and `with_state_leaves` know them."""
        state = self.init(params, h)
        key = structure(state)
        if key not in self._held:
            self._held[key] = _passed_through(self, params, state, h)
        return state

    def state_leaves(self, state) -> list:
        """The dynamical state: float leaves in tree order, without counters and held constants."""
        import jax

        return [leaf for leaf, dynamic in zip(jax.tree_util.tree_leaves(state), self._dynamic(state)) if dynamic]

    def with_state_leaves(self, state, leaves):
        """`state` with its dynamical leaves replaced by `leaves` (in tree order); the others kept."""
        import jax

        flat, treedef = jax.tree_util.tree_flatten(state)
        it = iter(leaves)
        return jax.tree_util.tree_unflatten(
            treedef, [next(it) if dynamic else x for x, dynamic in zip(flat, self._dynamic(state))])

    def state_paths(self, state) -> list[str]:
        """The dynamical leaves' paths (`jax.tree_util.keystr`), for messages."""
        import jax

        return [jax.tree_util.keystr(path) for (path, _), dynamic
                in zip(jax.tree_util.tree_flatten_with_path(state)[0], self._dynamic(state)) if dynamic]

    def held_constants(self) -> list[str]:
        """Paths of the float state leaves held as constants, over the state structures seen so far."""
        return sorted({path for held in self._held.values() for path in held[1]})

    def _dynamic(self, state) -> tuple[bool, ...]:
        import jax

        held = self._held.get(structure(state))
        if held is None:  # every state the engine reads comes from template or from apply on one
            seen = "; ".join(f"{treedef} {leaves}" for treedef, leaves in self._held)
            raise InvalidRuleError(f"{self.name}: the update returns a state of another structure or dtype than the one it was "
                           f"given ({structure(state)[0]} {structure(state)[1]}, expected {seen}): make init and the "
                           "update agree, e.g. on float64 for every float leaf")
        return tuple(_is_float(leaf) and not h for leaf, h in zip(jax.tree_util.tree_leaves(state), held[0]))


def structure(state):
    """(treedef, shapes and dtypes of the leaves): the key of a pytree's structure (concrete or traced)."""
    import jax
    import jax.numpy as jnp

    flat, treedef = jax.tree_util.tree_flatten(state)
    return treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in flat)


def abstract(tree):
    """The pytree's leaves as `jax.ShapeDtypeStruct`s, to trace a function without computing it."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


def _passed_through(step, params, state, h):
    """(mask, paths) of the state's float leaves held as constants: `init` makes them from neither params nor
    h, and `apply` returns them as they came in (both found on the traced programs: no computation). A leaf
    that init makes from h or params (optax.inject_hyperparams' learning rate, an anchor at the initial
    point) stays dynamical, so the engine refuses it rather than freeze it at the template's h and params."""
    import jax

    params_, state_, h_ = abstract((params, state, h))
    made = jax.make_jaxpr(step.init)(params_, h_).jaxpr
    from_inputs = reached_from(made, made.invars)
    constant = [not _is_var(out) or out not in from_inputs for out in made.outvars]
    jaxpr = jax.make_jaxpr(step.apply)(params_, state_, h_).jaxpr
    n_params = len(jax.tree_util.tree_leaves(params))
    leaves = jax.tree_util.tree_leaves_with_path(state)
    inputs = jaxpr.invars[n_params:n_params + len(leaves)]
    sources = _forwarding(jaxpr)
    outputs = [sources.get(out, out) if _is_var(out) else out for out in jaxpr.outvars[n_params:]]
    mask = tuple(_is_float(leaf) and fixed and out is var
                 for (_, leaf), fixed, var, out in zip(leaves, constant, inputs, outputs))
    paths = tuple(jax.tree_util.keystr(path) for (path, _), held in zip(leaves, mask) if held)
    return mask, paths


def reached_from(jaxpr, sources) -> set:
    """The variables of `jaxpr` with a data path from `sources` (a sub-jaxpr that one reaches counts whole)."""
    reached = set(sources)
    for eqn in jaxpr.eqns:
        if any(_is_var(v) and v in reached for v in eqn.invars):
            reached.update(eqn.outvars)
    return reached


#: Primitives that call a sub-jaxpr once on their own inputs (the kink walker follows the same ones).
CALLS = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "remat2", "remat",
         "checkpoint")


def _forwarding(jaxpr) -> dict:
    """output var -> the input var it is, through calls (pjit: a jitted function returning an argument)."""
    forwarded = {}
    for eqn in jaxpr.eqns:
        if eqn.primitive.name not in CALLS:
            continue
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        inner = getattr(inner, "jaxpr", inner)
        if inner is None or len(inner.invars) != len(eqn.invars):
            continue
        inner_sources = _forwarding(inner)
        for out, inner_out in zip(eqn.outvars, inner.outvars):
            inner_out = inner_sources.get(inner_out, inner_out) if _is_var(inner_out) else inner_out
            if _is_var(inner_out) and inner_out in inner.invars:
                source = eqn.invars[inner.invars.index(inner_out)]
                forwarded[out] = forwarded.get(source, source) if _is_var(source) else source
    return forwarded


def _is_var(v) -> bool:
    from jax.extend.core import Literal

    return not isinstance(v, Literal)


def _is_float(leaf) -> bool:
    import jax.numpy as jnp

    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


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

    def increment(params, state, h):
        updates, new_state = factory(h).update(grad(params), state, params)
        return updates, _hold_counters(new_state, count)

    def apply(params, state, h):
        updates, new_state = increment(params, state, h)
        return optax.apply_updates(params, updates), new_state

    assumptions = (f"step counters held at {count} (bias corrections 1 - b^count, schedules evaluated there)",)
    return Step(name, init, apply, grad, assumptions, increment)


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
