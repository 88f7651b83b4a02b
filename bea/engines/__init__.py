"""Engines: how the terms of a modified equation are computed, one sub-package per method.

- `series`: truncated power series in h with exact coefficients, the gradient oracle on them, and
  the correction recursion f_l = d_{l+1} - sum_{n >= 2} L_{n, l+1-n}/n! (Barrett & Dherin,
  arXiv:2009.11162, Appendix A, in its Lie-derivative form): the concrete view.
- `trees`: rooted and coloured trees, Runge-Kutta tree coefficients, any gradient rule as a
  B-series (Hairer, Lubich & Wanner, doi:10.1007/3-540-30666-8, Ch. III and IX): the coordinate-free view.
- `elementwise`: the element algebra of rules with element-wise operations (Adam, RMSProp) and
  scalar invariants <p, q> (Cattaneo, Klusowski & Shigida, arXiv:2309.00079).
- `slow_manifold`: the state of a rule with memory on its slow manifold, for any of the above.

Engines compute in exact arithmetic and know nothing of the result classes (`bea.results`).
"""
