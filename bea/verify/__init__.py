"""Numerical verification: error orders of truncated modified flows against the rules' own iterates.

`local_error` and `global_error` sweep step sizes on a `Model` (built-in ones by
name with `model`, or your own: see `Model`) and fit the log-log slope of the
error; `SweepResult.passes(tolerance)` compares it with the expected order.
"""

from ._checks import VerificationError
from ._flow import flow_solver, modified_field, vanishing_terms
from ._jax_models import JAX_MODELS, JaxFiniteSumModel, jax_model
from ._local import global_error, local_error
from ._models import MODELS, Model, model
from ._modifying_sweep import modifying_local_error
from ._monte_carlo import monte_carlo_weak_error
from ._network_models import NETWORK_MODELS, NetworkModel, network_model
from ._parallel import local_error_grid
from ._stochastic_models import STOCHASTIC_MODELS, FiniteSumModel, stochastic_model
from ._sweep import TOLERANCE, SweepResult
from ._weak_global import weak_global_error
from ._weak_local import weak_local_error
from ._weak_result import WeakErrorResult

__all__ = [
    "MODELS",
    "NETWORK_MODELS",
    "NetworkModel",
    "TOLERANCE",
    "Model",
    "SweepResult",
    "VerificationError",
    "FiniteSumModel",
    "JAX_MODELS",
    "JaxFiniteSumModel",
    "STOCHASTIC_MODELS",
    "WeakErrorResult",
    "flow_solver",
    "global_error",
    "jax_model",
    "local_error",
    "local_error_grid",
    "model",
    "network_model",
    "modified_field",
    "modifying_local_error",
    "monte_carlo_weak_error",
    "stochastic_model",
    "vanishing_terms",
    "weak_global_error",
    "weak_local_error",
]
