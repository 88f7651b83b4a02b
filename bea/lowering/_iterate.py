"""Running a rule's own step on arrays: the discrete iterates BEA describes."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import sympy as sp

from .._errors import InvalidArrayError, UnknownSymbolError
from ..rules._operations import ImplicitSolveError, traced_solves
from ._x64 import check_floating, require_x64

__all__ = ["JaxOracle", "iterate", "iterate_random"]


class JaxOracle:
    """The numerical gradient oracle: grad(x), grad.hvp(x, v), grad.value(x), grad[k], via JAX autodiff.

    `index` picks the loss grad(x) differentiates (deterministic rules: the first); None is the mean
    of the losses (stochastic rules: E = (1/N) sum_i E_i, grad[k] the k-th example's)."""

    def __init__(self, losses: Sequence[Callable], index: int | None = 0):
        import jax

        self._losses = tuple(losses)
        self._index = index
        if index is None:
            self._loss = lambda x: sum(f(x) for f in self._losses) / len(self._losses)
        else:
            self._loss = self._losses[index]
        self._grad = jax.grad(self._loss)

    def __getitem__(self, k: int) -> JaxOracle:
        if not 0 <= k < len(self._losses):
            raise IndexError(f"the rule asked for loss {k}, but {len(self._losses)} loss(es) were given")
        return JaxOracle(self._losses, k)

    def __call__(self, x):
        return self._grad(x)

    def value(self, x):
        return self._loss(x)

    def hvp(self, x, v):
        import jax

        return jax.jvp(self._grad, (x,), (v,))[1]


def _as_jax_loss(loss, params: Sequence[sp.Symbol] | None) -> Callable:
    if not isinstance(loss, sp.Basic):
        return loss
    if params is None:
        raise UnknownSymbolError("a SymPy loss needs params= to be turned into a function of a vector")
    extra = loss.free_symbols - set(params)
    if extra:
        raise UnknownSymbolError(
            f"the loss still has free symbols {sorted(map(str, extra))}; substitute values first (loss.subs(...))"
        )
    fn = sp.lambdify([list(params)], loss, modules="jax")
    return lambda theta: fn(list(theta))


def iterate(
    rule,
    loss,
    theta0,
    h: float,
    steps: int,
    *,
    params: Sequence[sp.Symbol] | None = None,
    values: Mapping | None = None,
    state0=None,
    allow_float32: bool = False,
):
    """Iterates theta_0, ..., theta_steps of `rule` at step size h, as an array of shape (steps+1, dim).

    `loss` is a JAX function of the parameter vector (or a list of them for rules
    with several losses), or a SymPy expression in `params`. `values` gives the
    rule's symbolic hyperparameters. The step is the very function the engine
    expands, run under `jax.lax.scan`. Rules with memory start from their `init`
    state (zeros) and receive the step index n (bias corrections); with `state0`
    (e.g. the slow manifold, `ModifiedEquation.slow_manifold_to_jax`) they start
    from it in the large-n regime (n = None: no bias correction).

    theta0 is a vector (one entry per parameter, in the order of `params`); the
    iteration runs in float64, and float32 input is refused rather than silently
    upcast: pass `allow_float32=True` to iterate in the input's own precision.
    """
    import jax
    import jax.numpy as jnp

    if not allow_float32:
        require_x64("bea.iterate")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise InvalidArrayError(f"steps must be a non-negative integer, got {steps!r}")
    h = _check_step_size(h)
    theta0 = _check_theta0(rule, theta0, params, allow_float32)
    dtype = theta0.dtype
    if isinstance(loss, (list, tuple)):
        losses = [_as_jax_loss(l, params) for l in loss]
    else:
        losses = [_as_jax_loss(loss, params)]
    numeric = rule.numeric(h, values)
    oracle = JaxOracle(losses)

    if hasattr(numeric, "decays"):  # a rule with memory: its state starts from init (zeros), n counts steps
        if state0 is not None:
            state0 = _check_state0(numeric, state0, theta0, allow_float32)

        def body(carry, n):
            theta, state = carry
            theta, state = numeric.update(theta, state, oracle, h, None if state0 is not None else n)
            theta = jnp.asarray(theta, dtype)  # the carry keeps theta0's dtype (float32 when allowed)
            return (theta, tuple(jnp.asarray(s, dtype) for s in state)), theta

        def start(theta):
            if state0 is not None:
                return (theta, state0)
            return (theta, tuple(numeric.init(theta, oracle)))

    else:
        if state0 is not None:
            raise InvalidArrayError(f"{getattr(rule, 'name', 'this rule')} keeps no state; drop state0=")

        def body(theta, n):
            new = jnp.asarray(numeric.step(theta, oracle, h), dtype)
            return new, new

        def start(theta):
            return theta

    @jax.jit
    def run(theta):
        _, path = jax.lax.scan(body, start(theta), jnp.arange(steps))
        return jnp.concatenate([theta[None], path])

    solves = traced_solves()
    path = run(theta0)
    if traced_solves() != solves:  # an implicit step: a solve that failed inside jit left NaN
        _check_implicit_solves(rule, path, h)
    return path


def _check_implicit_solves(rule, path, h) -> None:
    """Raise `ImplicitSolveError` at the first non-finite iterate of a rule with an implicit solve."""
    import numpy as np

    finite = np.isfinite(np.asarray(path)).all(axis=tuple(range(1, path.ndim)))
    if finite.all():
        return
    n = int(np.argmin(finite))
    label = getattr(rule, "label", None)  # a tableau's own name (gauss4), else the rule's
    name = label if isinstance(label, str) else getattr(rule, "name", "the rule")
    raise ImplicitSolveError(
        f"the implicit solve of {name} (bea.rules.fixed_point) did not converge at "
        f"h={h} in step {n}: its fixed-point iteration contracts only when h times the Lipschitz constant of "
        "grad E is below 1 (or the iterates left the region where the implicit equation has a solution). "
        "Lower h, or raise max_iterations of fixed_point in a custom rule"
    )


def _check_step_size(h):
    """h as a finite real number (the rule's hyperparameters are made numeric with it, so it is concrete)."""
    if isinstance(h, numbers.Real) and not isinstance(h, bool):
        value = h
    else:
        try:
            concrete_scalar = not isinstance(h, (bool, str, bytes)) and getattr(h, "shape", None) == ()
            value = float(h) if concrete_scalar else None  # a JAX or NumPy scalar array
        except (TypeError, ValueError):
            value = None
    if value is None or not math.isfinite(value):
        raise InvalidArrayError(f"h must be a finite real number, got {h!r}")
    return value


def _check_theta0(rule, theta0, params, allow_float32: bool):
    """theta0 as a floating vector of the right length: float64, or its own float dtype if allowed."""
    import jax.numpy as jnp

    try:
        array = jnp.asarray(theta0)
    except TypeError:
        raise InvalidArrayError(f"theta0 must be a vector of numbers, got {theta0!r}") from None
    if jnp.issubdtype(array.dtype, jnp.integer):
        array = array.astype(jnp.float64 if not allow_float32 else jnp.result_type(float))  # integers are exact
    check_floating(array.dtype, "theta0", allow_float32=allow_float32,
                   how="pass allow_float32=True")
    if params is not None:
        expected = (len(params),)
        if array.shape != expected:
            raise InvalidArrayError(
                f"expected shape {expected} for parameters ({', '.join(map(str, params))}), got theta0 of shape "
                f"{array.shape}; theta0 holds one entry per parameter, in that order"
            )
    elif array.ndim != 1 or array.size == 0:
        raise InvalidArrayError(
            f"theta0 must be a non-empty vector, got shape {array.shape}; flatten a pytree of parameters with "
            "jax.flatten_util.ravel_pytree"
        )
    if hasattr(rule, "check_params"):  # games: the players' block sizes must add up to the length
        try:
            rule.check_params(array.shape[0])
        except ValueError as exc:
            raise InvalidArrayError(str(exc)) from None
    return array


def _check_state0(rule, state0, theta0, allow_float32: bool) -> tuple:
    """One floating array shaped like theta0 per state of the rule, in theta0's dtype."""
    import jax.numpy as jnp

    count = len(rule.decays())
    if isinstance(state0, (str, bytes)) or not hasattr(state0, "__len__") or len(state0) != count:
        raise InvalidArrayError(
            f"state0 must be a sequence of {count} state vector(s) of {rule.name}, each shaped like theta0"
        )
    out = []
    for i, s in enumerate(state0):
        array = jnp.asarray(s)
        if jnp.issubdtype(array.dtype, jnp.integer):
            array = array.astype(theta0.dtype)
        check_floating(array.dtype, f"state0[{i}]", allow_float32=allow_float32,
                       how="pass allow_float32=True")
        if array.shape != theta0.shape:
            raise InvalidArrayError(f"state0[{i}] has shape {array.shape}; every state is shaped like theta0, {theta0.shape}")
        out.append(array.astype(theta0.dtype))
    return tuple(out)


def iterate_random(rule, losses, theta0, h: float, steps: int, key, *, params: Sequence[sp.Symbol] | None = None,
                   values: Mapping | None = None, state0=None):
    """Iterates of a stochastic rule with actual draws from `key`: shape (steps+1, dim), or
    (steps+1, dim * (1 + m)) for a rule with m states, the row (theta, state_1, ..., state_m) as in its
    SME's parameters. `losses`: one loss or the per-example losses (JAX functions of the parameter
    vector, or SymPy in `params`). The step is the very function the engine averages exactly; a plain
    Python loop (draws are concrete batches), for checks on small problems.
    """
    import jax
    import jax.numpy as jnp

    losses = [_as_jax_loss(loss, params) for loss in (losses if isinstance(losses, (list, tuple)) else [losses])]
    numeric = rule.numeric(h, values)
    grad = JaxOracle(losses, None)
    theta = jnp.asarray(theta0, dtype=jnp.float64)
    state = numeric.init_state(theta) if state0 is None else tuple(jnp.asarray(v, dtype=jnp.float64) for v in state0)
    if len(state) != len(rule.state_names):
        raise InvalidArrayError(f"{rule.name} has {len(rule.state_names)} state(s) {rule.state_names}, "
                                f"state0 gives {len(state)}")
    out = [jnp.concatenate([theta, *state])]
    for _ in range(steps):
        key, sub = jax.random.split(key)
        theta, state = numeric.update(theta, state, grad, h, numeric.sample(sub, len(losses), theta.shape[0]))
        out.append(jnp.concatenate([theta, *state]))
    return jnp.stack(out)
