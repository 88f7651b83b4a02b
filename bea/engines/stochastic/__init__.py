"""The stochastic engine: one-step moments of a stochastic rule and its modified generator.

`increment_moments` averages the rule's step exactly over its law, `one_step_operator` turns the
moments into P_h = 1 + h A_1 + h^2 A_2 + ..., and `generator_series` takes the operator logarithm
L~ = log(P_h)/h order by order (see `_generator`). Stochastic modified equations in the sense of
Li, Tai & E (JMLR 2019, arXiv:1811.01558) are read off the first- and second-order parts.

`_coordinate_free` does the same in any dimension for SGD and Langevin, on tensor networks
(`_tensor_networks`: E's derivatives, the per-example gradients' cumulants; `_network_notation`).
"""

from ._coordinate_free import coordinate_free_generator, evaluate_generator
from ._generator import ExpressionOracle, Operator, apply, compose, generator_series, increment_moments, one_step_operator

__all__ = [
    "ExpressionOracle",
    "Operator",
    "apply",
    "compose",
    "coordinate_free_generator",
    "evaluate_generator",
    "generator_series",
    "increment_moments",
    "one_step_operator",
]
