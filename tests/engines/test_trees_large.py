"""Tree coefficients through 12 nodes (7813 trees) against references that share no code with `_trees`:
closed forms for two families of trees (linear problems and quadrature), a direct recursion on nested
tuples in `fractions.Fraction` for a sample of trees, and the concrete engine for an irrational tableau."""

import random
from fractions import Fraction
from functools import lru_cache
from math import factorial

import pytest
import sympy as sp

import bea
from bea.engines.trees._trees import trees_of_order
from bea.rules import EULER, HEUN, MIDPOINT, RK4, RungeKutta

ORDER = 11  # trees through 12 nodes
ODD = RungeKutta.from_tableau(  # denominators 3, 4, 5 and 7, a negative weight, weights not summing to 1
    [[0, 0, 0], [sp.Rational(2, 3), 0, 0], [sp.Rational(-1, 5), sp.Rational(7, 4), 0]],
    [sp.Rational(1, 3), sp.Rational(-2, 7), sp.Rational(5, 9)],
)
RULES = [EULER, MIDPOINT, HEUN, RK4, ODD]


@lru_cache(maxsize=None)
def large(rule):
    return {t.tree: t.coefficient for t in bea.tree_coefficients(rule, ORDER)}


def _canonical(t):
    return tuple(sorted((_canonical(c) for c in t), key=repr))


def test_tree_counts_through_12_nodes_by_leaf_grafting():
    """OEIS A000081, and the same sets as grafting a leaf on every node of the trees one node smaller."""
    assert [len(trees_of_order(n)) for n in range(1, 13)] == [1, 1, 2, 4, 9, 20, 48, 115, 286, 719, 1842, 4766]

    def grafted(t):
        yield t + ((),)
        for i, child in enumerate(t):
            for grown in grafted(child):
                yield t[:i] + (grown,) + t[i + 1 :]

    previous = {()}
    for n in range(2, 10):
        previous = {_canonical(g) for t in previous for g in grafted(t)}
        assert {_canonical(t) for t in trees_of_order(n)} == previous


def _tall(n):
    return () if n == 1 else (_tall(n - 1),)


def _series(expr, z, n):
    poly = sp.series(expr, z, 0, n + 1).removeO()
    return [poly.coeff(z, k) for k in range(n + 1)]


def _stages(rule):
    A = [[sp.Rational(x) for x in row] for row in rule.A]
    return A, [sp.Rational(x) for x in rule.b], [sum(row, sp.S.Zero) for row in A]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.label)
def test_tall_trees_are_the_logarithm_of_the_stability_function(rule):
    """On y' = lambda y only tall trees have F(t) != 0 (F = lambda^|t| y, sigma = 1), and the step is
    y -> R(h lambda) y: so b(tall tree with k nodes) = [z^k] log R(z)."""
    z = sp.Symbol("z")
    A, b, _ = _stages(rule)
    s = len(b)
    R = 1 + z * (sp.Matrix([b]) * (sp.eye(s) - z * sp.Matrix(A)).inv() * sp.ones(s, 1))[0]
    expected = _series(sp.log(sp.expand(sp.series(R, z, 0, ORDER + 3).removeO())), z, ORDER + 1)
    got = large(rule)
    for k in range(1, ORDER + 2):
        assert got[_tall(k)] == expected[k], k


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.label)
def test_bushy_trees_are_the_quadrature_generating_function(rule):
    """On u' = 1, v' = g(u) only bushy trees [.^m] have F(t) != 0 (F = (0, g^(m)), sigma = m!), and the step
    is u -> u + beta h (beta = sum_i b_i), v -> v + h sum_i b_i g(u + c_i h); the modified field is
    (beta, g~) with (e^{beta hD} - 1)/(beta D) g~ = h sum_i b_i e^{c_i h D} g, so
    b([.^m]) = m! [z^m] beta z sum_i b_i e^{c_i z}/(e^{beta z} - 1) (Bernoulli numbers for Euler;
    Hairer, Lubich & Wanner, Sec. IX.1)."""
    z = sp.Symbol("z")
    _, b, c = _stages(rule)
    beta = sum(b, sp.S.Zero)
    generating = beta * z * sum(bi * sp.exp(ci * z) for bi, ci in zip(b, c)) / (sp.exp(beta * z) - 1)
    expected = _series(generating, z, ORDER)
    got = large(rule)
    for m in range(ORDER + 1):
        assert got[((),) * m] == factorial(m) * expected[m], m


def _direct_reference(rule):
    """b(t) by the textbook recursion on nested tuples in Fraction: Phi(t) by Butcher's stage recursion,
    L_1 = b, L_n(t) = sum over edges L_{n-1}(root part) b(cut-off), b(t) = Phi(t) - sum_{n>=2} L_n(t)/n!."""
    A = [[Fraction(str(x)) for x in row] for row in rule.A]
    weights = [Fraction(str(x)) for x in rule.b]

    @lru_cache(maxsize=None)
    def stage(i, t):
        out = Fraction(1)
        for child in t:
            out *= sum((A[i][j] * stage(j, child) for j in range(len(weights))), Fraction(0))
        return out

    @lru_cache(maxsize=None)
    def edges(t):
        out = []
        for i, child in enumerate(t):
            rest = t[:i] + t[i + 1 :]
            out.append((_canonical(rest), child))
            out += [(_canonical(rest + (root,)), cut) for root, cut in edges(child)]
        return out

    def size(t):
        return 1 + sum(size(c) for c in t)

    @lru_cache(maxsize=None)
    def lie(n, t):
        if n == 1:
            return coefficient(t)
        if size(t) < n:
            return Fraction(0)
        return sum((lie(n - 1, root) * coefficient(cut) for root, cut in edges(t)), Fraction(0))

    @lru_cache(maxsize=None)
    def coefficient(t):
        phi = sum((w * stage(i, t) for i, w in enumerate(weights)), Fraction(0))
        return phi - sum((lie(n, t) / factorial(n) for n in range(2, size(t) + 1)), Fraction(0))

    return lambda t: coefficient(_canonical(t))


@pytest.mark.parametrize("rule", [MIDPOINT, RK4, ODD], ids=lambda r: r.label)
def test_sample_of_12_node_trees_against_a_direct_recursion(rule):
    reference = _direct_reference(rule)
    got = large(rule)
    sample = random.Random(15).sample(trees_of_order(12), 40) + list(trees_of_order(7))
    for t in sample:
        value = got[t]
        assert isinstance(value, sp.Rational)
        assert Fraction(int(value.p), int(value.q)) == reference(t), t


def test_results_are_sympy_numbers_in_canonical_order():
    terms = bea.tree_coefficients(MIDPOINT, ORDER)
    assert [t.tree for t in terms] == [t for n in range(1, 13) for t in trees_of_order(n)]
    assert all(type(t.coefficient) is type(sp.Rational(t.coefficient)) for t in terms)
    assert terms[0].coefficient is sp.S.One and terms[1].coefficient is sp.S.Zero


def test_irrational_tableau_matches_the_concrete_engine():
    """Tableau entries such as sqrt(2)/2 take the expanded SymPy path; checked against the concrete engine
    on f = -grad E with F(t) computed directly."""
    from test_trees import _elementary_differential

    r = sp.sqrt(2) / 2
    rule = RungeKutta.from_tableau([[0, 0], [r, 0]], [1 - 1 / (2 * r), 1 / (2 * r)])
    a, b = sp.symbols("a b")
    loss = a**3 / 3 + a * b**2 / 2 + b**2 / 2
    f = -sp.Matrix([loss.diff(a), loss.diff(b)])
    order = 3
    me = bea.modified_equation(rule, order, loss=loss, params=[a, b])
    terms = bea.tree_coefficients(rule, order)
    assert any(t.coefficient.has(sp.sqrt(2)) for t in terms)
    for l in range(order + 1):
        assembled = sp.zeros(2, 1)
        for t in terms:
            if t.order == l + 1 and t.coefficient != 0:
                assembled += t.coefficient / t.symmetry * _elementary_differential(t.tree, f, [a, b])
        assert sp.expand(assembled - me.terms[l]) == sp.zeros(2, 1), f"f_{l}"
