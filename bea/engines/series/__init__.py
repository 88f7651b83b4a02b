"""The exact series engine: step expansion and the correction recursion."""

from ._algebra import DifferentialAlgebra, ExpressionAlgebra, NotPolynomialError, PolynomialAlgebra
from ._correction import corrections_from_expansion
from ._expand import expand_step
from ._jet import STEP_SIZE, ScalarSeries, VectorSeries
from ._oracle import SymbolicOracle
from ._problem import Problem, check_smooth

__all__ = [
    "STEP_SIZE",
    "DifferentialAlgebra",
    "ExpressionAlgebra",
    "NotPolynomialError",
    "PolynomialAlgebra",
    "Problem",
    "ScalarSeries",
    "SymbolicOracle",
    "VectorSeries",
    "check_smooth",
    "corrections_from_expansion",
    "expand_step",
]
