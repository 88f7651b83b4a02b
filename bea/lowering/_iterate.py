"""Running a rule's own step on arrays: the discrete iterates BEA describes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sympy as sp

from .._errors import UnknownSymbolError
from ._x64 import require_x64

__all__ = ["JaxOracle", "iterate"]


class JaxOracle:
    """The numerical gradient oracle: grad(x), grad.hvp(x, v), grad.value(x), grad[k], via JAX autodiff."""

    def __init__(self, losses: Sequence[Callable], index: int = 0):
        import jax

        self._losses = tuple(losses)
        self._index = index
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
):
    """Iterates theta_0, ..., theta_steps of `rule` at step size h, as an array of shape (steps+1, dim).

    `loss` is a JAX function of the parameter vector (or a list of them for rules
    with several losses), or a SymPy expression in `params`. `values` gives the
    rule's symbolic hyperparameters. The step is the very function the engine
    expands, run under `jax.lax.scan`. Rules with memory start from their `init`
    state (zeros) and receive the step index n (bias corrections); with `state0`
    (e.g. the slow manifold, `ModifiedEquation.slow_manifold_to_jax`) they start
    from it in the large-n regime (n = None: no bias correction).
    """
    import jax
    import jax.numpy as jnp

    require_x64("bea.iterate")
    if isinstance(loss, (list, tuple)):
        losses = [_as_jax_loss(l, params) for l in loss]
    else:
        losses = [_as_jax_loss(loss, params)]
    numeric = rule.numeric(h, values)
    oracle = JaxOracle(losses)
    theta0 = jnp.asarray(theta0, dtype=jnp.float64)

    if hasattr(numeric, "decays"):  # a rule with memory: its state starts from init (zeros), n counts steps

        def body(carry, n):
            theta, state = carry
            theta, state = numeric.update(theta, state, oracle, h, None if state0 is not None else n)
            return (theta, tuple(state)), theta

        def start(theta):
            if state0 is not None:
                return (theta, tuple(jnp.asarray(s, dtype=jnp.float64) for s in state0))
            return (theta, tuple(numeric.init(theta, oracle)))

    else:

        def body(theta, n):
            new = numeric.step(theta, oracle, h)
            return new, new

        def start(theta):
            return theta

    @jax.jit
    def run(theta):
        _, path = jax.lax.scan(body, start(theta), jnp.arange(steps))
        return jnp.concatenate([theta[None], path])

    return run(theta0)
