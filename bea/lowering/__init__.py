"""Lowering to JAX: derived fields and losses as jitted callables, and the rules' own iterates."""

from ._concrete import LoweredFunction, lower_expressions
from ._iterate import JaxOracle, iterate
from ._x64 import Float64DisabledError, require_x64

__all__ = ["Float64DisabledError", "JaxOracle", "LoweredFunction", "iterate", "lower_expressions", "require_x64"]
