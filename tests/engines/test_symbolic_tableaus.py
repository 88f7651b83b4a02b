"""Tableaus with symbolic entries: tree coefficients and Butcher's order conditions as expressions.

References (derived by hand below, not by the code under test):
* Butcher's order conditions (Butcher, Numerical Methods for ODEs, 2016, Thm 315A; HLW Thm III.1.5):
  for the explicit 2-stage tableau A = [[0, 0], [alpha, 0]], b = (b_1, b_2), the elementary weights
  are Phi(.) = b_1 + b_2, Phi([.]) = b_2 alpha, Phi([., .]) = b_2 alpha^2, Phi([[.]]) = 0.
* the modified-equation matching b(t) = a(t) - sum_{n>=2} L_n(t)/n! of the trees module, worked by
  hand through three nodes: with b(.) = 1 and b([.]) = 0, L_3([., .]) = 2 and L_3([[.]]) = 1 are the
  only nonzero Lie terms, so b([., .]) = alpha/2 - 1/3 and b([[.]]) = -1/6 for every alpha.
"""

from __future__ import annotations

import sympy as sp

import bea
from bea.engines.trees._trees import order_conditions
from bea.rules import GAUSS4, RK4, RungeKutta

alpha = sp.Symbol("alpha")
b1, b2 = sp.symbols("b1 b2")
LEAF, CHAIN2, CHERRY, CHAIN3 = (), ((),), ((), ()), (((),),)


def _family():
    return RungeKutta(A=[[0, 0], [alpha, 0]], b=[1 - 1 / (2 * alpha), 1 / (2 * alpha)])


def _coefficients(rule, order):
    return {term.tree: term.coefficient for term in bea.tree_coefficients(rule, order)}


def test_two_stage_family_coefficients_are_rational_functions_of_alpha():
    b = _coefficients(_family(), 2)
    assert b[LEAF] == 1
    assert b[CHAIN2] == 0  # order 2 for every alpha
    assert sp.cancel(b[CHERRY] - (alpha / 2 - sp.Rational(1, 3))) == 0
    assert sp.cancel(b[CHAIN3] + sp.Rational(1, 6)) == 0
    # alpha = 1/2 (midpoint) and alpha = 1 (Heun): the numeric tableaus give the same numbers
    for value, tableau in ((sp.Rational(1, 2), bea.rules.MIDPOINT), (1, bea.rules.HEUN)):
        numeric = _coefficients(tableau, 3)
        symbolic = _coefficients(_family(), 3)
        for t, c in numeric.items():
            assert sp.cancel(symbolic[t].subs(alpha, value) - c) == 0, (value, t)


def test_coefficients_with_a_denominator_in_alpha_are_canonical():
    """b_2 = 1/(2 alpha) puts alpha in denominators: the coefficients come back as reduced fractions."""
    rule = RungeKutta(A=[[0, 0], [alpha, 0]], b=[1 - 1 / (1 + alpha), 1 / (1 + alpha)])
    b = _coefficients(rule, 1)
    # b([.]) = Phi([.]) - L_2([.])/2 = alpha/(1 + alpha) - 1/2, by hand
    assert sp.cancel(b[CHAIN2] - (alpha / (1 + alpha) - sp.Rational(1, 2))) == 0
    assert b[CHAIN2] == sp.cancel(b[CHAIN2])  # already in lowest terms


def test_order_conditions_solve_for_the_two_stage_family():
    rule = RungeKutta(A=[[0, 0], [alpha, 0]], b=[b1, b2])
    conditions = order_conditions(rule, 2)
    assert set(conditions) == {LEAF, CHAIN2}
    assert sp.expand(conditions[LEAF] - (b1 + b2 - 1)) == 0
    assert sp.expand(conditions[CHAIN2] - (b2 * alpha - sp.Rational(1, 2))) == 0
    (solution,) = sp.solve(list(conditions.values()), [b1, b2], dict=True)
    assert sp.cancel(solution[b2] - 1 / (2 * alpha)) == 0
    assert sp.cancel(solution[b1] - (1 - 1 / (2 * alpha))) == 0


def test_no_alpha_gives_order_three():
    """Order 3 needs b_2 alpha^2 = 1/3 and Phi([[.]]) = 0 = 1/6: impossible with two explicit stages."""
    conditions = order_conditions(_family(), 3)
    assert sp.cancel(conditions[CHERRY] - (alpha / 2 - sp.Rational(1, 3))) == 0
    assert conditions[CHAIN3] == -sp.Rational(1, 6)
    assert sp.solve(list(conditions.values()), alpha) == []


def test_order_conditions_of_numeric_tableaus():
    assert all(c == 0 for c in order_conditions(RK4, 4).values())
    assert any(c != 0 for c in order_conditions(RK4, 5).values())
    gauss = order_conditions(GAUSS4, 4)
    assert all(sp.expand(c) == 0 for c in gauss.values())
    # explicit Euler (gd): Phi([.]) = 0, so the condition is -1/2
    assert order_conditions(bea.rules.GD(), 2)[CHAIN2] == -sp.Rational(1, 2)


def test_gauss4_with_sqrt3_stays_exact():
    """Gauss4 has order 4 and is symmetric: f~ = f + h^4 f_4 + h^6 f_6 + ...; its entries hold sqrt(3)."""
    b = _coefficients(GAUSS4, 5)
    for t, c in b.items():
        size = 1 + sum(_size(s) for s in t)
        assert c.is_Rational, (t, c)  # sqrt(3) cancels exactly
        if 1 < size <= 4:
            assert c == 0, (t, c)
    assert any(c != 0 for t, c in b.items() if 1 + sum(_size(s) for s in t) == 5)


def _size(t):
    return 1 + sum(_size(c) for c in t)


def test_mixed_irrational_and_symbolic_entries():
    """sqrt(5) with a free symbol leaves QQ(alpha): the SymPy path still gives b([.]) = b_2 c_2 - 1/2."""
    rule = RungeKutta(A=[[0, 0], [alpha * sp.sqrt(5), 0]], b=[1 - b2, b2])
    b = _coefficients(rule, 1)
    assert sp.expand(b[CHAIN2] - (b2 * alpha * sp.sqrt(5) - sp.Rational(1, 2))) == 0
