"""The numeric engine: modified fields of optimizers written in JAX (optax transformations, plain updates).

No SymPy: the step's Taylor coefficients in h come from nested jvps or Taylor-mode AD
(`jax.experimental.jet`), the modified field from the logarithm of the iterates (`_field`),
and a stateful optimizer's state from its slow manifold, solved on functions (`_manifold`).
Everything runs in float64 on parameter pytrees; the symbolic engines are its reference.
"""

from ._field import modified_terms
from ._kinks import Kink, find_kinks
from ._manifold import Contraction, NoSlowManifoldError, contraction, settle
from ._series import taylor_series
from ._step import Step, optax_step, update_step

__all__ = ["Contraction", "Kink", "NoSlowManifoldError", "Step", "contraction", "find_kinks", "modified_terms", "optax_step",
           "settle", "taylor_series", "update_step"]
