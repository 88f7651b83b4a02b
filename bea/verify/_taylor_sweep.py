"""Local-error slopes of a numeric modified field (`bea.from_optax`) against the optimizer's own iterates.

One optax step from the slow manifold, params_1 = Phi_h(params_0, S_h(params_0)), against the
flow of f_0 + ... + h^p f_p over time h: the difference is O(h^{p+2}) (Hairer, Lubich & Wanner,
Thm IX.1.2, doi:10.1007/3-540-30666-8). Every step size of a batch is independent, so a batch
runs as one program, `jax.vmap`ped over h and split over all JAX devices with `jax.sharding`
(on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N emulates N devices). The window of
step sizes is found as for the symbolic fields (`_window.find_window`), batch by batch.

The flow is integrated with Dopri8 (Prince & Dormand 1981) at fixed steps h/2; one step of h is
the check: Dopri8's error over time h is O(h^9), far below the local error sought, and a point
where the two disagree by more than 5% of the error is flagged "solver error", not fitted.

Both sides are displacements from params_0: optax's update before `apply_updates` (`Step.increment`)
and the flow of d' = f~(params_0 + d), d(0) = 0. Optax's side then carries round-off relative to
the displacement, about h |f_0|; the flow's side evaluates f~ at the rounded params_0 + d, which
adds about h eps ||∂f_0|| |params_0|. Both are far below eps |params_0|, the round-off of
params_1 - phi_h(params_0): the error can be followed several halvings further down, which Adam's
narrow windows on networks need. The floor is the larger of 1e-12 |d| and 100 h eps ||∂f_0||
|params_0|. A step without `increment` (`bea.from_update`) is compared on params_1 itself, with the
floor 1e-12 |params_0| of the symbolic sweeps.
"""

from __future__ import annotations

import math

import numpy as np

from ..lowering import require_x64
from ._checks import VerificationError, check_order, check_step_sizes
from ._sweep import _ROUNDOFF, SweepResult, _fit, _flag
from ._window import _round_down, _spectral_norm, find_window, stiffness_step

__all__ = ["taylor_local_error"]

BATCH = 8  # step sizes per sharded program (a window needs 5 consecutive usable ones)
_FLOW_STEPS = 2  # Dopri8 steps over time h for the flow; one step is the check


def _params_of(model):
    from ._network_models import NetworkModel

    return model.params0 if isinstance(model, NetworkModel) else model


def taylor_local_error(field, model, order: int, *, step_sizes=None) -> SweepResult:
    """|params_1 - phi_h(params_0)| over step sizes, phi the flow of `field` truncated after h^order.

    `field` is a `bea.TaylorModifiedField`; `model` a `bea.verify.NetworkModel` (its `params0`; its loss
    should be the one the field was built on) or a parameter pytree. Expected slope order + 2. Without
    `step_sizes` the window is searched for from h_0 = min(1, 1/||d f_0||) min(1, 1 - contraction factor).
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    order = check_order(order)
    given = None if step_sizes is None else list(check_step_sizes(step_sizes))  # before any compilation
    contraction, flat0, unravel, flat_field, series = _prepared(field, model, order, "local_error")
    coefficients = series[0] if series is not None else None

    # params and the manifold's coefficients are arguments, not constants of the program: XLA would
    # otherwise fold the whole gradient at params0 into constants at compile time (minutes on a CNN)
    def displacement_field(d, h, flat):
        return flat_field(flat + d, h)

    def one(h, flat, coefficients):
        start = unravel(flat)
        state = _initial_state(field, start, h, coefficients, series)
        if field.step.increment is not None:  # displacements on both sides (module docstring)
            moved = ravel_pytree(field.step.increment(start, state, h)[0])[0]
        else:
            moved = ravel_pytree(field.step.apply(start, state, h)[0])[0] - flat
        tight = _dopri8(displacement_field, jnp.zeros_like(flat), h, _FLOW_STEPS, flat)
        loose = _dopri8(displacement_field, jnp.zeros_like(flat), h, 1, flat)
        return jnp.stack([jnp.linalg.norm(moved - tight), jnp.linalg.norm(loose - tight), jnp.linalg.norm(moved),
                          jnp.all(jnp.isfinite(moved)).astype(jnp.float64),
                          jnp.all(jnp.isfinite(tight)).astype(jnp.float64)])

    batched = _sharded(jax.vmap(one, in_axes=(0, None, None)))

    def run(hs):
        return batched(hs, flat0, coefficients)

    scale = float(jnp.linalg.norm(flat0))
    note = "optax iterates from the slow manifold" if contraction is not None else "optax iterates"

    displacements = field.step.increment is not None
    h0, why, stiffness = _start(field.truncated(0), flat0, unravel, contraction)

    def floor(h, moved):  # the round-off of the displacements (module docstring)
        if not displacements:
            return None
        evaluation = 100 * np.finfo(np.float64).eps * h * (stiffness if math.isfinite(stiffness) else 1.0) * scale
        return max(_ROUNDOFF * moved, evaluation)

    def flags_of(hs, rows):
        return [_flag(float(e), scale, float(gap), float(moved), iterates_finite=bool(fi), flow_finite=bool(ff),
                      floor=floor(h, float(moved)))
                for h, (e, gap, moved, fi, ff) in zip(hs, rows)]

    with np.errstate(all="ignore"):
        if given is not None:
            hs = given
            rows = run(np.asarray(hs))
            return _fit("local", hs, [float(r[0]) for r in rows], flags_of(hs, rows), order + 2, note)
        probes: list = []

        def evaluate(k):
            while len(probes) <= k:  # the next batch of halvings, in one sharded program
                hs = [h0 * 2.0 ** -(len(probes) + i) for i in range(BATCH)]
                rows = run(np.asarray(hs))
                probes.extend(zip(hs, [float(r[0]) for r in rows], flags_of(hs, rows)))
            return probes[k]

        window = find_window(evaluate, "local", why)
    hs = [window.probes[i][0] for i in window.indices]
    errors = [window.probes[i][1] for i in window.indices]
    import dataclasses

    result = _fit("local", hs, errors, [""] * len(hs), order + 2, "; ".join([note, window.note]))
    return dataclasses.replace(result, automatic=True, probed=tuple(tuple(p) for p in window.probes))


def _prepared(field, model, order: int, kind: str):
    """(contraction, flat params_0, unravel, flat_field(y, h), slow-manifold series or None) of a sweep of
    `field` truncated after h^order, after every check that can fail before the sweep."""
    from jax.flatten_util import ravel_pytree

    require_x64(f"bea.verify.{kind}")
    if order > field.order:
        raise VerificationError(f"order {order} is above the field's order {field.order}: build it with "
                                f"bea.from_optax(..., order={order}) or verify a lower order")
    params = _params_of(model)
    contraction = field.contraction(params)  # also runs the field's checks on these parameters
    truncated = field.truncated(order)
    truncated.terms(params)  # NonFiniteFieldError here, before a sweep of NaN
    flat0, unravel = ravel_pytree(params)

    def flat_field(y, h):
        return ravel_pytree(truncated(unravel(y), h))[0]

    # once per sweep: each h only sums the manifold's polynomial
    return contraction, flat0, unravel, flat_field, field.slow_manifold_series(params)


def _initial_state(field, params, h, coefficients, series):
    """The optimizer's state to start from: on the slow manifold (its coefficients passed as traced arguments,
    `series` giving their unravel), or the plain init of a stateless step."""
    if coefficients is None:
        return field.step.init(params, h)
    return field.slow_manifold(params, h, series=(coefficients, series[1]))


def _start(leading, flat0, unravel, contraction) -> tuple[float, str, float]:
    """(h_0, why, ||d f_0||): h_0 = min(1, 1/||d f_0||) min(1, 1 - factor), rounded down to 1, 2 or 5 times a
    power of ten (`leading` is the field truncated to f_0: its Jacobian is all the stiffness estimate needs)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    zero = jnp.asarray(0.0, jnp.float64)
    stiffness = _spectral_norm(lambda y: ravel_pytree(leading(unravel(y), zero))[0], flat0, jax, jnp)
    h0, parts = stiffness_step(stiffness)
    if contraction is not None and contraction.factor > 0:
        h0 *= 1.0 - contraction.factor
        parts.append(f"1 - contraction factor = {1.0 - contraction.factor:.3g}")
    return _round_down(h0), ", ".join(parts), stiffness


def _dopri8(field, y0, h, steps, *args):
    """y(h) of y' = field(y, h, *args) by `steps` fixed Dopri8 steps (the truncated modified flow)."""
    import diffrax

    solution = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, a: field(y, *a)), diffrax.Dopri8(), t0=0.0,
                                   t1=h, dt0=h / steps, y0=y0, args=(h, *args), saveat=diffrax.SaveAt(t1=True),
                                   stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 1, throw=False)
    return solution.ys[-1]


def _sharded(batched):
    """(hs, *shared) -> rows, the step sizes split evenly over jax.devices() (padded with copies of the first
    h), the shared arguments replicated."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    compiled = jax.jit(batched)
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    batch, replicated = NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())

    def run(hs, *shared):
        hs = np.asarray(hs)  # the batched axis is the leading one (rows of several per-point values too)
        padded = np.concatenate([hs, np.repeat(hs[:1], -len(hs) % len(devices), axis=0)])
        shared = jax.device_put(shared, replicated)
        rows = compiled(jax.device_put(jnp.asarray(padded, dtype=jnp.float64), batch), *shared)
        return np.asarray(rows)[: len(hs)]

    return run
