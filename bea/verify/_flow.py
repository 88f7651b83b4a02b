"""The truncated modified flow, integrated by diffrax with a high-order adaptive solver in float64."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["flow_solver", "modified_field"]

RTOL = 1e-13


def modified_field(rule, model, order: int, values: dict | None = None, *, with_manifold: bool = False):
    """field(theta, h) -> f_0 + h f_1 + ... + h^order f_order for the model, as a JAX function.

    with_manifold: also return, for rules with memory, `manifold(theta, h)` -> the
    states on the slow manifold (derived two orders further, so that starting
    there adds only O(h^{order+4}) to one step).

    Concrete derivation on the model's SymPy losses where it has them; the
    coordinate-free view, lowered by autodiff, otherwise (the MLP).
    """
    key = _cache_key(rule, model, order, values, with_manifold)
    if key is not None and key in _DERIVED:
        return _DERIVED[key]
    result = _modified_field(rule, model, order, values, with_manifold)
    if key is not None:
        _DERIVED[key] = result
    return result


_DERIVED: dict = {}  # derivations reused across sweeps (the exact engine is the slow part)


def _cache_key(rule, model, order, values, with_manifold):
    try:
        losses = None if model.sympy_losses is None else tuple(map(str, model.sympy_losses))
        key = (rule, model.name, losses, tuple(map(float, model.theta0)), order,
               tuple(sorted((str(k), str(v)) for k, v in (values or {}).items())), with_manifold)
        hash(key)
        return key
    except TypeError:  # an unhashable custom rule: derive again
        return None


def _modified_field(rule, model, order, values, with_manifold):
    import bea

    values = dict(values or {})
    if model.sympy_losses is not None:
        params = model.params
        if model.players is not None:
            params = [list(params[: model.players[0]]), list(params[model.players[0]:])]
        memory = hasattr(rule, "decays")
        derived = order + 2 if memory and with_manifold else order
        me = bea.modified_equation(rule, derived, losses=list(model.sympy_losses), params=params, values=values)
        lowered = me.to_jax(order=order)

        def field(theta, h):
            return lowered(theta, h)

        if not with_manifold:
            return field
        states = me.slow_manifold_to_jax() if memory else []
        return field, (lambda theta, h: tuple(s(theta, h) for s in states)) if memory else None
    import dataclasses

    memory = hasattr(rule, "decays")
    derived = bea.modified_equation(rule.bind(values) if values else rule, order + 2 if memory and with_manifold else order)
    cf = dataclasses.replace(derived, order=order, terms=derived.terms[: order + 1])
    losses = list(model.jax_losses) if cf.colored else model.jax_losses[0]
    lowered = cf.to_jax(loss=losses)

    def field(theta, h):
        if not cf.n_players:
            return lowered(theta, h)
        import jax.numpy as jnp

        split = model.players[0]  # the lowered field takes one pytree per player
        return jnp.concatenate(lowered((theta[:split], theta[split:]), h))

    if not with_manifold:
        return field
    if not memory:
        return field, None
    states = derived.slow_manifold_to_jax(loss=losses)
    return field, lambda theta, h: tuple(s(theta, h) for s in states)


def flow_solver(field: Callable, rtol: float = RTOL) -> Callable:
    """A jitted solve(theta0, h, times) -> theta(times) along theta' = field(theta, h), theta(0) = theta0.

    Dopri8 (Prince & Dormand 1981) with a PID step-size controller at relative and
    absolute tolerance `rtol`; h and the times are traced, so a sweep compiles once
    per number of output times.
    """
    import diffrax
    import jax
    import jax.numpy as jnp

    term = diffrax.ODETerm(lambda t, y, h: field(y, h))

    @jax.jit
    def solve(theta0, h, times):
        solution = diffrax.diffeqsolve(
            term,
            diffrax.Dopri8(),
            t0=0.0,
            t1=times[-1],
            dt0=None,
            y0=theta0,
            args=h,
            saveat=diffrax.SaveAt(ts=times),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
            max_steps=1_000_000,
        )
        return solution.ys

    def run(theta0, h, times):
        return solve(jnp.asarray(theta0, dtype=jnp.float64), jnp.asarray(h, dtype=jnp.float64),
                     jnp.asarray(times, dtype=jnp.float64))

    return run
