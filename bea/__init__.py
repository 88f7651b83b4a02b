"""bea: backward error analysis of optimization algorithms.

An optimizer step theta -> Phi_h(theta) is a numerical integrator of a flow.
`bea` derives the modified vector field f~ = f_0 + h f_1 + h^2 f_2 + ... whose
exact flow matches the iterates to any order in h (Barrett & Dherin,
"Implicit Gradient Regularization", ICLR 2021, arXiv:2009.11162), for any
update rule written as a pure step function.
"""

from . import exports, rules, verify
from ._derive import MAX_SAFE_ORDER, ModifiedEquation, finite_n_modified_equation, modified_equation
from ._derive_stochastic import stochastic_modified_equation
from ._errors import (
    BeaError,
    ImplicitSolveError,
    InconsistentRuleError,
    InvalidArrayError,
    InvalidHyperparameterError,
    InvalidOrderError,
    InvalidRuleError,
    NonSmoothLossError,
    NoStochasticModifiedEquationError,
    ParseError,
    SlowDerivationWarning,
    StepFunctionError,
    UnknownSymbolError,
    UnsupportedError,
)
from ._from_optax import from_optax, from_update
from ._modifying import modifying_equation
from ._orderings import average_over_orderings
from .engines.series import STEP_SIZE as h
from .engines.taylor import NoSlowManifoldError
from .engines.trees._trees import TreeTerm, order_conditions, tree_coefficients
from .exports import ModifiedLoss, NoModifiedLossError
from .lowering import iterate
from .lowering._minibatch_sde import MinibatchSDE, sgd_sde, sgd_sde_paths
from .results._bseries import BSeries, order_of_accuracy
from .results._coordinate_free import CoordinateFreeModifiedEquation
from .results._elementwise import ElementwiseModifiedEquation
from .results._initial_point import InitialPointLoss
from .results._modifying import CoordinateFreeModifyingEquation, ModifyingEquation
from .results._stochastic import StochasticModifiedEquation
from .results._stochastic_coordinate_free import CoordinateFreeStochasticModifiedEquation
from .results._taylor import NonFiniteFieldError, NonSmoothStepWarning, TaylorModifiedField

__version__ = "0.1.0"

__all__ = [
    "MAX_SAFE_ORDER",
    "BSeries",
    "BeaError",
    "CoordinateFreeModifiedEquation",
    "CoordinateFreeModifyingEquation",
    "CoordinateFreeStochasticModifiedEquation",
    "ElementwiseModifiedEquation",
    "ImplicitSolveError",
    "InconsistentRuleError",
    "InitialPointLoss",
    "InvalidArrayError",
    "InvalidHyperparameterError",
    "InvalidOrderError",
    "InvalidRuleError",
    "MinibatchSDE",
    "ModifiedEquation",
    "ModifiedLoss",
    "ModifyingEquation",
    "NoModifiedLossError",
    "NoSlowManifoldError",
    "NonFiniteFieldError",
    "NoStochasticModifiedEquationError",
    "NonSmoothStepWarning",
    "NonSmoothLossError",
    "ParseError",
    "SlowDerivationWarning",
    "TaylorModifiedField",
    "TreeTerm",
    "average_over_orderings",
    "UnknownSymbolError",
    "StepFunctionError",
    "UnsupportedError",
    "exports",
    "finite_n_modified_equation",
    "from_optax",
    "from_update",
    "h",
    "iterate",
    "modified_equation",
    "modifying_equation",
    "order_conditions",
    "order_of_accuracy",
    "rules",
    "sgd_sde",
    "sgd_sde_paths",
    "stochastic_modified_equation",
    "StochasticModifiedEquation",
    "tree_coefficients",
    "verify",
]
