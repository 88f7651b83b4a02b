"""Verification of a modifying field: the rule run on f^ follows its target flow to O(h^{p+2}).

`bea.modifying_equation(rule, p, ...)` gives f^ = f^_0 + h f^_1 + ... + h^p f^_p such that the rule, run
with grad := -f^ (every loss's oracle returns the corrected field), has the target flow as its modified
equation through h^p (Chartier, Hairer & Vilmart, Math. Comp. 76 (2007),
doi:10.1090/S0025-5718-07-01967-9). So one step of the corrected rule and the time-h flow of the target
differ by O(h^{p+2}) where the uncorrected rule differs by O(h^2): the fitted slope p + 2 tests every
term of f^. Rules with memory start on the slow manifold of the rule run on f^ (derived two orders
further, as `local_error` does for the rule itself).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sympy as sp

from .._modifying import modifying_equation
from ..engines.series._jet import STEP_SIZE
from ._checks import VerificationError
from ._flow import RTOL, flow_solver
from ._iterates import _uses_h
from ._sweep import _MANIFOLD_NOTE, _check_inputs, _duration, _flag, _sweep
from ._window import start_step

__all__ = ["modifying_local_error"]


class _FieldOracle:
    """grad(x) = -F_k(x, h), grad.hvp(x, v) = -F_k'(x) v: the rule's oracle on the corrected fields."""

    def __init__(self, fields, h, index: int = 0):
        self._fields, self._h, self._index = fields, h, index

    def __getitem__(self, k: int):
        if not 0 <= k < len(self._fields):
            raise IndexError(f"the rule asked for loss {k}, but {len(self._fields)} field(s) were given")
        return _FieldOracle(self._fields, self._h, k)

    def __call__(self, x):
        return -self._fields[self._index](x, self._h)

    def hvp(self, x, v):
        import jax

        return -jax.jvp(lambda y: self._fields[self._index](y, self._h), (x,), (v,))[1]

    def value(self, x):
        raise VerificationError("the rule asked for a loss value; a modifying field is verified as a field only")


def _lambdified(params, column):
    """column(theta, h) as a jitted JAX function of the parameter vector and the step size."""
    import jax
    import jax.numpy as jnp

    fn = sp.lambdify([list(params), STEP_SIZE], list(column), modules="jax")
    return jax.jit(lambda theta, h: jnp.stack([jnp.asarray(c, dtype=jnp.float64) * jnp.ones(()) for c in
                                                fn(list(theta), h)]))


def modifying_local_error(rule, model, order: int, *, step_sizes=None, values: dict | None = None):
    """|Phi^_h(theta_0) - phi_h(theta_0)|: one step of `rule` run on its modifying field of order `order`
    (`bea.modifying_equation`, default target: the rule's own limiting flow) against the flow of the target
    over duration * h; expected slope order + 2. Step sizes as in `local_error` (automatic by default).

    Needs a model with SymPy losses (the modifying field is derived on them): two-param, quadratic, dln,
    bilinear-game, or a `bea.verify.Model` with `sympy_losses`.
    """
    import jax
    import jax.numpy as jnp

    order, step_sizes, values = _check_inputs(rule, model, order, values, step_sizes, kind="local_error")
    if model.sympy_losses is None:
        raise VerificationError(
            f"{model.name} has no SymPy losses, and a modifying field is derived on them: verify --modifying on "
            "two-param, quadratic, dln or bilinear-game (or a bea.verify.Model with sympy_losses)")
    params = list(model.params)
    split = [params[: model.players[0]], params[model.players[0]:]] if model.players is not None else params
    losses = list(model.sympy_losses)
    corrected = modifying_equation(rule, order, losses=losses, params=split, values=values)
    correction = corrected.field(order)
    if corrected.kind == "shared":  # SGD steps: each batch's -grad E_k plus the shared correction
        columns = [sp.Matrix([-sp.diff(loss, p) for p in params]) + correction for loss in losses]
    else:
        columns = [correction] * len(losses)
    fields = [_lambdified(params, c) for c in columns]
    target = sum((STEP_SIZE**l * sp.Matrix(t) for l, t in enumerate(corrected.target)), sp.zeros(len(params), 1))
    target_field = _lambdified(params, target)
    tight, loose = flow_solver(target_field), flow_solver(target_field, RTOL * 100)
    memory = hasattr(rule, "decays")
    manifold = None
    if memory:
        from .._derive import modified_equation

        on_field = modified_equation(rule, order + 2, fields=[list(c) for c in columns], params=split, values=values,
                                     _hyperparameters_in_fields=True)
        states = on_field.slow_manifold_to_jax()
        manifold = lambda theta, h: tuple(s(theta, h) for s in states)  # noqa: E731
    theta0 = jnp.asarray(model.theta0, dtype=jnp.float64)

    def one_step(numeric, h):
        oracle = _FieldOracle(fields, h)
        if memory:
            state = tuple(jnp.asarray(s, jnp.float64) for s in manifold(theta0, h))
            return jnp.asarray(numeric.update(theta0, state, oracle, h, None)[0], jnp.float64)
        return jnp.asarray(numeric.step(theta0, oracle, h), jnp.float64)

    traced = None if _uses_h(rule, values) else jax.jit(lambda h: one_step(rule.numeric(1.0, values), h))

    def point(h, _steps):
        end = np.asarray(traced(jnp.asarray(h, jnp.float64)) if traced is not None
                         else one_step(rule.numeric(h, values), h))
        span = _duration(rule) * h
        predicted = np.asarray(tight(np.asarray(model.theta0), h, [span])[-1])
        rough = np.asarray(loose(np.asarray(model.theta0), h, [span])[-1])
        error = float(np.linalg.norm(end - predicted))
        start = np.asarray(model.theta0)
        flag = _flag(error, float(np.linalg.norm(start)), float(np.linalg.norm(rough - predicted)),
                     float(np.linalg.norm(end - start)), iterates_finite=bool(np.isfinite(end).all()),
                     flow_finite=bool(np.isfinite(predicted).all()))
        return error, flag

    note = "; ".join(filter(None, [_MANIFOLD_NOTE if memory else "",
                                   f"the rule run on its modifying field of order {order} against the target flow"]))
    start = None if step_sizes is not None else start_step(target_field, model.theta0, rule, values)
    result = _sweep("local", None if step_sizes is None else [(h, 1) for h in step_sizes], point, start, order + 2,
                    note, steps_for=lambda k: (start[0] * 2.0**-k, 1))
    if result.slope - result.expected > 0.5:  # f^_{p+1} = 0 on the model (the midpoint rule's): one order more each
        vanishing = []
        for k in range(order + 1, order + 4):
            if any(sp.expand(c) != 0 for c in modifying_equation(rule, k, losses=losses, params=split,
                                                                  values=values).terms[k]):
                break
            vanishing.append(k)
        if vanishing:
            names = ", ".join(f"f^_{k}" for k in vanishing)
            result = dataclasses.replace(
                result, expected=result.expected + len(vanishing), vanishing=tuple(vanishing),
                note=f"{result.note}; {names} vanish{'es' if len(vanishing) == 1 else ''} on this model: expected "
                     f"slope {result.expected + len(vanishing)}")
    return result
