"""Update rules: each a frozen dataclass with a pure `step(theta, grad, h)`.

The same step is expanded by the engine (`bea.modified_equation`) and iterated
on arrays (`bea.iterate`).
"""

from ._base import Rule, exact
from ._composite import (
    AlternatingGD,
    Composite,
    GradientAscent,
    SGDSteps,
    SimultaneousGD,
    block,
    compose,
    flooding_crossing,
)
from ._custom import CustomRule, rule
from ._game_methods import Extragradient, OptimisticGD
from ._gradient import EGR, GD, SAM, FiniteDifferenceGR
from ._implicit import ImplicitGD, ImplicitMidpoint, ImplicitSGDSteps
from ._memory import Adam, CustomMemoryRule, HeavyBall, MemoryRule, Nesterov, RMSProp, memory_rule
from ._operations import ImplicitSolveError, dot, fixed_point, norm, sqrt
from ._runge_kutta import (
    BACKWARD_EULER,
    EULER,
    GAUSS2,
    GAUSS4,
    HEUN,
    IMPLICIT_TABLEAUS,
    LOBATTO_IIIA2,
    LOBATTO_IIIB2,
    MIDPOINT,
    RADAU_IIA3,
    RK4,
    TABLEAUS,
    RungeKutta,
)
from ._stochastic import SGD, BatchOracle, Langevin, NoiseLaw, StochasticRule
from ._stochastic_batch import SAMSGD, Minibatch, minibatch
from ._stochastic_custom import CustomStochasticRule, stochastic_rule
from ._stochastic_memory import AdamSDE, RMSPropSDE, SGDMomentum, SGDNesterov

__all__ = [
    "AlternatingGD",
    "Composite",
    "GradientAscent",
    "SGDSteps",
    "SimultaneousGD",
    "Extragradient",
    "OptimisticGD",
    "block",
    "compose",
    "flooding_crossing",
    "Adam",
    "CustomMemoryRule",
    "HeavyBall",
    "MemoryRule",
    "Nesterov",
    "RMSProp",
    "memory_rule",
    "sqrt",
    "dot",
    "norm",
    "fixed_point",
    "ImplicitSolveError",
    "ImplicitGD",
    "ImplicitMidpoint",
    "ImplicitSGDSteps",
    "BACKWARD_EULER",
    "GAUSS2",
    "GAUSS4",
    "RADAU_IIA3",
    "LOBATTO_IIIA2",
    "LOBATTO_IIIB2",
    "IMPLICIT_TABLEAUS",
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
    "SGD",
    "Langevin",
    "NoiseLaw",
    "StochasticRule",
    "BatchOracle",
    "Minibatch",
    "minibatch",
    "SAMSGD",
    "CustomStochasticRule",
    "stochastic_rule",
    "SGDMomentum",
    "SGDNesterov",
    "RMSPropSDE",
    "AdamSDE",
]
