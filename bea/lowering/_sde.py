"""Sample paths of a stochastic modified equation dX = b~ dt + D~^{1/2} dW, solved by diffrax.

The SME is an Itô equation (its generator is b~ . grad + 1/2 D~ : hess), so the default solver is
`diffrax.Euler` (Euler–Maruyama: converges to the Itô solution, weak order 1, any noise). diffrax's
Heun, ShARK, SRA1, SEA, ... converge to the *Stratonovich* solution, which differs from the Itô one
when D~ depends on theta; they are refused then, and allowed when D~ is constant (additive noise,
where the two agree and those solvers are of higher weak order).

Steps: a fixed grid through every requested time, each interval cut into equal steps no longer
than dt0, so the saved values are solver nodes (no interpolation between them). The Brownian
motion is a `diffrax.VirtualBrownianTree` per path (exact in law at every query time), one key
per path (sharded over all JAX devices when there are several), the solve `jax.vmap`ped over the keys.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .._errors import InvalidArrayError, UnsupportedError
from ._x64 import require_x64

__all__ = ["NEGATIVE_EIGENVALUE_TOLERANCE", "path_keys", "psd_sqrt", "sample_paths"]

# eigenvalues of D~ below -this * (its largest |eigenvalue|) are reported, not only clipped
NEGATIVE_EIGENVALUE_TOLERANCE = 1e-12


def path_keys(key, n_paths: int):
    """`jax.random.split(key, n_paths)`, sharded over all JAX devices along the paths when there are
    several and they divide n_paths (so a vmapped solve runs its paths on every device)."""
    import jax

    keys = jax.random.split(key, n_paths)
    devices = jax.devices()
    if len(devices) > 1 and n_paths % len(devices) == 0:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        keys = jax.device_put(keys, NamedSharding(Mesh(np.array(devices), ("paths",)), PartitionSpec("paths")))
    return keys


def psd_sqrt(matrix):
    """(S, deficit): S = V diag(sqrt(max(w, 0))) V^T from the eigendecomposition of the symmetric part
    of `matrix`, and deficit = max(0, -min(w)/max|w| - tolerance), > 0 when an eigenvalue is negative
    beyond round-off (the matrix is then no covariance; its negative part is clipped to 0)."""
    import jax.numpy as jnp

    sym = (matrix + matrix.T) / 2
    w, v = jnp.linalg.eigh(sym)
    scale = jnp.max(jnp.abs(w))
    relative_min = jnp.where(scale > 0, w[0] / jnp.where(scale > 0, scale, 1.0), 0.0)
    deficit = jnp.maximum(0.0, -relative_min - NEGATIVE_EIGENVALUE_TOLERANCE)
    root = (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T
    return root, deficit


def _check_times(times) -> np.ndarray:
    try:
        ts = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArrayError(f"times must be a 1-D array of numbers, got {times!r}") from None
    if ts.ndim != 1 or ts.size == 0:
        raise InvalidArrayError(f"times must be a non-empty 1-D array of times >= 0, got shape {ts.shape}")
    if not np.all(np.isfinite(ts)) or ts[0] < 0 or np.any(np.diff(ts) < 0):
        raise InvalidArrayError("times must be finite, >= 0 and non-decreasing (the path starts at theta0 at t = 0)")
    return ts


def _grid(ts: np.ndarray, dt0: float) -> np.ndarray:
    """0, the times, and equal steps of at most dt0 between consecutive ones."""
    knots = np.unique(np.concatenate([[0.0], ts]))
    pieces = [knots[:1]]
    for start, end in zip(knots[:-1], knots[1:]):
        k = max(1, math.ceil((end - start) / dt0 * (1 - 1e-12)))
        pieces.append(np.linspace(start, end, k + 1)[1:])
    return np.concatenate(pieces)


def _brownian_kind(solver):
    import diffrax

    needed = getattr(solver, "minimal_levy_area", diffrax.BrownianIncrement)
    for concrete in (diffrax.BrownianIncrement, diffrax.SpaceTimeLevyArea, diffrax.SpaceTimeTimeLevyArea):
        if issubclass(concrete, needed):
            return concrete
    raise UnsupportedError(f"{type(solver).__name__} needs a Brownian path with {needed.__name__}, which is not supported here")


def sample_paths(drift, diffusion, theta0, h, times, *, key, n_paths: int, solver=None, dt0=None,
                 constant_diffusion: bool = False, what: str = "the stochastic modified equation", values=None):
    """Array (n_paths, len(times), n): X at `times` on independent paths of dX = drift dt + diffusion^{1/2} dW.

    `drift(theta, h, **values)` -> (n,), `diffusion(theta, h, **values)` -> (n, n) (as from
    `StochasticModifiedEquation.to_jax`). X_0 = theta0 at t = 0. `dt0`: largest solver step (the
    caller's default). Warns (RuntimeWarning) when the diffusion has an eigenvalue below
    -1e-12 relative somewhere along a path: there the matrix is no covariance and is clipped to PSD.
    """
    import diffrax
    import jax
    import jax.numpy as jnp

    require_x64(f"sample paths of {what}")
    values = dict(values or {})
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or n_paths < 1:
        raise InvalidArrayError(f"n_paths must be a positive integer, got {n_paths!r}")
    if not (isinstance(dt0, (int, float)) and math.isfinite(dt0) and dt0 > 0):
        raise InvalidArrayError(f"dt0 must be a positive number (the largest solver step), got {dt0!r}")
    solver = diffrax.Euler() if solver is None else solver
    if isinstance(solver, diffrax.AbstractStratonovichSolver) and not constant_diffusion:
        raise UnsupportedError(
            f"{type(solver).__name__} converges to the Stratonovich solution, but {what} is an Itô SDE whose "
            "diffusion depends on theta; pass solver=diffrax.Euler() (the default, weak order 1)"
        )
    theta0 = jnp.asarray(theta0, dtype=jnp.float64)
    if theta0.ndim != 1:
        raise InvalidArrayError(f"theta0 must be a 1-D parameter vector, got shape {theta0.shape}")
    n = theta0.shape[0]
    drift(theta0, h, **values), diffusion(theta0, h, **values)  # bad shapes or missing values: raise here, not in diffrax
    ts = _check_times(times)
    if ts[-1] == 0:  # nothing to solve: every requested time is t = 0
        return jnp.broadcast_to(theta0, (n_paths, ts.size, n))
    grid = _grid(ts, float(dt0))
    levy_area = _brownian_kind(solver)
    tol = float(np.min(np.diff(grid))) / 2

    # the state is (X, c): c integrates how far D~ falls below PSD, so c > 0 at the end iff it did anywhere
    def drift_vf(t, state, args):
        x = state[:n]
        _, deficit = psd_sqrt(diffusion(x, h, **values))
        return jnp.concatenate([drift(x, h, **values), deficit[None]])

    def diffusion_vf(t, state, args):
        root, _ = psd_sqrt(diffusion(state[:n], h, **values))
        return jnp.concatenate([root, jnp.zeros((1, n))])

    def one_path(path_key):
        brownian = diffrax.VirtualBrownianTree(0.0, float(grid[-1]), tol=tol, shape=(n,), key=path_key,
                                               levy_area=levy_area)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift_vf), diffrax.ControlTerm(diffusion_vf, brownian))
        solution = diffrax.diffeqsolve(
            terms, solver, 0.0, float(grid[-1]), None, jnp.concatenate([theta0, jnp.zeros(1)]),
            saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
            stepsize_controller=diffrax.StepTo(ts=jnp.asarray(grid)), max_steps=len(grid),
        )
        return solution.ys[:, :n], solution.ys[-1, n]

    paths, deficits = jax.jit(jax.vmap(one_path))(path_keys(key, n_paths))
    bad = int(jnp.sum(deficits > 0))
    if bad:
        warnings.warn(
            f"the diffusion matrix of {what} has negative eigenvalues (below -{NEGATIVE_EIGENVALUE_TOLERANCE:g} "
            f"relative) along {bad} of {n_paths} paths: the truncated series is no covariance there, and its "
            "negative part was clipped to 0; lower h or the order",
            RuntimeWarning, stacklevel=3,
        )
    return paths
