"""Tree coefficients of modified equations: published values, kauri, and the concrete engine."""

import itertools

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import bea
from bea.engines.trees._trees import level_sequence, symmetry, trees_of_order, trees_up_to
from bea.rules import EULER, HEUN, MIDPOINT, RK4, RungeKutta

R = sp.Rational


def coefficients(rule, order):
    return {tuple(t.level_sequence): t.coefficient for t in bea.tree_coefficients(rule, order)}


def test_tree_counts():
    """OEIS A000081: 1, 1, 2, 4, 9, 20, 48, 115, 286 rooted trees; 486 through order 9."""
    assert [len(trees_of_order(n)) for n in range(1, 10)] == [1, 1, 2, 4, 9, 20, 48, 115, 286]
    assert len(trees_up_to(9)) == 486


def test_symmetry_factors():
    by_sequence = {tuple(level_sequence(t)): symmetry(t) for t in trees_up_to(4)}
    assert by_sequence == {(1,): 1, (1, 2): 1, (1, 2, 2): 2, (1, 2, 3): 1, (1, 2, 2, 2): 6,
                           (1, 2, 3, 2): 1, (1, 2, 3, 3): 2, (1, 2, 3, 4): 1}


def test_explicit_euler_low_orders():
    """f~ = f - h/2 f'f + h^2 (1/12 f''(f,f) + 1/3 f'f'f) + ... (Hairer-Lubich-Wanner, Sec. IX.1)."""
    c = coefficients(EULER, 2)
    assert c == {(1,): 1, (1, 2): R(-1, 2), (1, 2, 2): R(1, 6), (1, 2, 3): R(1, 3)}
    assert coefficients(bea.rules.GD(), 3) == coefficients(EULER, 3)


def test_midpoint_sum_through_order_9_matches_bseries_jl():
    """BSeries.jl's tests: the 486 modified-equation coefficients of the explicit midpoint rule
    through order 9 sum to 19063/26880."""
    assert sum(t.coefficient for t in bea.tree_coefficients(MIDPOINT, 8)) == R(19063, 26880)


@pytest.mark.parametrize("rule, q", [(EULER, 1), (MIDPOINT, 2), (HEUN, 2), (RK4, 4)], ids=["euler", "midpoint", "heun", "rk4"])
def test_elementary_weights_meet_the_order_conditions(rule, q):
    """Butcher: a method has order q iff Phi(t) = 1/gamma(t) for every tree with |t| <= q (and not at q + 1)."""
    from bea.engines.trees._trees import elementary_weight, exact_flow_coefficient

    weight = elementary_weight(rule.A, rule.b)
    assert all(weight(t) == exact_flow_coefficient(t) for t in trees_up_to(q))
    assert any(weight(t) != exact_flow_coefficient(t) for t in trees_of_order(q + 1))


def test_rk4_vanishes_through_order_4():
    terms = bea.tree_coefficients(RK4, 4)
    assert all(t.coefficient == 0 for t in terms if 2 <= t.order <= 4)
    assert any(t.coefficient != 0 for t in terms if t.order == 5)


def _elementary_differential(tree, f, params):
    """F(t) for a concrete field f: F(.) = f, F([t_1..t_m]) = f^{(m)}(F(t_1), ..., F(t_m))."""
    children = [_elementary_differential(c, f, params) for c in tree]
    out = []
    for component in f:
        total = sp.S.Zero
        for indices in itertools.product(range(len(params)), repeat=len(children)):
            derivative = component
            for i in indices:
                derivative = sp.diff(derivative, params[i])
            term = derivative
            for child, i in zip(children, indices):
                term *= child[i]
            total += term
        out.append(sp.expand(total))
    return sp.Matrix(out)


@pytest.mark.parametrize("rule", [EULER, MIDPOINT, HEUN, RK4], ids=lambda r: r.label)
def test_trees_reassemble_the_concrete_terms(rule):
    """sum_{|t| = l+1} b(t)/sigma(t) F(t) for f = -grad E equals the engine's f_l (two independent routes)."""
    a, b = sp.symbols("a b")
    loss = a**3 / 3 + a * b**2 / 2 + b**2 / 2
    order = 4
    f = -sp.Matrix([loss.diff(a), loss.diff(b)])
    me = bea.modified_equation(rule, order, loss=loss, params=[a, b])
    terms = bea.tree_coefficients(rule, order)
    for l in range(order + 1):
        assembled = sp.zeros(2, 1)
        for t in terms:
            if t.order == l + 1 and t.coefficient != 0:
                assembled += t.coefficient / t.symmetry * _elementary_differential(t.tree, f, [a, b])
        assert sp.expand(assembled - me.terms[l]) == sp.zeros(2, 1), f"f_{l}"


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 3).flatmap(lambda s: st.tuples(
    st.lists(st.lists(st.fractions(-2, 2, max_denominator=3), min_size=s, max_size=s), min_size=s, max_size=s),
    st.lists(st.fractions(-2, 2, max_denominator=3), min_size=s, max_size=s),
)))
def test_random_tableaus_trees_vs_engine(tableau):
    A, b_weights = tableau
    s = len(b_weights)
    A = [[sp.Rational(A[i][j]) if j < i else 0 for j in range(s)] for i in range(s)]
    rk = RungeKutta.from_tableau(A, [sp.Rational(w) for w in b_weights])
    x, y = sp.symbols("x y")
    loss = x**3 / 3 + x * y**2 + y**2 / 2
    me = bea.modified_equation(rk, 2, loss=loss, params=[x, y])
    f = -sp.Matrix([loss.diff(x), loss.diff(y)])
    for l in range(3):
        assembled = sp.zeros(2, 1)
        for t in bea.tree_coefficients(rk, 2):
            if t.order == l + 1 and t.coefficient != 0:
                assembled += t.coefficient / t.symmetry * _elementary_differential(t.tree, f, [x, y])
        assert sp.expand(assembled - me.terms[l]) == sp.zeros(2, 1)


@pytest.mark.parametrize("rule", [EULER, MIDPOINT, RK4], ids=lambda r: r.label)
def test_against_kauri(rule):
    kauri = pytest.importorskip("kauri")

    def to_kauri(tree):
        return [to_kauri(c) for c in tree]

    reference = kauri.RK([list(row) for row in rule.A], list(rule.b)).modified_equation_map()
    for term in bea.tree_coefficients(rule, 5):
        # kauri may compute in floats; our coefficients are exact
        assert abs(float(reference(kauri.Tree(to_kauri(term.tree)))) - float(term.coefficient)) < 1e-12


def test_rules_without_trees_are_refused():
    with pytest.raises(bea.BeaError, match="Runge-Kutta-type"):
        bea.tree_coefficients(bea.rules.SAM(), 2)
    with pytest.raises(bea.InvalidOrderError):
        bea.tree_coefficients(EULER, -1)


def test_cli_trees_json(capsys):
    import json

    from bea.cli import main

    assert main(["derive", "euler", "--order", "2", "--trees", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trees"][2] == {"level_sequence": [1, 2, 2], "coefficient": "1/6", "symmetry": 2}
    assert len(data["trees"]) == 4
