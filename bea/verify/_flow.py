"""The truncated modified flow, integrated by diffrax with a high-order adaptive solver in float64."""

from __future__ import annotations

from collections.abc import Callable

from .._cache import BoundedCache, freeze
from .._derive import MAX_SAFE_ORDER, modified_equation

__all__ = ["flow_solver", "modified_field", "vanishing_terms"]

RTOL = 1e-13


def modified_field(rule, model, order: int, values: dict | None = None, *, with_manifold: bool = False):
    """field(theta, h) -> f_0 + h f_1 + ... + h^order f_order for the model, as a JAX function.

    with_manifold: also return, for rules with memory, `manifold(theta, h)` -> the
    states on the slow manifold (derived two orders further, so that starting
    there adds only O(h^{order+4}) to one step).

    Concrete derivation on the model's SymPy losses where it has them; the
    coordinate-free view, lowered by autodiff, otherwise (the MLP). Derivations
    and lowered functions are cached (bounded, least recently used first): a
    local and a global sweep, an automatic search, or the same call in a
    notebook cell run again derive and compile once.
    """
    key = _lowered_key(rule, model, values)
    if key is not None:
        cached = _LOWERED.get((key, order, with_manifold))
        if cached is not None:
            return cached
    result = _lower(rule, model, order, values, with_manifold)
    if key is not None:
        _LOWERED.put((key, order, with_manifold), result)  # one compilation for the local and the global sweep
    return result


def _lower(rule, model, order, values, with_manifold):
    memory = hasattr(rule, "decays")
    derived = _derived(rule, model, order + 2 if memory and with_manifold else order, values)
    if model.sympy_losses is not None:
        lowered = derived.to_jax(order=order)

        def field(theta, h):
            return lowered(theta, h)

        if not with_manifold:
            return field
        if not memory:
            return field, None
        states = derived.slow_manifold_to_jax()
        return field, lambda theta, h: tuple(s(theta, h) for s in states)
    import dataclasses

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


def vanishing_terms(rule, model, order: int, values: dict | None = None, *, look_ahead: int = 3) -> tuple[int, ...]:
    """The indices p+1, p+2, ... of the terms after f_order that vanish identically on the model, up to
    the first one that does not (at most `look_ahead` of them).

    Truncating after f_p leaves a local error h^{k+1} f_k, f_k the first term
    after f_p that is not zero: one more order per vanishing term (the midpoint
    rule has f_1 = 0, RK4 f_1 = f_2 = f_3 = 0). Each further order is derived
    only while the terms so far vanish, so the usual case costs one order.
    """

    vanishing = []
    for k in range(order + 1, min(order + look_ahead, MAX_SAFE_ORDER) + 1):
        if not _vanishes(_derived(rule, model, k, values).terms[k]):
            break
        vanishing.append(k)
    return tuple(vanishing)


def _vanishes(term) -> bool:
    """Every coefficient of a term is exactly zero (components, element-wise expressions, or tree terms)."""
    import sympy as sp

    if isinstance(term, sp.MatrixBase):
        return all(c == 0 for c in term)
    if isinstance(term, sp.Basic):
        return term == 0
    if isinstance(term, tuple) and len(term) == 2 and isinstance(term[0], sp.Basic) and not isinstance(term[1], sp.Basic):
        return term[0] == 0  # (coefficient, tree): the tree is a structure, not a number
    return all(_vanishes(t) for t in term)


#: Lowered fields (and slow manifolds) per rule, losses, values, order: their jitted functions stay compiled.
_LOWERED = BoundedCache(32)
#: Per rule, losses and values: the highest-order derivation so far (the engine is the slow part); a
#: lower order is read off a higher one (the terms f_0..f_p do not depend on how many follow).
_DERIVED = BoundedCache(32)
#: Jitted flow solvers per field (the tolerance is traced): compiled once per number of output times.
_SOLVERS = BoundedCache(32)


def _derived(rule, model, order, values):
    """The modified equation of the rule on the model through f_order (a higher-order one when cached)."""
    key = _derivation_key(rule, model, values)
    cached = _DERIVED.get(key) if key is not None else None
    if cached is not None and cached.order >= order:
        return cached
    derived = _derive(rule, model, order, values)
    if key is not None:
        _DERIVED.put(key, derived)
    return derived


def _derivation_key(rule, model, values):
    """What the derivation depends on: the rule, the SymPy losses and params (with the players' split), the
    values; None where that cannot be a key (an unhashable custom rule: derive again)."""
    if model.sympy_losses is None:  # the coordinate-free view does not depend on the model at all
        return freeze(("coordinate-free", rule, values or {}))
    return freeze(("concrete", rule, model.sympy_losses, model.params, model.players, values or {}))


def _lowered_key(rule, model, values):
    """The derivation's key, and for JAX-only models the JAX losses themselves (by identity), which the
    coordinate-free field is lowered on."""
    key = _derivation_key(rule, model, values)
    if key is None or model.sympy_losses is not None:
        return key
    return freeze((key, model.jax_losses, model.players))


def _derive(rule, model, order, values):
    values = dict(values or {})
    if model.sympy_losses is not None:
        params = model.params
        if model.players is not None:
            params = [list(params[: model.players[0]]), list(params[model.players[0]:])]
        return modified_equation(rule, order, losses=list(model.sympy_losses), params=params, values=values)
    return modified_equation(rule.bind(values) if values else rule, order)


def flow_solver(field: Callable, rtol: float = RTOL) -> Callable:
    """A jitted solve(theta0, h, times) -> theta(times) along theta' = field(theta, h), theta(0) = theta0.

    Dopri8 (Prince & Dormand 1981) with a PID step-size controller at relative and
    absolute tolerance `rtol`; h, the times and the tolerance are traced, so the
    solvers of a field at any tolerance (a sweep's tight one and its loose check)
    share one compilation per number of output times, built once per field.
    """
    import jax.numpy as jnp

    key = freeze(field)
    solve = _SOLVERS.get(key) if key is not None else None
    if solve is None:
        solve = _solver(field)
        if key is not None:
            _SOLVERS.put(key, solve)
    tolerance = jnp.asarray(rtol, dtype=jnp.float64)

    def run(theta0, h, times):
        return solve(jnp.asarray(theta0, dtype=jnp.float64), jnp.asarray(h, dtype=jnp.float64),
                     jnp.asarray(times, dtype=jnp.float64), tolerance)

    return run


def _solver(field):
    import jax

    @jax.jit
    def solve(theta0, h, times, rtol):
        return solve_flow(field, theta0, h, times, rtol)

    return solve


def solve_flow(field: Callable, theta0, h, times, rtol):
    """theta(times) along theta' = field(theta, h) by adaptive Dopri8 at tolerance rtol (traceable: jit,
    vmap over h); NaN where the solve fails (a flow that blows up, too many steps), for the sweep to flag."""
    import diffrax
    import jax.numpy as jnp

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, h: field(y, h)),
        diffrax.Dopri8(),
        t0=0.0,
        t1=times[-1],
        dt0=None,
        y0=theta0,
        args=h,
        saveat=diffrax.SaveAt(ts=times),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
        max_steps=1_000_000,
        throw=False,
    )
    return jnp.where(solution.result == diffrax.RESULTS.successful, solution.ys, jnp.nan)
