"""Automatic step sizes: the asymptotic window of an error sweep, found by halving h.

An error sweep is only meaningful where e(h) ~ C h^s: below the step sizes where
the iteration is unstable or the higher terms of the error are not yet small
(pre-asymptotic), and above those where float64 round-off or the ODE solver's
tolerance dominates. Between the two, the local slope log2(e(h)/e(h/2)) settles
to s. The search:

1. starts at h_0 = duration^-1 min(1, 1/||∂f_0(theta_0)||) min(1, min_i (1 - decay_i)):
   the time scale of the flow (the stiffness of f_0 at the initial point, a
   spectral norm by power iteration) and, for rules with memory, the decay of
   the transients and the validity of the slow-manifold expansion, which needs
   h small against 1 - decay (Kovachki & Stuart, JMLR 2021; for Adam's rho =
   0.999 that is h << 10^-3);
2. halves h, evaluating the error (and its flag) at each step size, until the
   last `WINDOW` consecutive usable points have local slopes within `SETTLED`
   of each other; it stops early where round-off begins, where two unusable
   points follow usable ones, or after `MAX_PROBES` halvings;
3. without a settled window, takes the run of `MIN_WINDOW` or `WINDOW` usable
   consecutive points whose local slopes vary least, if they vary by at most
   `DRIFTING`; otherwise it refuses (`VerificationError`) and says what it saw.

The window is chosen from the shape of e(h) alone, never from the expected
slope: the fit that follows still tests the derived field.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._checks import VerificationError

__all__ = [
    "DECREASING", "DRIFTING", "MAX_PROBES", "MIN_WINDOW", "SETTLED", "WINDOW", "Probe", "Window", "find_window",
    "start_step", "stiffness_step",
]

WINDOW = 5  # points of a settled window
MIN_WINDOW = 4  # the fewest points of any window
SETTLED = 0.05  # largest spread (max - min) of the local slopes inside a settled window
DRIFTING = 0.2  # largest spread accepted when no settled window exists (noted in the result)
MAX_PROBES = 40  # halvings at most: 2^-40 below the start
DECREASING = 0.5  # smallest local slope a window may have: the errors must fall with h
_POWER_ITERATIONS = 50

Probe = tuple  # (h, error, flag): flag "" for a usable point, else why it is not


class Window:
    """The chosen step sizes: `indices` into `probes`, the local slopes' spread, and a note for the result."""

    def __init__(self, probes: list, indices: list, spread: float, settled: bool, start_note: str):
        self.probes, self.indices, self.spread, self.settled = probes, indices, spread, settled
        hs = [probes[i][0] for i in indices]
        drift = "" if settled else f" (not settled: over {SETTLED} before round-off)"
        self.note = (f"step sizes chosen automatically: h = {max(hs):g} to {min(hs):g}, {len(hs)} points halving, "
                     f"local slopes within {spread:.3f}{drift}; {len(probes)} step sizes probed from {start_note}")


def start_step(field, theta0, rule, values) -> tuple[float, str]:
    """(h_0, why): the first step size of the search (module docstring, step 1) and what set it."""
    import jax
    import jax.numpy as jnp

    theta0 = jnp.asarray(theta0, dtype=jnp.float64)
    h0, parts = stiffness_step(_spectral_norm(lambda t: field(t, jnp.asarray(0.0, jnp.float64)), theta0, jax, jnp))
    if hasattr(rule, "decays"):
        try:
            gaps = [1.0 - float(d) for d in rule.bind(values or {}).decays()]
        except (TypeError, ValueError):  # a decay that is not a number (an expression in h): no memory scale
            gaps = []
        gaps = [g for g in gaps if 0 < g < 1]
        if gaps:
            h0 *= min(gaps)
            parts.append(f"1 - decay = {min(gaps):.3g}")
    duration = float(getattr(rule, "duration", 1))
    if duration > 1:
        h0 /= duration
        parts.append(f"{duration:g} steps per flow time h")
    return _round_down(h0), ", ".join(parts)


def stiffness_step(stiffness: float) -> tuple[float, list[str]]:
    """(min(1, 1/||∂f_0||), [what set it]): the flow's time scale, the first factor of h_0."""
    if math.isfinite(stiffness) and stiffness > 1.0:
        return 1.0 / stiffness, [f"1/||∂f_0|| = {1.0 / stiffness:.3g}"]
    return 1.0, []


def _round_down(h: float) -> float:
    """The largest of 1, 2, 5 times a power of ten at most h: the halvings then print as short decimals."""
    power = 10.0 ** math.floor(math.log10(h))
    return max(m * power for m in (1, 2, 5) if m * power <= h * (1 + 1e-12))


def _spectral_norm(fn, x, jax, jnp) -> float:
    """||∂fn(x)||_2 by power iteration on J^T J (jvp and its transpose; no Jacobian is formed)."""
    try:
        _, jvp = jax.linearize(jax.jit(fn), x)  # jitted: an eager linearize of a large field is slow
        vjp = jax.linear_transpose(jvp, x)

        @jax.jit
        def iterate(v):
            def body(_, v):
                w = vjp(jvp(v))[0]
                return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

            v = jax.lax.fori_loop(0, _POWER_ITERATIONS, body, v)
            return jnp.linalg.norm(jvp(v))

        start = jnp.asarray(np.random.default_rng(0).normal(size=x.shape), dtype=jnp.float64)
        return float(iterate(start / jnp.linalg.norm(start)))
    except Exception:  # noqa: BLE001 - a field JAX cannot linearize: start at h = 1 and halve
        return math.nan


def local_slopes(errors) -> list[float]:
    """log2(e(h)/e(h/2)) between consecutive probes (step sizes halving)."""
    return [math.log2(a / b) if a > 0 and b > 0 else math.nan for a, b in zip(errors, errors[1:])]


def find_window(evaluate: Callable[[int], Probe], kind: str, start_note: str, *,
                max_probes: int = MAX_PROBES, limit: Callable[[int], str | None] | None = None) -> Window:
    """Probe k = 0, 1, 2, ... (`evaluate(k)` -> (h, error, flag), h halving with k) and return the window.

    `start_note` says what set the first step size; `limit(k)` may name a reason to stop before probe k
    (the global error's step budget).
    """
    probes: list = []
    stop = f"after {max_probes} halvings"
    for k in range(max_probes):
        reason = limit(k) if limit else None
        if reason:
            stop = reason
            break
        probes.append(evaluate(k))
        run = _trailing_run(probes)
        if len(run) >= WINDOW:
            window = run[-WINDOW:]
            spread = _spread(probes, window)
            if spread <= SETTLED:
                return Window(probes, window, spread, True, _origin(probes, start_note))
        flag = probes[-1][2]
        seen_usable = any(not p[2] for p in probes)
        if flag == "round-off":
            stop = f"at round-off from h={probes[-1][0]:g}"
            break
        if seen_usable and len(probes) >= 2 and probes[-1][2] and probes[-2][2]:
            stop = f"{flag} again below the usable step sizes (h={probes[-1][0]:g})"
            break
    start_note = _origin(probes, start_note)
    best = _least_drifting(probes)
    if best is not None and best[1] <= DRIFTING:
        return Window(probes, best[0], best[1], best[1] <= SETTLED, start_note)
    raise VerificationError(_refusal(kind, probes, stop, best, start_note))


def _origin(probes, why: str) -> str:
    """The first step size probed and what set it."""
    if not probes:
        return why or "nothing"
    return f"h={probes[0][0]:g}" + (f" ({why})" if why else "")


def _trailing_run(probes) -> list[int]:
    """Indices of the usable points at the end of the probes, consecutive."""
    run = []
    for i in range(len(probes) - 1, -1, -1):
        if probes[i][2]:
            break
        run.append(i)
    return run[::-1]


def _spread(probes, indices) -> float:
    """max - min of the local slopes over the window; inf unless every slope is finite and above
    DECREASING (a flat noise floor has settled slopes too, at 0: never a window)."""
    slopes = local_slopes([probes[i][1] for i in indices])
    if not slopes or not all(map(math.isfinite, slopes)) or min(slopes) <= DECREASING:
        return math.inf
    return float(max(slopes) - min(slopes))


def _least_drifting(probes):
    """(indices, spread) of the window of MIN_WINDOW..WINDOW consecutive usable points whose local slopes
    vary least (the smaller step sizes on ties: further into the asymptotic range), or None."""
    best = None
    for size in (WINDOW, MIN_WINDOW):
        for end in range(len(probes), size - 1, -1):
            indices = list(range(end - size, end))
            if any(probes[i][2] for i in indices):
                continue
            spread = _spread(probes, indices)
            if best is None or spread < best[1] - 1e-12:
                best = (indices, spread)
    return best


def _refusal(kind, probes, stop, best, start_note) -> str:
    seen = "; ".join(_ranges(probes)) or "nothing"
    usable = sum(1 for p in probes if not p[2])
    if best is not None and not math.isfinite(best[1]):
        found = (f"no {MIN_WINDOW} consecutive usable step sizes whose errors fall with h (local slopes above "
                 f"{DECREASING})")
    elif best is not None:
        hs = [probes[i][0] for i in best[0]]
        found = (f"the best {len(hs)} consecutive usable step sizes (h = {max(hs):g} to {min(hs):g}) have local "
                 f"slopes spreading by {best[1]:.2f} > {DRIFTING}: not settled")
    else:
        found = f"{usable} usable step size(s), never {MIN_WINDOW} consecutive ones"
    return (f"no asymptotic window for the {kind} error: probing from {start_note} by halving, stopped {stop}; "
            f"seen: {seen}; {found}. Nothing is fitted through that. Pass explicit step sizes (step_sizes= in "
            "Python, --h on the command line) where the error decreases like a power of h, lower the order (a "
            "higher order reaches round-off after fewer halvings), or check the model (iterates that diverge "
            "at every step size, a derived field that does not match the iterates)")


def _ranges(probes) -> list[str]:
    """Consecutive probes with the same flag as 'h=a..b: flag'."""
    out, i = [], 0
    while i < len(probes):
        j = i
        while j + 1 < len(probes) and probes[j + 1][2] == probes[i][2]:
            j += 1
        what = probes[i][2] or "usable"
        span = f"at h={probes[i][0]:g}" if i == j else f"from h={probes[i][0]:g} down to h={probes[j][0]:g}"
        if not probes[i][2] and j > i:
            slopes = local_slopes([p[1] for p in probes[i:j + 1]])
            span += f" (local slopes {min(slopes):.2f} to {max(slopes):.2f})"
        out.append(f"{what} {span}")
        i = j + 1
    return out
