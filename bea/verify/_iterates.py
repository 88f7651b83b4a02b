"""The rule's own iterates for a sweep, compiled once: the step size and the number of steps are traced.

`bea.iterate` compiles one `lax.scan` per call, with h a constant of the trace;
a sweep that probes twenty step sizes would compile twenty times. Here one
jitted function takes h and the steps between checkpoints as arguments, so a
whole sweep (the automatic search included) compiles once per number of
checkpoints. The step is the rule's own `step`/`update` made numeric by
`rule.numeric`, the very function `bea.iterate` runs. Hyperparameters that are
expressions in h (SAM with rho = h/2) are made numeric per h, and a rule whose
step needs h as a Python number (a branch on h) falls back to one compilation
per step size: correct either way, only slower.
"""

from __future__ import annotations

import sympy as sp

from .._cache import BoundedCache, freeze
from ..engines.series._jet import STEP_SIZE

__all__ = ["compiled_iterates"]


def _uses_h(rule, values) -> bool:
    """Whether a hyperparameter of the bound rule is an expression in the step size h."""
    found = []

    def walk(value):
        if isinstance(value, tuple):
            for v in value:
                walk(v)
        elif isinstance(value, sp.Basic):
            found.append(STEP_SIZE in value.free_symbols)

    for value in rule.bind(values or {}).hyperparameters.values():
        walk(value)
    return any(found)


#: Compiled iterations per rule, losses, initial point, values, slow manifold and number of checkpoints.
_COMPILED = BoundedCache(32)


def compiled_iterates(rule, model, values, manifold, marks: int):
    """The iteration of `_compile`, built once per rule, model, values, manifold and `marks` (cached)."""
    key = freeze((rule, model.jax_losses, tuple(model.theta0.tolist()), values or {}, manifold, marks))
    run = _COMPILED.get(key) if key is not None else None
    if run is None:
        run = _compile(rule, model, values, manifold, marks)
        if key is not None:
            _COMPILED.put(key, run)
    return run


def _compile(rule, model, values, manifold, marks: int):
    """run(h, per_mark) -> (theta at the `marks` checkpoints, largest |theta_n - theta_0|, all iterates finite).

    The iteration starts at `model.theta0` (rules with memory: with the state
    `manifold(theta0, h)` on the slow manifold, no bias correction, as
    `bea.iterate(..., state0=...)` runs them) and takes `marks * per_mark`
    steps of size h; the k-th checkpoint is theta after k * per_mark steps.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ..lowering import JaxOracle

    oracle = JaxOracle(list(model.jax_losses))
    theta0 = jnp.asarray(model.theta0, dtype=jnp.float64)
    memory = hasattr(rule, "decays")

    def make(numeric):
        def program(h, per_mark):
            if memory:
                state0 = tuple(jnp.asarray(s, jnp.float64) for s in manifold(theta0, h))

                def step(carry):
                    theta, state = carry
                    theta, state = numeric.update(theta, state, oracle, h, None)
                    return jnp.asarray(theta, jnp.float64), tuple(jnp.asarray(s, jnp.float64) for s in state)

                start = (theta0, state0)
            else:

                def step(theta):
                    return jnp.asarray(numeric.step(theta, oracle, h), jnp.float64)

                start = theta0

            def position(carry):
                return carry[0] if memory else carry

            def one(_, loop):
                carry, farthest, finite = loop
                carry = step(carry)
                theta = position(carry)
                return carry, jnp.maximum(farthest, jnp.linalg.norm(theta - theta0)), finite & jnp.isfinite(theta).all()

            def segment(loop, _):
                loop = jax.lax.fori_loop(0, per_mark, one, loop)
                return loop, position(loop[0])

            loop = (start, jnp.asarray(0.0, jnp.float64), jnp.asarray(True))
            (_, farthest, finite), points = jax.lax.scan(segment, loop, None, length=marks)
            return points, farthest, finite

        return program

    if _uses_h(rule, values):
        traced = None
    else:
        traced = jax.jit(make(rule.numeric(1.0, values)))  # hyperparameters free of h: h only enters the step
    per_h: dict = {}

    def run(h: float, per_mark: int):
        nonlocal traced
        h_array = jnp.asarray(h, dtype=jnp.float64)
        steps = jnp.asarray(per_mark, dtype=jnp.int64)
        if traced is not None:
            try:
                out = traced(h_array, steps)
            except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                    jax.errors.TracerIntegerConversionError):
                traced = None  # the step needs a concrete h: one compilation per step size from now on
        if traced is None:
            if h not in per_h:
                program = make(rule.numeric(h, values))
                per_h[h] = jax.jit(lambda _, n, program=program, h=h: program(h, n))  # h a constant of the trace
            out = per_h[h](h_array, steps)
        points, farthest, finite = out
        return np.asarray(points), float(farthest), bool(finite)

    return run
