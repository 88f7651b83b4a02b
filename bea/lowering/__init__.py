"""Lowering to JAX: numerical iteration of rules (and, later, derived fields as callables)."""

from ._iterate import JaxOracle, iterate
from ._x64 import Float64DisabledError, require_x64

__all__ = ["Float64DisabledError", "JaxOracle", "iterate", "require_x64"]
