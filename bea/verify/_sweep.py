"""Local and global error of the truncated modified flow against the rule's own iterates.

Truncating f~ after f_p leaves a local error O(h^{p+2}) after one step and a
global error O(h^{p+1}) over a fixed time (Hairer, Lubich & Wanner, Geometric
Numerical Integration, 2nd ed., Thm IX.1.2 and Section IX.7,
doi:10.1007/3-540-30666-8; for GD and p = 1, Barrett & Dherin 2021, Thm 3.1).
A sweep over step sizes fits log error = s log h + c and reports s; points
where round-off, the ODE solver's own error or divergence dominate are flagged
and left out of the fit, never fitted silently, and a sweep whose errors do not
decrease with h is refused. A term after f_p that vanishes on the model (f_1 of
the midpoint rule) raises the expected slopes by one each.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from fractions import Fraction

import numpy as np

from ..lowering import require_x64
from ._checks import VerificationError, check_compatible, check_order, check_step_sizes, check_time, check_values
from ._flow import RTOL, flow_solver, modified_field, vanishing_terms
from ._iterates import compiled_iterates
from ._window import find_window, start_step

__all__ = ["TOLERANCE", "SweepResult", "VerificationError", "global_error", "local_error", "global_step_sizes"]

_ROUNDOFF = 1e-12  # relative: below this the difference is float64 noise plus solver tolerance
_CHECKPOINTS = 4  # global error: the maximum over this many equally spaced times
#: Slopes this far above the expected one look for vanishing terms: closer to p+3 than to p+2.
_VANISHING_THRESHOLD = 0.5
_MAX_TICKS = 8  # labelled step sizes on a plot's h axis

#: The default of `SweepResult.passes` and of `bea verify --tolerance`.
TOLERANCE = 0.15


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Errors over step sizes, the fitted log-log slope and what was left out of the fit and why.

    `expected` is the slope the theory predicts: order + 2 (local) or order + 1
    (global), one more per term after f_order that vanishes on the model
    (`vanishing`, e.g. (1,) for the midpoint rule at order 0). `requested` holds
    the step sizes as asked where the sweep adjusted them (the global error
    rounds h to time/N). `automatic` is True where the sweep chose its step
    sizes itself (no `step_sizes` given): `h` is then the window it fitted and
    `probed` every (h, error, flag) it evaluated on the way, flag "" for a
    usable point; the note says how the window was chosen.
    """

    kind: str
    h: tuple[float, ...]
    error: tuple[float, ...]
    flags: tuple[str, ...]  # "" for a fitted point, else why it was left out
    slope: float
    intercept: float
    expected: int
    residuals: tuple[float, ...]
    note: str = ""
    vanishing: tuple[int, ...] = ()
    requested: tuple[float, ...] | None = None
    automatic: bool = False
    probed: tuple[tuple[float, float, str], ...] = ()

    @property
    def usable(self) -> tuple[float, ...]:
        return tuple(h for h, f in zip(self.h, self.flags) if not f)

    @property
    def deviation(self) -> float:
        """Fitted minus expected slope."""
        return self.slope - self.expected

    def passes(self, tolerance: float = TOLERANCE) -> bool:
        """Whether the fitted slope is within `tolerance` of the expected one."""
        return abs(self.deviation) <= tolerance

    def to_dict(self) -> dict:
        data = {
            "h": list(self.h), "error": list(self.error), "flags": list(self.flags), "slope": self.slope,
            "expected": self.expected, "residuals": list(self.residuals), "note": self.note,
            "vanishing_terms": [f"f_{k}" for k in self.vanishing],
        }
        if self.requested is not None and tuple(self.requested) != tuple(self.h):
            data["requested_h"] = list(self.requested)
        if self.automatic:
            data["automatic"] = True
            data["probed"] = [{"h": h, "error": e, "flag": f} for h, e, f in self.probed]
        return data

    def plot(self, ax=None, label: str | None = None):
        """Log-log plot of the errors, the fitted line and a reference line of the expected slope."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

        ax = ax or plt.gca()
        h, e = np.array(self.h), np.array(self.error)
        used = np.array([not f for f in self.flags])
        ax.loglog(h[used], e[used], "o", label=label or f"{self.kind} error")
        shown = ~used & np.isfinite(e) & (e > 0)  # a diverged point has no place on a log axis
        if shown.any():
            ax.loglog(h[shown], e[shown], "x", color="gray", label="left out of the fit")
        outside = [(ph, pe) for ph, pe, _ in self.probed if ph not in self.h and np.isfinite(pe) and pe > 0]
        if outside:
            ax.loglog(*zip(*outside), ".", color="lightgray", label="probed, outside the window")
        line = np.exp(self.intercept) * h**self.slope
        ax.loglog(h, line, "-", label=f"fit, slope {self.slope:.2f}")
        reference = e[used][0] * (h / h[used][0]) ** self.expected
        ax.loglog(h, reference, "--", color="gray", label=f"slope {self.expected}")
        # Ticks at the step sizes themselves, in plain decimals: the default minor labels of a log axis
        # (3x10^-3, 4x10^-3, ...) overlap on sweeps that span less than a decade or two.
        ticks = sorted(h)
        ticks = ticks[:: -(-len(ticks) // _MAX_TICKS)]  # long sweeps: every k-th step size, at most _MAX_TICKS
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", which="major", labelrotation=45)
        ax.set_xlabel("h")
        ax.set_ylabel(f"{self.kind} error")
        ax.legend()
        return ax


def _fit(kind, hs, errors, flags, expected, note, requested=None) -> SweepResult:
    used = [i for i, f in enumerate(flags) if not f]
    if len(used) < 3:
        reasons = ", ".join(f"h={h:.3g}: {f}" for h, f in zip(hs, flags) if f)
        raise VerificationError(
            f"only {len(used)} of {len(hs)} step sizes are usable for the {kind} error ({reasons}); "
            f"usable h: {[hs[i] for i in used]}. Choose step sizes where the iteration converges and the error "
            "is well above 1e-12 (larger h for high orders, smaller h where it diverges)."
        )
    by_size = sorted(used, key=lambda i: hs[i])
    growing = [(hs[i], hs[j]) for i, j in zip(by_size, by_size[1:]) if errors[i] >= errors[j]]
    if growing:
        small, large = growing[0]
        raise VerificationError(
            f"the {kind} error does not decrease with h (h={small:.3g} gives an error no smaller than h={large:.3g}; "
            f"errors {', '.join(f'{errors[i]:.3g}' for i in by_size)} at h {', '.join(f'{hs[i]:.3g}' for i in by_size)}): "
            "no slope is fitted through that. The sweep is outside the asymptotic range or the iteration is unstable; "
            "choose smaller step sizes (or larger ones if the errors are near round-off)."
        )
    x, y = np.log([hs[i] for i in used]), np.log([errors[i] for i in used])
    slope, intercept = np.polyfit(x, y, 1)
    residuals = tuple(float(r) for r in y - (slope * x + intercept))
    return SweepResult(kind, tuple(hs), tuple(errors), tuple(flags), float(slope), float(intercept), expected,
                       residuals, note, requested=None if requested is None else tuple(requested))


def _with_vanishing_terms(result: SweepResult, rule, model, order, values) -> SweepResult:
    """The expected slope raised by one per term after f_order that vanishes on the model, looked up
    (derived) only when the fitted slope is well above the plain expectation, and a warning when the
    slope is still far from it."""
    if result.slope - result.expected > _VANISHING_THRESHOLD:
        vanishing = vanishing_terms(rule, model, order, values)
        if vanishing:
            names = ", ".join(f"f_{k}" for k in vanishing)
            note = (f"{names} vanish{'es' if len(vanishing) == 1 else ''} on this model, so the leading error term "
                    f"is f_{vanishing[-1] + 1}: expected slope {result.expected + len(vanishing)} instead of "
                    f"{result.expected}")
            result = dataclasses.replace(result, expected=result.expected + len(vanishing), vanishing=vanishing,
                                         note="; ".join(filter(None, [result.note, note])))
    if abs(result.deviation) > _VANISHING_THRESHOLD:
        higher = result.deviation > 0
        warnings.warn(
            f"the fitted {result.kind} error slope {result.slope:.2f} is far from the expected {result.expected}: "
            + (f"f_{order + len(result.vanishing) + 1} does not vanish on this model, so its coefficient may be "
               "small at the initial point; try larger step sizes" if higher else
               f"the step sizes {list(result.usable)} may be outside the asymptotic range, or the derived field "
               "is wrong"),
            stacklevel=3,
        )
    return result


_MANIFOLD_NOTE = "memory rule: state started on its slow manifold (large-n regime, no bias correction)"
#: The automatic global search stops before a probe would take more steps than this.
MAX_GLOBAL_STEPS = 1 << 20


def _duration(rule) -> float:
    """Flow time of one step in units of h (n for n SGD steps, 1 for one-step rules)."""
    return float(getattr(rule, "duration", 1))


def _flag(error, scale, solver_gap, movement, *, iterates_finite=True, flow_finite=True, floor=None) -> str:
    """Why the point (h, error) is unusable, "" if it is usable. The round-off floor is _ROUNDOFF relative to
    the point's scale, or `floor` itself (a sweep measuring displacements, whose noise is relative to them)."""
    if not iterates_finite:
        return "diverged"
    if not flow_finite:  # the solver gave up (or the truncated flow blows up) where the iterates did not
        return "flow solver failed"
    if not np.isfinite(error) or error > 1e3 * max(1.0, scale):
        return "diverged"
    if error > 0.1 * movement:  # the error is not small against the motion itself: h is too large
        return "pre-asymptotic"
    if error < (_ROUNDOFF * max(1.0, scale) if floor is None else floor):
        return "round-off"
    if not np.isfinite(solver_gap) or solver_gap > 0.05 * error:
        return "solver error"
    return ""


def _progress(items, label):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, desc=label, leave=False, disable=len(items) < 4 or not sys.stderr.isatty())


def _check_inputs(rule, model, order, values, step_sizes, *, kind):
    """Everything a sweep can check before deriving or iterating, named as the Python API names it."""
    require_x64(f"bea.verify.{kind}")
    from ._models import Model

    if not isinstance(model, Model):
        raise VerificationError(f"model must be a bea.verify.Model (or bea.verify.model(name)), got {model!r}")
    order = check_order(order, memory=hasattr(rule, "decays"))
    step_sizes = None if step_sizes is None else check_step_sizes(step_sizes)
    check_compatible(rule, model)
    values = check_values(rule, values, suggest=lambda name: f"pass values={{'{name}': ...}} or build the rule "
                          f"with {name}=...")
    return order, step_sizes, values


def _sweep(kind, step_sizes, point, start, expected, note, *, steps_for=None, requested=None,
           limit=None) -> SweepResult:
    """Errors over the given step sizes, or over the window `find_window` chooses (`step_sizes` None).

    `point(h, steps)` -> (error, flag); `steps_for(k)` gives (h, steps) of the k-th automatic probe (the
    local error: (start * 2^-k, 1)).
    """
    with np.errstate(all="ignore"):  # overflow in a diverging run is flagged, not warned about
        if step_sizes is not None:
            hs, errors, flags = [], [], []
            for h, steps in _progress(list(step_sizes), f"{kind} error"):
                error, flag = point(h, steps)
                hs.append(h)
                errors.append(error)
                flags.append(flag)
            return _fit(kind, hs, errors, flags, expected, note, requested=requested)
        h0, start_note = start

        def evaluate(k):
            h, steps = steps_for(k)
            return (h, *point(h, steps))

        window = find_window(evaluate, kind, start_note, limit=limit)
    hs = [window.probes[i][0] for i in window.indices]
    errors = [window.probes[i][1] for i in window.indices]
    result = _fit(kind, hs, errors, [""] * len(hs), expected, "; ".join(filter(None, [note, window.note])))
    return dataclasses.replace(result, automatic=True, probed=tuple(tuple(p) for p in window.probes))


def local_error(rule, model, order: int, *, step_sizes=None, values: dict | None = None,
                iterates: str = "rule") -> SweepResult:
    """|Phi_h(theta) - phi_h(theta)| over step sizes h, phi the flow of f_0 + ... + h^order f_order.

    One step of the rule's own iteration from the model's initial point; rules
    with memory start with their state on the slow manifold (derived exactly,
    two orders beyond `order`), the regime the modified equation describes.
    `iterates="optax"` takes the step of the optax optimizer implementing the
    rule instead (GD, heavy ball, RMSProp, Adam), from the same state.
    Expected slope: order + 2, one more per vanishing term after f_order
    (see `SweepResult`).

    `step_sizes`: at least three distinct positive step sizes, used as given; by
    default (None) the asymptotic window is searched for (`bea.verify._window`:
    start at a step size set by the stiffness of f_0 at the initial point and,
    for rules with memory, by min(1 - decay), halve until the local slopes
    settle, stop before round-off) and reported (`SweepResult.automatic`,
    `probed`, the note); no window raises `VerificationError` saying what was seen.

    Inputs are checked before any work: the step sizes, a value in `values` for
    every symbol of the rule, a rule that takes the model's losses. Points that
    diverged (NaN or inf iterates), sit at round-off or are dominated by the
    solver's error are flagged and left out; a sweep whose errors do not
    decrease with h raises `VerificationError`. The derivation, the lowered
    field, the flow solver and the iteration are compiled once per sweep (h is
    traced) and cached across sweeps.
    """
    if iterates not in ("rule", "optax"):
        raise VerificationError(f"iterates must be 'rule' or 'optax', got {iterates!r}")
    order, step_sizes, values = _check_inputs(rule, model, order, values, step_sizes, kind="local_error")
    field, manifold = modified_field(rule, model, order, values, with_manifold=True)
    tight, loose_solver = flow_solver(field), flow_solver(field, RTOL * 100)
    run = compiled_iterates(rule, model, values, manifold, 1) if iterates == "rule" else None

    def point(h, _steps):
        return _local_point(rule, model, manifold, values, run, tight, loose_solver, h)

    note = (_MANIFOLD_NOTE if manifold else "") + ("; iterates of optax" if iterates == "optax" else "")
    start = None if step_sizes is not None else start_step(field, model.theta0, rule, values)
    result = _sweep("local", None if step_sizes is None else [(h, 1) for h in step_sizes], point, start, order + 2,
                    note, steps_for=lambda k: (start[0] * 2.0**-k, 1))
    return _with_vanishing_terms(result, rule, model, order, values)


def _local_point(rule, model, manifold, values, run, tight, loose_solver, h):
    """(error, flag) of one step of size h against the flow; `run` the compiled iterates, None for optax's."""
    start = np.asarray(model.theta0)
    if run is None:
        from ._optax import optax_step

        state = manifold(start, h) if manifold is not None else None
        end = np.asarray(optax_step(rule.numeric(h, values), model.jax_losses, h)(start, state))
        finite, movement = bool(np.isfinite(end).all()), float(np.linalg.norm(end - start))
    else:
        points, movement, finite = run(h, 1)
        end = points[-1]
    span = _duration(rule) * h  # one step of a composite rule follows the flow over duration * h
    predicted = np.asarray(tight(start, h, [span])[-1])
    loose = np.asarray(loose_solver(start, h, [span])[-1])
    error = float(np.linalg.norm(end - predicted))
    flag = _flag(error, float(np.linalg.norm(start)), float(np.linalg.norm(loose - predicted)), movement,
                 iterates_finite=finite, flow_finite=bool(np.isfinite(predicted).all()))
    return error, flag


def global_step_sizes(step_sizes, time: float, *, name: str = "step_sizes", time_name: str = "time") -> tuple:
    """(h, steps) per requested step size: h = time/steps, steps a multiple of 4 (the checkpoints), so
    that every sweep ends at `time`. Raises where two step sizes become one, or h is above time/4."""
    exact_time = Fraction(repr(float(time)))  # time/steps from the decimal time: 0.1/50 prints as 0.002
    adjusted, seen = [], {}
    for h in step_sizes:
        if h > time / _CHECKPOINTS:
            raise VerificationError(
                f"{name}: h={h:g} is longer than {time_name}/{_CHECKPOINTS} = {time / _CHECKPOINTS:g}; the global "
                f"error is measured at {_CHECKPOINTS} times up to {time_name}={time:g}: give a {time_name} of at least "
                f"{_CHECKPOINTS * max(step_sizes):g} or smaller step sizes"
            )
        steps = _CHECKPOINTS * max(1, int(round(time / h / _CHECKPOINTS)))
        if steps in seen:
            raise VerificationError(
                f"{name}: h={seen[steps]:g} and h={h:g} both become {time_name}/{steps} = {float(exact_time / steps):g} "
                f"(the global sweep takes a whole number of steps, a multiple of {_CHECKPOINTS}, to reach "
                f"{time_name}={time:g}): choose step sizes further apart or a longer {time_name}"
            )
        seen[steps] = h
        adjusted.append((float(exact_time / steps), steps))
    return tuple(adjusted)


def _global_point(rule, model, run, tight, loose_solver, h, steps):
    """(error, flag) of `steps` steps of size h against the flow, at the checkpoints."""
    start = np.asarray(model.theta0)
    points, movement, finite = run(h, steps // _CHECKPOINTS)
    marks = np.arange(1, _CHECKPOINTS + 1) * (steps // _CHECKPOINTS)
    times = _duration(rule) * h * marks  # the same number of output times for every h: one compilation
    predicted = np.asarray(tight(start, h, times))
    loose = np.asarray(loose_solver(start, h, times))
    error = float(np.max(np.linalg.norm(points - predicted, axis=1)))
    gap = float(np.max(np.linalg.norm(loose - predicted, axis=1)))
    flag = _flag(error, float(np.linalg.norm(start)), gap, movement,
                 iterates_finite=finite, flow_finite=bool(np.isfinite(predicted).all()))
    return error, flag


def global_error(rule, model, order: int, *, step_sizes=None, time: float, values: dict | None = None) -> SweepResult:
    """max_k |theta_{n_k} - phi_{n_k h}(theta_0)| at the checkpoints n_k h = k time/4, over step sizes h;
    expected slope order + 1, one more per vanishing term after f_order.

    Each h is adjusted to time/N (N a multiple of 4) so that every sweep ends at
    `time` (`SweepResult.requested` keeps the step sizes as given). Without
    `step_sizes` the window is searched for as in `local_error`, over
    h = time/N with N doubling from the start (at most `MAX_GLOBAL_STEPS`
    steps). Inputs are checked first, as for `local_error`.
    """
    order, step_sizes, values = _check_inputs(rule, model, order, values, step_sizes, kind="global_error")
    time = check_time(time)
    adjusted = None if step_sizes is None else global_step_sizes(step_sizes, time)
    field, manifold = modified_field(rule, model, order, values, with_manifold=True)
    tight, loose_solver = flow_solver(field), flow_solver(field, RTOL * 100)
    run = compiled_iterates(rule, model, values, manifold, _CHECKPOINTS)

    def point(h, steps):
        return _global_point(rule, model, run, tight, loose_solver, h, steps)

    start = first = None
    if step_sizes is None:
        h0, why = start_step(field, model.theta0, rule, values)
        first = _CHECKPOINTS * max(1, math.ceil(time / h0 / _CHECKPOINTS))  # h = time/N <= h0, N a multiple of 4
        start = (h0, ", ".join(filter(None, [why, f"time/{first}"])))
    exact_time = Fraction(repr(float(time)))

    def steps_for(k):
        return float(exact_time / (first * 2**k)), first * 2**k

    def limit(k):
        if first * 2**k > MAX_GLOBAL_STEPS:
            return f"before more than {MAX_GLOBAL_STEPS} steps (h={time / (first * 2**k):.3g}); a shorter time helps"
        return None

    note = _MANIFOLD_NOTE if manifold else ""
    result = _sweep("global", adjusted, point, start, order + 1, note, steps_for=steps_for, requested=step_sizes,
                    limit=limit)
    return _with_vanishing_terms(result, rule, model, order, values)
