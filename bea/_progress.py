"""Progress of long derivations: a tqdm bar on stderr, and a warning before one likely to take minutes.

The time estimates come from measurements (below); they are orders of magnitude, enough to tell
seconds from minutes before the work starts.
"""

from __future__ import annotations

import copy
import math
import sys
import threading
import time
import warnings

from ._errors import SlowDerivationWarning

__all__ = ["SLOW_SECONDS", "Progress", "estimated_seconds", "rule_name", "warn_if_slow"]


def rule_name(rule) -> str:
    return str(getattr(rule, "name", type(rule).__name__))


# Measured for issue 15 (FLINT fraction fields, slow-manifold sweeps truncation by truncation, B-series
# composition by admissible cuts, zero tests modulo the atoms' relations) on the 2-core development machine
# while other work ran (upper-end figures), one derivation per process, e.g.
#   python -c "import bea, sympy as sp; a, b, x, y = sp.symbols('a b x y'); \
#              bea.modified_equation(bea.rules.HeavyBall(), 4, loss=(y - a*b*x)**2/2, params=[a, b])"
# Concrete view, rules with memory, on the two-parameter model. Symbolic decays (the rules' defaults): heavy
# ball 0.16 s, 0.51 s, 0.98 s at orders 3, 4, 5, and 0.52 s, 2.8 s at orders 2, 3 on a random quartic in 4
# parameters (x4.2 per parameter); Nesterov 0.22 s, 0.77 s at orders 3, 4; Adam 1.9 s, 5.0 s at orders 1,
# 2; RMSProp 1.8 s, 2.5 s at orders 1, 2. Numeric decays: heavy ball 0.05 s, 0.17 s, 0.59 s at orders 4,
# 6, 8; Adam 0.48 s, 1.9 s, 11 s at orders 2, 3, 4. (Before issue 15: heavy ball 30 s at order 4, Adam 66 s
# at order 2, both symbolic.)
# Concrete view, one-step rules: GD 0.13 s, 0.49 s, 2.4 s at orders 8, 10, 12 on two parameters; 2.8 s
# and 13 s at orders 6, 8 on a random quartic in 4 parameters; 3.4 s and 149 s at orders 4, 6 in 8
# parameters: ln t = -5.85 + 0.112 p + 0.218 p n fits them within a factor of 3. At the same order SAM
# with a symbolic radius takes about x300 GD's time (0.3 s, 3.3 s at orders 3, 5), EGR x20 (1.1 s at
# order 6), RK4 x2 (0.8 s at order 10).
# Coordinate-free view (symbolic decays): heavy ball 0.60 s, 1.7 s, 5.0 s at orders 5, 6, 7; Nesterov
# 0.32 s, 1.0 s at orders 4, 5; Adam 2.2 s, 61 s at orders 2, 3; RMSProp 1.0 s, 33 s at orders 2, 3
# (before issue 15: heavy ball 78 s at order 4, Adam 57 s at order 2); one-step rules stay within seconds
# (GD's trees 9.3 s at order 12, EGR's B-series 13 s at order 5).

#: Rules with memory, concrete view on the two-parameter model: kind -> (order, seconds, growth per
#: order), with symbolic decays and with numeric ones. Other rules with memory are taken as heavy ball
#: (one state) or Adam (several).
_MEMORY_SECONDS = {
    "heavy-ball": {"symbolic": (4, 0.5, 3.0), "numeric": (6, 0.17, 1.9)},
    "nesterov": {"symbolic": (4, 0.8, 3.5), "numeric": (6, 0.25, 2.0)},
    "adam": {"symbolic": (2, 5.0, 6.0), "numeric": (3, 1.9, 5.8)},
    "rmsprop": {"symbolic": (2, 2.5, 6.0), "numeric": (3, 1.9, 5.8)},
}
_MEMORY_PER_PARAMETER = 4.5
#: The same in the coordinate-free view (no parameters; measured with symbolic decays, used for both).
_COORDINATE_FREE_SECONDS = {
    "heavy-ball": (6, 1.7, 3.0),
    "nesterov": (5, 1.0, 3.2),
    "adam": (3, 61.0, 28.0),
    "rmsprop": (3, 33.0, 32.0),
}
#: One-step rules: time relative to GD at the same order (SAM and F-GR with a symbolic radius).
_ONE_STEP_FACTOR = {"gd": 1.0, "egr": 20.0, "sam": 300.0, "fd-gr": 300.0}
#: Warn when the estimate exceeds this many seconds.
SLOW_SECONDS = 60.0


def estimated_seconds(rule, order: int, n_params: int | None) -> float | None:
    """A rough estimate of a derivation's time from the measurements above (None: no estimate).

    n_params is None for the coordinate-free view. Only an order of magnitude: the loss and the
    machine change it by a factor of a few.
    """
    name = rule_name(rule)
    if hasattr(rule, "decays"):
        decays = rule.decays()
        kind = name if name in _MEMORY_SECONDS else "heavy-ball" if len(decays) == 1 else "adam"
        if n_params is None:
            reference, seconds, growth = _COORDINATE_FREE_SECONDS[kind]
            return seconds * growth ** (order - reference)
        symbolic = any(getattr(d, "free_symbols", None) for d in decays)
        reference, seconds, growth = _MEMORY_SECONDS[kind]["symbolic" if symbolic else "numeric"]
        return seconds * growth ** (order - reference) * _MEMORY_PER_PARAMETER ** (n_params - 2)
    if n_params is None:
        return None
    factor = _ONE_STEP_FACTOR.get(name, 2.0) if name not in ("sam", "fd-gr") or rule.free_symbols else 2.0
    return math.exp(-5.85 + 0.112 * order + 0.218 * order * n_params) * factor * getattr(rule, "n_losses", 1)


def warn_if_slow(rule, order: int, n_params: int | None) -> None:
    estimate = estimated_seconds(rule, order, n_params)
    if estimate is None or estimate < SLOW_SECONDS:
        return
    view = "coordinate-free" if n_params is None else f"on {n_params} parameters"
    minutes = max(1, round(estimate / 60))
    span = "over an hour" if minutes >= 60 else f"about {minutes} minute{'s' if minutes > 1 else ''}"
    warnings.warn(
        f"deriving {rule_name(rule)} to order {order} ({view}) will likely take {span} (from timings "
        "measured on a 2-core machine; see bea._progress); a progress bar shows on a terminal "
        "(progress=True forces it). A lower order, or fewer parameters, is much faster.",
        SlowDerivationWarning,
        stacklevel=3,
    )


class Progress:
    """A tqdm bar on stderr: the stage of the derivation and, for rules with memory, a count of the
    rule's updates (the slow-manifold sweeps, which fix one more power of h each and take nearly all
    the time). A daemon thread refreshes the elapsed time while one long sweep runs."""

    def __init__(self, progress: bool | None, description: str):
        self.enabled = progress if progress is not None else _stderr_is_terminal()
        self._delay = 0.0 if progress else 1.0  # unasked for, only derivations over a second show a bar
        self._description = description
        self._bar = None
        self._stage = ""
        self._sweeps = 0
        self._stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            # mininterval=0: every sweep and stage is shown (there are few, and each is slow)
            self._bar = tqdm(desc=self._description, total=None, file=sys.stderr, leave=False, delay=self._delay,
                             mininterval=0, bar_format="{desc} [{elapsed}]")
            self._start = time.monotonic()
            threading.Thread(target=self._refresh, daemon=True).start()
        return self

    def _refresh(self):
        while not self._stop.wait(0.5):
            self._show()

    def _show(self) -> None:
        sweeps = f", slow-manifold sweep {self._sweeps}" if self._sweeps else ""
        due = time.monotonic() - self._start >= self._delay  # before the delay, nothing is drawn
        self._bar.set_description_str(f"{self._description}{self._stage}{sweeps}", refresh=due)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._stage, self._sweeps = f": {text}", 0
            self._show()

    def tick(self) -> None:
        if self._bar is not None:
            self._sweeps += 1
            self._show()

    def watch(self, rule):
        """The rule, or (with a bar, for rules with memory) a copy whose update ticks the bar."""
        if self._bar is None or not hasattr(rule, "update") or not hasattr(rule, "decays"):
            return rule
        watched = copy.copy(rule)  # the same frozen dataclass: fields, type and hash unchanged
        update = rule.update

        def counted(*args, **kwargs):
            self.tick()
            return update(*args, **kwargs)

        object.__setattr__(watched, "update", counted)
        return watched

    def __exit__(self, *exc):
        self._stop.set()
        if self._bar is not None:
            self._bar.close()
        return False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
