"""Update rules: each a frozen dataclass with a pure `step(theta, grad, h)`.

The same step is expanded by the engine (`bea.modified_equation`) and iterated
on arrays (`bea.iterate`).
"""

from ._base import Rule, exact
from ._custom import CustomRule, rule
from ._gradient import EGR, GD, SAM, FiniteDifferenceGR
from ._runge_kutta import EULER, HEUN, MIDPOINT, RK4, TABLEAUS, RungeKutta

__all__ = [
    "EGR",
    "EULER",
    "GD",
    "HEUN",
    "MIDPOINT",
    "RK4",
    "SAM",
    "TABLEAUS",
    "CustomRule",
    "FiniteDifferenceGR",
    "Rule",
    "RungeKutta",
    "exact",
    "rule",
]
