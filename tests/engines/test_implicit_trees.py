"""Tree coefficients of implicit Runge-Kutta methods through `bea.tree_coefficients`, against facts that do not
come from the elementary weights: the classical orders of Gauss, Radau IIA and Lobatto methods, symmetry
(only even powers of h), the adjoint relation between backward and explicit Euler, and the stability function
R(z) on y' = lambda y, whose logarithm is the modified equation along the tall trees."""

import pytest
import sympy as sp

import bea
from bea.engines.trees._trees import modified_equation_coefficients, order, trees_up_to
from bea.rules import (
    BACKWARD_EULER,
    EULER,
    GAUSS2,
    GAUSS4,
    IMPLICIT_TABLEAUS,
    LOBATTO_IIIA2,
    LOBATTO_IIIB2,
    RADAU_IIA3,
    RungeKutta,
)

R = sp.Rational
z = sp.Symbol("z")


def by_tree(rule, max_nodes):
    return {t.tree: t.coefficient for t in bea.tree_coefficients(rule, max_nodes - 1)}


def chain(n):
    """The tall tree with n nodes: its elementary differential is f'^(n-1) f, the only one left on y' = lambda y."""
    t = ()
    for _ in range(n - 1):
        t = (t,)
    return t


@pytest.mark.parametrize("rule, q", [
    (GAUSS2, 2), (GAUSS4, 4), (RADAU_IIA3, 3), (LOBATTO_IIIA2, 2), (LOBATTO_IIIB2, 2), (BACKWARD_EULER, 1),
], ids=["gauss2", "gauss4", "radau-iia3", "lobatto-iiia2", "lobatto-iiib2", "backward-euler"])
def test_classical_orders(rule, q):
    """Gauss with s stages has order 2s, Radau IIA 2s - 1, Lobatto IIIA and IIIB 2s - 2 (Hairer, Lubich &
    Wanner, Sec. II.1.3; Butcher 2016, Sec. 34): b(t) = 0 for 2 <= |t| <= q, not at q + 1."""
    c = by_tree(rule, q + 1)
    assert c[()] == 1
    assert all(v == 0 for t, v in c.items() if 2 <= order(t) <= q)
    assert any(v != 0 for t, v in c.items() if order(t) == q + 1)


@pytest.mark.parametrize("rule, nodes", [(GAUSS2, 9), (LOBATTO_IIIA2, 9), (LOBATTO_IIIB2, 9), (GAUSS4, 7)],
                         ids=["gauss2", "lobatto-iiia2", "lobatto-iiib2", "gauss4"])
def test_symmetric_methods_have_only_even_powers(rule, nodes):
    """A symmetric method's modified field is even in h: b(t) = 0 whenever |t| - 1 is odd."""
    c = by_tree(rule, nodes)
    assert all(v == 0 for t, v in c.items() if order(t) % 2 == 0)
    assert any(v != 0 for t, v in c.items() if order(t) == nodes - (nodes + 1) % 2)


def test_radau_is_not_symmetric():
    assert any(v != 0 for t, v in by_tree(RADAU_IIA3, 4).items() if order(t) == 4)


def test_backward_euler_is_the_adjoint_of_explicit_euler():
    """Phi*_h = Phi_{-h}^{-1} has the modified field f~(y, -h): b*(t) = (-1)^(|t|-1) b(t), through 9 nodes."""
    implicit, explicit = by_tree(BACKWARD_EULER, 9), by_tree(EULER, 9)
    assert implicit == {t: (-1) ** (order(t) - 1) * v for t, v in explicit.items()}
    assert implicit[((),)] == R(1, 2)


@pytest.mark.parametrize("rule", [BACKWARD_EULER, GAUSS2, GAUSS4, RADAU_IIA3, LOBATTO_IIIA2],
                         ids=["backward-euler", "gauss2", "gauss4", "radau-iia3", "lobatto-iiia2"])
def test_tall_trees_are_the_logarithm_of_the_stability_function(rule):
    """On y' = lambda y a step multiplies by R(z) = 1 + z b^T (I - z A)^{-1} 1 (z = h lambda), so
    h f~ = log R(z) y and b(tall tree with n nodes) = [z^n] log R(z) (Hairer & Wanner, Solving ODEs II,
    Sec. IV.3; computed here by SymPy's matrix inverse and series, not by elementary weights)."""
    nodes = 7 if rule is GAUSS4 else 9
    A, b = sp.Matrix(rule.A), sp.Matrix(rule.b)
    s = len(rule.b)
    stability = 1 + z * (b.T * (sp.eye(s) - z * A).inv() * sp.ones(s, 1))[0]
    logarithm = sp.series(sp.log(stability), z, 0, nodes + 1).removeO()
    c = by_tree(rule, nodes)
    for n in range(1, nodes + 1):
        assert sp.nsimplify(sp.expand(c[chain(n)] - logarithm.coeff(z, n))) == 0, n


def test_gauss4_coefficients_are_rational():
    """sqrt(3) in the tableau cancels in every b(t) (Gauss methods' weights are symmetric in the two nodes)."""
    assert all(v.is_Rational for v in by_tree(GAUSS4, 6).values())


def test_lobatto_iiib2_is_the_implicit_midpoint_rule():
    """IIIB's two stages coincide: k_1 = k_2 = f(theta + h k_1/2), so the step is the implicit midpoint rule."""
    assert by_tree(LOBATTO_IIIB2, 8) == by_tree(GAUSS2, 8)


def test_average_vector_field_method():
    """The AVF method's B-series a(.) = 1, a([t_1..t_n]) = a(t_1)...a(t_n)/(n + 1) (Quispel & McLaren 2008,
    doi:10.1088/1751-8113/41/4/045206; BSeries.jl's tests: order 2, energy preserving): its modified field is
    even in h, f~ = f + (h^2/12) f'f'f + O(h^4), and on linear fields it is the implicit midpoint rule."""

    def avf(t):
        out = R(1, len(t) + 1)
        for child in t:
            out *= avf(child)
        return out

    c = modified_equation_coefficients(avf, 8)
    assert all(v == 0 for t, v in c.items() if order(t) % 2 == 0 and order(t) > 1)
    assert c[((), ())] == 0 and c[(((),),)] == R(1, 12)
    midpoint = by_tree(GAUSS2, 8)
    assert all(c[chain(n)] == midpoint[chain(n)] for n in range(1, 9))


def test_any_square_tableau_is_accepted():
    """A full 2 x 2 tableau (no triangular structure) through the public API, and every named one."""
    full = RungeKutta.from_tableau([[R(1, 3), R(1, 6)], [R(1, 2), R(1, 4)]], [R(1, 2), R(1, 2)])
    assert len(bea.tree_coefficients(full, 4)) == len(trees_up_to(5))
    for rule in IMPLICIT_TABLEAUS.values():
        assert bea.tree_coefficients(rule, 2)[0].coefficient == 1
