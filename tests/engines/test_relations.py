"""Exact zero tests modulo sqrt(w)^2 = w and (1/v) v = 1 (`engines.series._relations`), against expanded
expressions, and the F_p filter that may only ever prove values nonzero."""

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bea.engines.series._algebra import DifferentialAlgebra

a, b, eps = sp.symbols("a b eps")
V = a**2 * b**2 / 10 + eps  # Adam's second moment at the slow manifold's leading order
W = a**2 + 1


def _algebra(constants=(eps,), rational=True):
    return DifferentialAlgebra([a, b], constants, seeds=[sp.sqrt(V), 1 / V, sp.sqrt(W)], rational=rational)


def test_relations_make_hidden_zeros_vanish():
    algebra = _algebra()
    zero = sp.sqrt(V) ** 3 / V - sp.sqrt(V)  # sqrt(v)^3 (1/v) = sqrt(v)
    element = algebra.from_expr(sp.Pow(sp.sqrt(V), 3, evaluate=False) * sp.Pow(V, -1, evaluate=False)) - \
        algebra.from_expr(sp.sqrt(V))
    assert sp.simplify(zero) == 0
    assert element  # not the zero polynomial: the atoms hide the zero
    assert algebra.vanishes(element)
    assert not algebra.relations.certainly_nonzero(element)  # the filter never claims a zero is nonzero


@st.composite
def combinations_of_atoms(draw):
    """c_0 + sum of products of atoms, the product of each relation's two sides subtracted at random."""
    r, s, u = sp.sqrt(V), sp.Pow(V, -1, evaluate=False), sp.sqrt(W)
    terms = []
    for _ in range(draw(st.integers(1, 4))):
        coefficient = sp.Rational(draw(st.integers(-3, 3)), draw(st.integers(1, 3))) * a ** draw(st.integers(0, 2))
        terms.append(coefficient * r ** draw(st.integers(0, 3)) * s ** draw(st.integers(0, 2))
                     * u ** draw(st.integers(0, 3)))
    hidden = draw(st.sampled_from([0, sp.Pow(r, 2, evaluate=False) * s - 1, sp.Pow(u, 2, evaluate=False) - W]))
    return sp.Add(*terms), hidden


@settings(max_examples=40, deadline=None)
@given(combinations_of_atoms(), st.booleans())
def test_vanishes_agrees_with_expanded_expressions(case, add_hidden_zero):
    value, hidden = case
    algebra = _algebra()
    element = algebra.from_expr(value) + (algebra.from_expr(hidden) * algebra.from_expr(b) if add_hidden_zero else 0)
    truth = sp.cancel(sp.together(sp.expand(algebra.to_expr(element)))) == 0  # SymPy: sqrt(v)**2 -> v itself
    assert algebra.vanishes(element) == truth
    if truth:
        assert not algebra.relations.certainly_nonzero(element)


def test_dependent_roots_fall_back_to_expansion():
    """sqrt(4 a^2 + 4) = 2 sqrt(a^2 + 1): dependent atoms, so neither the canonical form nor the F_p filter is
    used (either could be wrong); the decision is the expanded expression's, as before these relations."""
    algebra = DifferentialAlgebra([a, b], (), seeds=[sp.sqrt(W), sp.sqrt(4 * a**2 + 4)], rational=False)
    atoms = {expr: gen for gen, expr in algebra._atom_gens}
    small, large = atoms.get(sp.sqrt(W)), atoms.get(sp.sqrt(4 * a**2 + 4))
    assert small is not None and large is not None, atoms
    assert algebra.relations.independent is False
    assert algebra.relations.reduce(2 * small - large) is None
    assert not algebra.relations.certainly_nonzero(2 * small - large)
    assert algebra.vanishes(2 * small - large) == (sp.expand(algebra.to_expr(2 * small - large)) == 0)
    assert algebra.vanishes(small * small - algebra.from_expr(W))


def test_transcendental_atoms_are_decided_by_expansion():
    algebra = DifferentialAlgebra([a, b], (), seeds=[sp.exp(a * b)], rational=False)
    x = algebra.from_expr(sp.exp(a * b))
    assert algebra.vanishes(x * algebra.from_expr(a) - algebra.from_expr(a * sp.exp(a * b)))
    assert not algebra.vanishes(x - algebra.from_expr(a))


def test_constants_in_the_ring_or_in_the_field():
    for rational in (True, False):
        algebra = _algebra(rational=rational)
        r = algebra.from_expr(sp.sqrt(V))
        element = r * r - algebra.from_expr(V)
        assert element and algebra.vanishes(element)
        assert not algebra.vanishes(element + algebra.from_expr(eps * a))
        assert algebra.relations.certainly_nonzero(element + algebra.from_expr(eps * a))
