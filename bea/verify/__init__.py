"""Numerical verification: error orders of truncated modified flows against the rules' own iterates."""

from ._flow import flow_solver, modified_field
from ._models import MODELS, Model, model
from ._parallel import local_error_grid
from ._sweep import SweepResult, VerificationError, global_error, local_error

__all__ = [
    "MODELS",
    "Model",
    "SweepResult",
    "VerificationError",
    "flow_solver",
    "global_error",
    "local_error",
    "local_error_grid",
    "model",
    "modified_field",
]
