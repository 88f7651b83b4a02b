"""Results: what the user holds, one module per result type.

- `_modified_equation`: `ModifiedEquation`, the concrete view (SymPy columns in named parameters).
- `_coordinate_free`: `CoordinateFreeModifiedEquation`, terms in grad E and its derivative tensors.
- `_elementwise`: `ElementwiseModifiedEquation`, element-wise terms (Adam, RMSProp, inner products).
- `_stochastic_coordinate_free`: `CoordinateFreeStochasticModifiedEquation`, the SME of SGD/Langevin in any
  dimension (E's derivatives, the per-example gradients' cumulants Sigma, kappa_3, ...).
- `_initial_point`: `InitialPointLoss`, per-step modified losses of several losses (Rosca & Deisenroth).
- `_orderings`: the average of a composite rule's field over the orderings of its losses.

Results render themselves (text, LaTeX), evaluate on concrete losses, and delegate exports and
lowering to `bea.exports` and `bea.lowering`.
"""
