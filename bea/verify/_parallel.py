"""Data-parallel local-error sweeps: step sizes x initial points in one jitted, sharded computation.

Every (h, theta_0) pair is independent: one step of the rule and one solve of
the modified flow. The pairs are laid out along one batch axis, `jax.vmap`ped
and split over all JAX devices with `jax.sharding` (on a CPU, emulate devices
with XLA_FLAGS=--xla_force_host_platform_device_count=4). No process pools.
"""

from __future__ import annotations

import numpy as np

from .._errors import UnsupportedError
from ..engines.series._jet import STEP_SIZE
from ..lowering import JaxOracle, require_x64
from ._checks import check_compatible, check_order, check_values
from ._flow import flow_solver, modified_field

__all__ = ["local_error_grid"]


def _walk_has_h(value) -> bool:
    if isinstance(value, tuple):
        return any(_walk_has_h(v) for v in value)
    return hasattr(value, "has") and value.has(STEP_SIZE)


def local_error_grid(rule, model, order: int, *, step_sizes, initial_points, values: dict | None = None) -> np.ndarray:
    """|Phi_h(theta_0) - phi_h(theta_0)| for every step size and initial point, shape (len(h), len(points)).

    The grid runs as one program, sharded over `jax.devices()` along the batch
    axis. The step size is traced, so rules whose hyperparameters are tied to h
    (SAM with rho = c h) are refused here; sweep them with `local_error`.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    require_x64("bea.verify.local_error_grid")
    order = check_order(order, memory=hasattr(rule, "decays"))
    check_compatible(rule, model)
    values = check_values(rule, values, suggest=lambda name: f"pass values={{'{name}': ...}}")
    bound = rule.bind(values) if values else rule
    if any(_walk_has_h(v) for v in bound.hyperparameters.values()):
        raise UnsupportedError(f"{rule.name} has a hyperparameter tied to h; use bea.verify.local_error for it")
    numeric = bound.numeric(1.0, values)  # hyperparameters do not depend on h: any h gives the same floats
    field, manifold = modified_field(rule, model, order, values, with_manifold=True)
    solve = flow_solver(field)
    losses = list(model.jax_losses)
    oracle = JaxOracle(losses)

    def one(h, theta0):
        if manifold is not None:
            theta1, _ = numeric.update(theta0, manifold(theta0, h), oracle, h, None)
        else:
            theta1 = numeric.step(theta0, oracle, h)
        return jnp.linalg.norm(theta1 - solve(theta0, h, h[None])[-1])

    hs = np.asarray(step_sizes, dtype=float)
    points = np.atleast_2d(np.asarray(initial_points, dtype=float))
    grid_h = np.repeat(hs, len(points))
    grid_theta = np.tile(points, (len(hs), 1))
    devices = jax.devices()
    padded = -len(grid_h) % len(devices)  # the batch must split evenly over the devices
    grid_h = np.concatenate([grid_h, np.full(padded, hs[0])])
    grid_theta = np.concatenate([grid_theta, np.repeat(points[:1], padded, axis=0)])
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))  # automatic axis: diffrax stays unaware of it
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    errors = jax.jit(jax.vmap(one))(jax.device_put(jnp.asarray(grid_h), batch), jax.device_put(jnp.asarray(grid_theta), batch))
    return np.asarray(errors)[: len(hs) * len(points)].reshape(len(hs), len(points))
