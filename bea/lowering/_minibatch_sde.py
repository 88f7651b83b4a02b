"""The stochastic modified equation of minibatch SGD on a large model, without a dense covariance.

For a per-example loss E_i(theta) = loss(theta, example_i) on N examples, E = (1/N) sum_i E_i, SGD
with batches of B indices drawn uniformly with replacement has, to first order in h, the
stochastic modified equation (Li, Tai & E, JMLR 20, 2019, arXiv:1811.01558, Thm 3)

    dX = (b_0 + h b_1) dt + (h Sigma / B)^{1/2} dW,   b_0 + h b_1 = -grad E - (h/2) hess E grad E,

Sigma = (1/N) sum_i (g_i - gbar)(g_i - gbar)^T the covariance of the per-example gradients
g_i = grad E_i (gbar = grad E). Sigma is P x P for P parameters: never formed here. With G the
N x P matrix of rows g_i - gbar, Sigma = G^T G / N, so for z ~ N(0, I_N)

    (1/sqrt N) G^T z = (1/sqrt N) sum_i z_i (g_i - gbar) = (1/sqrt N) grad_theta sum_i (z_i - zbar) E_i(theta)

has covariance Sigma: the noise is sqrt(h/B) (1/sqrt N) G^T dW_N with W_N a Brownian motion in
example space, and G^T z is one reverse-mode gradient of a weighted loss (the cost of one
full-batch gradient; no per-example gradients are formed). Without replacement the batch mean's covariance is
Sigma (N - B) / (B (N - 1)) (the finite-population factor) in place of Sigma / B.

The drift is not written by hand: at order <= 1 the SME of SGD has the drift of GD's modified
field f_0 + h f_1 (bea's stochastic engine derives it; tests/engines/test_stochastic.py checks it
against bea.modified_equation(GD(), p)), so `bea.modified_equation(bea.rules.GD(), order)` is
lowered coordinate-free (Hessian-vector products, `bea.lowering._autodiff`). From order 2 on the
generator of SGD has third-order terms (the third cumulant of the per-example gradients) and no
SDE matches it: refused.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable

from .._errors import (
    InvalidArrayError,
    InvalidHyperparameterError,
    InvalidOrderError,
    NoStochasticModifiedEquationError,
    UnsupportedError,
)
from ._sde import path_keys
from ._x64 import check_scalar, require_x64

__all__ = ["MinibatchSDE", "sgd_sde", "sgd_sde_paths"]


def _n_examples(data) -> int:
    """N: the common leading axis of every leaf of `data`."""
    import jax
    import jax.numpy as jnp

    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise InvalidArrayError("data has no arrays: pass the examples as an array or a pytree of arrays, "
                                "one example per row (leading axis N)")
    sizes = set()
    for leaf in leaves:
        shape = jnp.shape(leaf)
        if not shape:
            raise InvalidArrayError("every array in data must have a leading axis of examples (shape (N, ...)), "
                                    "got a scalar")
        sizes.add(shape[0])
    if len(sizes) != 1:
        raise InvalidArrayError(f"every array in data must have the same number of examples (leading axis), "
                                f"got {sorted(sizes)}")
    n = sizes.pop()
    if n < 1:
        raise InvalidArrayError("data has no examples (leading axis of length 0)")
    return n


def _check_batch(batch_size, replacement, n: int):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InvalidHyperparameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(replacement, bool):
        raise InvalidHyperparameterError(f"replacement must be True or False, got {replacement!r}")
    if not replacement and batch_size > n:
        raise InvalidHyperparameterError(
            f"batch_size {batch_size} is larger than the {n} examples, which sampling without replacement cannot "
            "draw; lower batch_size or pass replacement=True"
        )


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise InvalidOrderError(f"order must be 0 or 1, got {order!r}")
    if order > 1:
        raise NoStochasticModifiedEquationError(
            f"no SDE matches minibatch SGD at order {order} in general: from order 2 on its modified generator has "
            "third-order terms (the third cumulant of the per-example gradients) and the drift noise-dependent "
            "terms; pass order=1 (or derive the generator series on a small SymPy model with "
            "bea.stochastic_modified_equation(bea.rules.SGD(...), 2, ..., allow_generator=True))"
        )
    return int(order)


@dataclasses.dataclass(frozen=True)
class MinibatchSDE:
    """dX = (b_0 + h b_1) dt + (h c Sigma)^{1/2} dW of minibatch SGD on a parameter pytree, lowered to JAX.

    c is `variance_factor`: 1/B with replacement, (N - B)/(B (N - 1)) without (the covariance of a
    batch mean is c Sigma). Order 0 is the gradient flow (D_0 = 0: the noise enters at order 1).

    - `drift(params, h)`: b_0 + h b_1 (order 1) or b_0 (order 0), a pytree like params; GD's
      coordinate-free modified field lowered by autodiff (Hessian-vector products).
    - `noise(params, h, z)`: the diffusion factor applied to z in example space (shape (N,)),
      sqrt(h c / N) sum_i (z_i - zbar) grad E_i: one reverse pass; for z ~ N(0, I_N) it has
      covariance h c Sigma (zero at order 0).
    - `sample_paths(...)`: the SDE solved by diffrax on independent Brownian paths.
    - `with_batch_size(B)`: the SDE for another batch size, reusing the compiled drift, noise and solver.
    - `loss(params)`: E, the mean per-example loss; `noise_trace(params)`: tr Sigma;
      `implicit_regularizers(params, h)`: (h/4) |grad E|^2 (IGR) and (h/4) c tr Sigma.

    Built by `sgd_sde`; references there.
    """

    per_example_loss: Callable
    data: object
    n_examples: int
    batch_size: int
    replacement: bool
    order: int
    drift: Callable
    # jitted cores shared by every batch size (`with_batch_size`): the variance factor is traced
    _factor: Callable = dataclasses.field(repr=False, compare=False, default=None)
    _solvers: dict = dataclasses.field(repr=False, compare=False, default_factory=dict)

    def with_batch_size(self, batch_size: int, replacement: bool | None = None) -> MinibatchSDE:
        """The same SDE for another batch size (and sampling): only c changes, compiled code is reused."""
        replacement = self.replacement if replacement is None else replacement
        _check_batch(batch_size, replacement, self.n_examples)
        return dataclasses.replace(self, batch_size=int(batch_size), replacement=replacement)

    def noise(self, params, h, z):
        """sqrt(h c / N) sum_i (z_i - zbar) grad E_i(params): the diffusion factor applied to z, shape (N,)."""
        import jax.numpy as jnp

        from ._autodiff import _check_params

        _check_params(params, allow_float32=False)
        check_scalar(h, "h")
        z = jnp.asarray(z)
        if z.shape != (self.n_examples,):
            raise InvalidArrayError(
                f"z must be a vector in example space, shape ({self.n_examples},), got shape {z.shape}"
            )
        return self._factor(params, jnp.asarray(h, dtype=jnp.float64), self._noise_variance, z)

    @property
    def _noise_variance(self) -> float:
        return self.variance_factor if self.order >= 1 else 0.0  # D_0 = 0: the noise enters at order 1

    @property
    def variance_factor(self) -> float:
        """c: the covariance of a batch mean of per-example gradients is c Sigma."""
        n, b = self.n_examples, self.batch_size
        if self.replacement:
            return 1.0 / b
        return 0.0 if b == n else (n - b) / (b * (n - 1))

    def loss(self, params):
        """E(params) = (1/N) sum_i loss(params, example_i)."""
        import jax.numpy as jnp

        return jnp.mean(_per_example(self.per_example_loss, self.data)(params))

    def noise_trace(self, params):
        """tr Sigma = (1/N) sum_i |g_i - gbar|^2, by per-example gradients (memory N x P: for small models)."""
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        grads = jax.vmap(lambda example: ravel_pytree(jax.grad(self.per_example_loss)(params, example))[0])(self.data)
        return jnp.mean(jnp.sum((grads - jnp.mean(grads, axis=0)) ** 2, axis=1))

    def implicit_regularizers(self, params, h):
        """(igr, noise): (h/4) |grad E|^2, Barrett & Dherin's implicit gradient regularizer (ICLR 2021,
        arXiv:2009.11162), and (h/4) c tr Sigma, the noise-driven one of Smith, Dherin, Barrett & De
        (ICLR 2021, arXiv:2101.12176): with random shuffling their mean SGD iterate follows
        E + (h/4) |grad E|^2 + (h/(4B)) (N - B)/(N - 1) (1/N) sum_i |grad E_i - grad E|^2, i.e. c
        without replacement. With replacement c = 1/B is an extrapolation of theirs (their derivation
        is for random shuffling; the SME has no tr Sigma term in its drift, the noise acts through D~)."""
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        gradient = ravel_pytree(jax.grad(self.loss)(params))[0]
        return h / 4 * jnp.sum(gradient**2), h / 4 * self.variance_factor * self.noise_trace(params)

    def sample_paths(self, params0, h: float, times, *, key, n_paths: int, dt0: float | None = None, solver=None):
        """X at `times` on `n_paths` independent paths from X_0 = params0: a pytree like params0 whose
        leaves have two leading axes (n_paths, len(times)).

        Solved by diffrax (`diffeqsolve` of an ODETerm plus a ControlTerm whose control is a
        `VirtualBrownianTree` of shape (N,) in example space and whose vector field is the linear
        map `noise` as a lineax `FunctionLinearOperator`), on a fixed grid through `times` with
        steps of at most `dt0` (default min(h, h^(order+1))/4: Euler's weak error O(dt0) below the
        SME's own O(h^(order+1))), `jax.vmap`ped over `jax.random.split(key, n_paths)` (sharded over
        all JAX devices when there are several).
        `solver` defaults to `diffrax.Euler()` (Euler–Maruyama: Itô, weak order 1); the noise
        depends on the parameters, so Stratonovich solvers (Heun, ShARK, ...) are refused. Float64 only.
        """
        import diffrax
        import jax
        import jax.numpy as jnp

        from ._sde import _check_times, _grid

        require_x64("sample paths of the SDE of minibatch SGD")
        if isinstance(h, bool) or not isinstance(h, numbers.Real) or not math.isfinite(h) or h <= 0:
            raise InvalidArrayError(f"h must be a positive number (the step size), got {h!r}")
        if isinstance(n_paths, bool) or not isinstance(n_paths, numbers.Integral) or n_paths < 1:
            raise InvalidArrayError(f"n_paths must be a positive integer, got {n_paths!r}")
        h = float(h)
        dt0 = min(h, h ** (self.order + 1)) / 4 if dt0 is None else dt0
        if isinstance(dt0, bool) or not isinstance(dt0, numbers.Real) or not (math.isfinite(dt0) and dt0 > 0):
            raise InvalidArrayError(f"dt0 must be a positive number (the largest solver step), got {dt0!r}")
        solver = diffrax.Euler() if solver is None else solver
        if isinstance(solver, diffrax.AbstractStratonovichSolver):
            raise UnsupportedError(
                f"{type(solver).__name__} converges to the Stratonovich solution, but the SDE of SGD is an Itô SDE "
                "whose noise depends on the parameters; pass solver=diffrax.Euler() (the default, weak order 1)"
            )
        params0 = jax.tree_util.tree_map(jnp.asarray, params0)
        self.drift(params0, h), self.noise(params0, h, jnp.zeros(self.n_examples))  # bad input raises here
        ts = _check_times(times)
        if ts[-1] == 0:
            return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n_paths, ts.size, *x.shape)), params0)
        grid = _grid(ts, float(dt0))
        try:
            cache_key = (ts.tobytes(), grid.tobytes(), solver)
            hash(cache_key)
        except TypeError:  # an unhashable solver: compile afresh
            cache_key = None
        solve = self._solvers.get(cache_key) if cache_key is not None else None
        if solve is None:
            solve = self._solver(ts, grid, solver)
            if cache_key is not None:
                self._solvers[cache_key] = solve
        return solve(params0, jnp.asarray(h), jnp.asarray(self._noise_variance), path_keys(key, n_paths))

    def _solver(self, ts, grid, solver):
        """solve(params0, h, c, keys), jitted and vmapped over the keys: h and c are traced."""
        import diffrax
        import jax
        import jax.numpy as jnp
        import lineax
        import numpy as np

        # only what every batch size shares: the solver is cached across `with_batch_size` copies
        drift, factor, n = self.drift, self._factor, self.n_examples
        tol = float(np.min(np.diff(grid))) / 2
        example_space = jax.ShapeDtypeStruct((n,), jnp.float64)

        def solve(params0, h, variance, keys):
            def drift_vf(t, y, args):
                return drift(y, h)

            def noise_vf(t, y, args):
                return lineax.FunctionLinearOperator(lambda z: factor(y, h, variance, z), example_space)

            def one_path(path_key):
                brownian = diffrax.VirtualBrownianTree(0.0, float(grid[-1]), tol=tol, shape=(n,),
                                                       key=path_key, levy_area=diffrax.BrownianIncrement)
                terms = diffrax.MultiTerm(diffrax.ODETerm(drift_vf), diffrax.ControlTerm(noise_vf, brownian))
                solution = diffrax.diffeqsolve(
                    terms, solver, 0.0, float(grid[-1]), None, params0,
                    saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
                    stepsize_controller=diffrax.StepTo(ts=jnp.asarray(grid)), max_steps=len(grid),
                )
                return solution.ys

            return jax.vmap(one_path)(keys)

        return jax.jit(solve)


def _per_example(loss: Callable, data) -> Callable:
    """params -> (N,) per-example losses, checking that `loss` returns one scalar per example."""
    import jax
    import jax.numpy as jnp

    def losses(params):
        values = jax.vmap(loss, in_axes=(None, 0))(params, data)
        if jnp.ndim(values) != 1:
            raise InvalidArrayError(
                f"loss(params, example) must return a scalar, got shape {jnp.shape(values)[1:]} per example"
            )
        return values

    return losses


def sgd_sde(loss: Callable, data, *, batch_size: int, order: int = 1, replacement: bool = True) -> MinibatchSDE:
    """The stochastic modified equation of minibatch SGD on a JAX model, lowered without any P x P matrix.

        dX = (b_0 + h b_1) dt + sqrt(h c / N) G(X)^T dW_N,    W_N a Brownian motion in R^N,

    G^T z = sum_i (z_i - zbar) grad E_i (one reverse pass of a weighted loss), so that the noise has
    covariance h c Sigma, Sigma the covariance of the per-example gradients and c = 1/B (batches of
    B drawn with replacement) or (N - B)/(B (N - 1)) (without). This is Li, Tai & E's second-order
    SME (JMLR 20, 2019, arXiv:1811.01558, Thm 3; local weak error O(h^3)); order 0 is the gradient
    flow (the noise is O(h) in the diffusion, and enters at order 1).

    The drift b_0 + h b_1 is that of GD's modified field f_0 + h f_1 = -grad E - (h/2) hess E grad E
    (Barrett & Dherin, ICLR 2021, arXiv:2009.11162): at order <= 1 the SME of SGD and GD's modified
    equation have the same drift (bea's stochastic engine derives it), so the drift is
    `bea.modified_equation(bea.rules.GD(), order)` (coordinate-free) lowered by Hessian-vector products.

    Args:
        loss: `loss(params, example) -> scalar`, params a pytree of float64 arrays, `example` one
            row of `data` (every leaf indexed by its leading axis).
        data: an array or pytree of arrays with a common leading axis of N examples.
        batch_size: B.
        order: 0 or 1; from 2 on no SDE matches SGD in general (third-order generator terms):
            `NoStochasticModifiedEquationError`.
        replacement: batches drawn with replacement (default) or as uniform B-subsets.

    Returns a `MinibatchSDE` (drift, noise, sample_paths). Needs JAX's float64 mode.
    """
    import jax
    import jax.numpy as jnp

    # bea._derive sits above this stage, which is why `bea.lowering` does not re-export this module (`bea` does)
    from .._derive import modified_equation
    from ..rules import GD

    require_x64("the SDE of minibatch SGD")
    order = _check_order(order)
    if not callable(loss):
        raise InvalidArrayError(f"loss must be a JAX function loss(params, example) -> scalar, got {loss!r}")
    n = _n_examples(data)
    _check_batch(batch_size, replacement, n)
    per_example = _per_example(loss, data)

    def mean_loss(params):
        return jnp.mean(per_example(params))

    drift = modified_equation(GD(), order).to_jax(loss=mean_loss)

    @jax.jit
    def factor(params, h, variance, z):
        def weighted(p):
            return jnp.sum((z - jnp.mean(z)) * per_example(p))

        scale = jnp.sqrt(h * variance / n)
        return jax.tree_util.tree_map(lambda g: scale * g, jax.grad(weighted)(params))

    return MinibatchSDE(loss, data, n, int(batch_size), replacement, order, drift, factor)


def sgd_sde_paths(loss: Callable, data, params0, h: float, times, *, batch_size: int, key, n_paths: int,
                  order: int = 1, replacement: bool = True, dt0: float | None = None, solver=None):
    """`sgd_sde(loss, data, batch_size=..., order=..., replacement=...).sample_paths(params0, h, times, ...)`:
    a pytree like params0 with leaves of shape (n_paths, len(times), ...)."""
    sde = sgd_sde(loss, data, batch_size=batch_size, order=order, replacement=replacement)
    return sde.sample_paths(params0, h, times, key=key, n_paths=n_paths, dt0=dt0, solver=solver)
