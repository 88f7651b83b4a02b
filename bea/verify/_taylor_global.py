"""Global-error slopes of a numeric modified field (`bea.from_optax`) against the optimizer's own iterates.

N = time/h optax steps from the slow manifold against the flow of f_0 + ... + h^p f_p over `time`,
compared at the checkpoints k time/4: the difference is O(h^{p+1}) on a fixed time interval
(Hairer, Lubich & Wanner, Thm IX.1.3 and its proof by Lady Windermere's fan,
doi:10.1007/3-540-30666-8). As in the local sweep (`_taylor_sweep`), a batch of step sizes is
one program, vmapped over h (the iterates' loops run to each h's own N) and split over
`jax.devices()`. The flow is adaptive Dopri8 at tolerance `RTOL`, checked against 100 `RTOL`.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

from ._checks import check_order, check_time
from ._flow import RTOL, solve_flow
from ._sweep import _CHECKPOINTS, MAX_GLOBAL_STEPS, SweepResult, _fit, _flag, global_step_sizes
from ._taylor_sweep import _initial_state, _prepared, _sharded, _start
from ._window import find_window

__all__ = ["taylor_global_error"]

BATCH = 4  # step sizes per program: the longest loop of a batch, 2^(BATCH-1) times the shortest, sets its cost


def taylor_global_error(field, model, order: int, *, time: float, step_sizes=None) -> SweepResult:
    """max_k |params_{n_k} - phi_{n_k h}(params_0)| at n_k h = k time/4, phi the flow of `field` truncated
    after h^order; expected slope order + 1.

    `field` is a `bea.TaylorModifiedField`, `model` a `bea.verify.NetworkModel` or a parameter pytree.
    Each h is adjusted to time/N, N a multiple of 4; without `step_sizes` the window is searched for
    from h_0 as in the local sweep, N doubling (at most `MAX_GLOBAL_STEPS` steps).
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    order = check_order(order)
    time = check_time(time)
    adjusted = None if step_sizes is None else global_step_sizes(step_sizes, time)
    contraction, flat0, unravel, flat_field, series = _prepared(field, model, order, "global_error")
    coefficients = series[0] if series is not None else None
    times = jnp.asarray(time, jnp.float64) * jnp.arange(1, _CHECKPOINTS + 1) / _CHECKPOINTS

    def one(point, flat, coefficients):  # point = (h, N/4): the steps between checkpoints, traced per h
        h, quarter = point[0], point[1].astype(jnp.int32)
        start = unravel(flat)
        state = _initial_state(field, start, h, coefficients, series)
        carry, points = (start, state), []
        for _ in range(_CHECKPOINTS):
            carry = jax.lax.fori_loop(0, quarter, lambda _, c: field.step.apply(*c, h), carry)
            points.append(ravel_pytree(carry[0])[0])
        points = jnp.stack(points)
        tight = solve_flow(flat_field, flat, h, times, RTOL)
        loose = solve_flow(flat_field, flat, h, times, 100 * RTOL)
        return jnp.stack([jnp.max(jnp.linalg.norm(points - tight, axis=1)),
                          jnp.max(jnp.linalg.norm(loose - tight, axis=1)),
                          jnp.max(jnp.linalg.norm(points - flat, axis=1)),
                          jnp.all(jnp.isfinite(points)).astype(jnp.float64),
                          jnp.all(jnp.isfinite(tight)).astype(jnp.float64)])

    batched = _sharded(jax.vmap(one, in_axes=(0, None, None)))
    scale = float(jnp.linalg.norm(flat0))

    def run(pairs):  # [(h, N)] -> [(error, flag)]
        rows = batched(np.asarray([(h, steps // _CHECKPOINTS) for h, steps in pairs]), flat0, coefficients)
        return [(float(e), _flag(float(e), scale, float(gap), float(moved), iterates_finite=bool(fi),
                                 flow_finite=bool(ff))) for e, gap, moved, fi, ff in rows]

    note = "optax iterates from the slow manifold" if contraction is not None else "optax iterates"
    with np.errstate(all="ignore"):
        if adjusted is not None:
            points = run(adjusted)
            return _fit("global", [h for h, _ in adjusted], [e for e, _ in points], [f for _, f in points], order + 1,
                        note, requested=step_sizes)
        h0, why, _ = _start(field.truncated(0), flat0, unravel, contraction)
        first = _CHECKPOINTS * max(1, math.ceil(time / h0 / _CHECKPOINTS))  # h = time/N <= h0
        exact_time = Fraction(repr(float(time)))
        probes: list = []

        def evaluate(k):
            while len(probes) <= k:  # the next batch of doublings of N, one sharded program
                pairs = [(float(exact_time / (first * 2**j)), first * 2**j)
                         for j in range(len(probes), len(probes) + BATCH) if first * 2**j <= MAX_GLOBAL_STEPS]
                probes.extend((h, *point) for (h, _), point in zip(pairs, run(pairs)))
            return probes[k]

        def limit(k):
            if first * 2**k > MAX_GLOBAL_STEPS:
                return f"before more than {MAX_GLOBAL_STEPS} steps (h={time / (first * 2**k):.3g}); a shorter time helps"
            return None

        window = find_window(evaluate, "global", ", ".join(filter(None, [why, f"time/{first}"])), limit=limit)
    hs = [window.probes[i][0] for i in window.indices]
    errors = [window.probes[i][1] for i in window.indices]
    result = _fit("global", hs, errors, [""] * len(hs), order + 1, "; ".join([note, window.note]))
    return dataclasses.replace(result, automatic=True, probed=tuple(tuple(p) for p in window.probes))
