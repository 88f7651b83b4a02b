"""Hypothesis strategies shared by the tests: random polynomial losses."""

import sympy as sp
from hypothesis import strategies as st


@st.composite
def polynomial_losses(draw, max_dim=3, factors=(3, 4), max_terms=3):
    """(loss, params): |q|^2/2 plus 1..max_terms random monomials with `factors` (min, max) factors.

    With at least 3 factors nothing cancels the quadratic anchor, which keeps every parameter in the loss.
    """
    n = draw(st.integers(1, max_dim))
    params = list(sp.symbols(f"q0:{n}"))
    loss = sum(p**2 for p in params) / 2
    for _ in range(draw(st.integers(1, max_terms))):
        chosen = draw(st.lists(st.sampled_from(params), min_size=factors[0], max_size=factors[1]))
        loss += sp.Rational(draw(st.integers(-2, 2)), draw(st.integers(1, 3))) * sp.Mul(*chosen)
    return sp.expand(loss), params
