"""Local and global error of the truncated modified flow against the rule's own iterates.

Truncating f~ after f_p leaves a local error O(h^{p+2}) after one step and a
global error O(h^{p+1}) over a fixed time (Hairer, Lubich & Wanner, Geometric
Numerical Integration, 2nd ed., Thm IX.1.2 and Section IX.7,
doi:10.1007/3-540-30666-8; for GD and p = 1, Barrett & Dherin 2021, Thm 3.1).
A sweep over step sizes fits log error = s log h + c and reports s; points
where round-off, the ODE solver's own error or divergence dominate are flagged
and left out of the fit, never fitted silently.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings

import numpy as np

from .._errors import BeaError
from ..lowering import iterate, require_x64
from ._flow import RTOL, flow_solver, modified_field

__all__ = ["SweepResult", "VerificationError", "global_error", "local_error"]

_ROUNDOFF = 1e-12  # relative: below this the difference is float64 noise plus solver tolerance
_CHECKPOINTS = 4  # global error: the maximum over this many equally spaced times


class VerificationError(BeaError):
    """The sweep has too few usable points to fit a slope (divergence, round-off, solver error)."""


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Errors over step sizes, the fitted log-log slope and what was left out of the fit and why."""

    kind: str
    h: tuple[float, ...]
    error: tuple[float, ...]
    flags: tuple[str, ...]  # "" for a fitted point, else why it was left out
    slope: float
    intercept: float
    expected: int
    residuals: tuple[float, ...]
    note: str = ""

    @property
    def usable(self) -> tuple[float, ...]:
        return tuple(h for h, f in zip(self.h, self.flags) if not f)

    def to_dict(self) -> dict:
        return {
            "h": list(self.h), "error": list(self.error), "flags": list(self.flags), "slope": self.slope,
            "expected": self.expected, "residuals": list(self.residuals), "note": self.note,
        }

    def plot(self, ax=None, label: str | None = None):
        """Log-log plot of the errors, the fitted line and a reference line of the expected slope."""
        import matplotlib.pyplot as plt

        ax = ax or plt.gca()
        h, e = np.array(self.h), np.array(self.error)
        used = np.array([not f for f in self.flags])
        ax.loglog(h[used], e[used], "o", label=label or f"{self.kind} error")
        if (~used).any():
            ax.loglog(h[~used], e[~used], "x", color="gray", label="left out of the fit")
        line = np.exp(self.intercept) * h**self.slope
        ax.loglog(h, line, "-", label=f"fit, slope {self.slope:.2f}")
        reference = e[used][0] * (h / h[used][0]) ** self.expected
        ax.loglog(h, reference, "--", color="gray", label=f"slope {self.expected}")
        ax.set_xlabel("h")
        ax.set_ylabel(f"{self.kind} error")
        ax.legend()
        return ax


def _fit(kind, hs, errors, flags, expected, note) -> SweepResult:
    used = [i for i, f in enumerate(flags) if not f]
    if len(used) < 3:
        reasons = ", ".join(f"h={h:.3g}: {f}" for h, f in zip(hs, flags) if f)
        raise VerificationError(
            f"only {len(used)} of {len(hs)} step sizes are usable for the {kind} error ({reasons}); "
            f"usable h: {[hs[i] for i in used]}. Choose step sizes where the iteration converges and the error "
            "is well above 1e-12 (larger h for high orders, smaller h where it diverges)."
        )
    x, y = np.log([hs[i] for i in used]), np.log([errors[i] for i in used])
    slope, intercept = np.polyfit(x, y, 1)
    residuals = tuple(float(r) for r in y - (slope * x + intercept))
    if abs(slope - expected) > 0.5:
        warnings.warn(
            f"the fitted {kind} error slope {slope:.2f} is far from the expected {expected}: the step sizes "
            f"{[hs[i] for i in used]} may be outside the asymptotic range, or the derived field is wrong",
            stacklevel=3,
        )
    return SweepResult(kind, tuple(hs), tuple(errors), tuple(flags), float(slope), float(intercept), expected,
                       residuals, note)


_MANIFOLD_NOTE = "memory rule: state started on its slow manifold (large-n regime, no bias correction)"


def _run(rule, model, manifold, theta0, h: float, steps: int, values):
    state0 = manifold(theta0, h) if manifold is not None else None
    return iterate(rule, _losses(model), theta0, h, steps, values=values, state0=state0)


def _losses(model):
    return list(model.jax_losses) if model.n_losses > 1 else model.jax_losses[0]


def _duration(rule) -> float:
    """Flow time of one step in units of h (n for n SGD steps, 1 for one-step rules)."""
    return float(getattr(rule, "duration", 1))


def _flag(error, scale, solver_gap, movement) -> str:
    if not np.isfinite(error) or error > 1e3 * max(1.0, scale):
        return "diverged"
    if error > 0.1 * movement:  # the error is not small against the motion itself: h is too large
        return "pre-asymptotic"
    if error < _ROUNDOFF * max(1.0, scale):
        return "round-off"
    if solver_gap > 0.05 * error:
        return "solver error"
    return ""


def _progress(items, label):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, desc=label, leave=False, disable=len(items) < 4 or not sys.stderr.isatty())


def local_error(rule, model, order: int, *, step_sizes, values: dict | None = None, iterates: str = "rule") -> SweepResult:
    """|Phi_h(theta) - phi_h(theta)| over `step_sizes`, phi the flow of f_0 + ... + h^order f_order.

    One step of the rule's own iteration from the model's initial point; rules
    with memory start with their state on the slow manifold (derived exactly,
    two orders beyond `order`), the regime the modified equation describes.
    `iterates="optax"` takes the step of the optax optimizer implementing the
    rule instead (GD, heavy ball, RMSProp, Adam), from the same state.
    Expected slope: order + 2.
    """
    if iterates not in ("rule", "optax"):
        raise ValueError(f"iterates must be 'rule' or 'optax', got {iterates!r}")
    require_x64("bea.verify.local_error")
    field, manifold = modified_field(rule, model, order, values, with_manifold=True)
    tight, loose_solver = flow_solver(field), flow_solver(field, RTOL * 100)
    errors, flags = [], []
    for h in _progress(list(step_sizes), "local error"):
        start = np.asarray(model.theta0)
        if iterates == "optax":
            from ._optax import optax_step

            state = manifold(start, float(h)) if manifold is not None else None
            end = np.asarray(optax_step(rule.numeric(float(h), values), model.jax_losses, float(h))(start, state))
        else:
            end = np.asarray(_run(rule, model, manifold, start, float(h), 1, values))[-1]
        span = _duration(rule) * h  # one step of a composite rule follows the flow over duration * h
        predicted = np.asarray(tight(start, h, [span])[-1])
        loose = np.asarray(loose_solver(start, h, [span])[-1])
        error = float(np.linalg.norm(end - predicted))
        errors.append(error)
        flags.append(_flag(error, float(np.linalg.norm(start)), float(np.linalg.norm(loose - predicted)),
                           float(np.linalg.norm(end - start))))
    note = (_MANIFOLD_NOTE if manifold else "") + ("; iterates of optax" if iterates == "optax" else "")
    return _fit("local", list(map(float, step_sizes)), errors, flags, order + 2, note)


def global_error(rule, model, order: int, *, step_sizes, time: float, values: dict | None = None) -> SweepResult:
    """max_k |theta_{n_k} - phi_{n_k h}(theta_0)| at the checkpoints n_k h = k time/4, over `step_sizes`;
    expected slope order + 1.

    Each h is adjusted to time/N (N a multiple of 4) so that every sweep ends at `time`.
    """
    require_x64("bea.verify.global_error")
    field, manifold = modified_field(rule, model, order, values, with_manifold=True)
    tight, loose_solver = flow_solver(field), flow_solver(field, RTOL * 100)
    hs, errors, flags = [], [], []
    for h in _progress(list(step_sizes), "global error"):
        steps = _CHECKPOINTS * max(1, int(round(time / h / _CHECKPOINTS)))
        h = time / steps
        path = np.asarray(_run(rule, model, manifold, np.asarray(model.theta0), h, steps, values))
        marks = np.arange(1, _CHECKPOINTS + 1) * (steps // _CHECKPOINTS)
        times = _duration(rule) * h * marks  # the same number of output times for every h: one compilation
        predicted = np.asarray(tight(path[0], h, times))
        loose = np.asarray(loose_solver(path[0], h, times))
        error = float(np.max(np.linalg.norm(path[marks] - predicted, axis=1)))
        gap = float(np.max(np.linalg.norm(loose - predicted, axis=1)))
        hs.append(h)
        errors.append(error)
        flags.append(_flag(error, float(np.linalg.norm(path[0])), gap, float(np.max(np.linalg.norm(path - path[0], axis=1)))))
    note = _MANIFOLD_NOTE if manifold else ""
    return _fit("global", hs, errors, flags, order + 1, note)
