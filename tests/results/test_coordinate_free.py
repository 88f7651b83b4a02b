"""The coordinate-free view: published forms, and agreement with the concrete engine on random losses."""

import json

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from latex_check import check_latex
from strategies import polynomial_losses

import bea
from bea.rules import GD, MIDPOINT, RK4


def test_gd_second_order_in_words():
    """f_2 of GD = -(1/12) nabla^3 E[grad E, grad E] - (1/3) H H grad E."""
    cf = bea.modified_equation(GD(), 2)
    assert cf.text(0) == "-∇E"
    assert cf.text(1) == "-1/2 ∇²E ∇E"
    assert cf.text(2) == "-1/12 ∇³E[∇E, ∇E] - 1/3 ∇²E ∇²E ∇E"


C = sp.Symbol("c")
GRADIENT_RULES = [
    GD(),
    MIDPOINT,
    RK4,
    bea.rules.EGR(),
    bea.rules.SAM(rho=C * bea.h),
    bea.rules.FiniteDifferenceGR(eps=C * bea.h),
    bea.rules.FiniteDifferenceGR(eps=C * bea.h, kind="backward"),
    bea.rules.rule(lambda theta, grad, h, beta: theta - h * grad(theta - beta * h * grad(theta)), beta=None),
]


@settings(max_examples=8, deadline=None)
@given(polynomial_losses(), st.sampled_from(GRADIENT_RULES[:3]))
def test_coordinate_free_evaluates_to_the_concrete_terms(problem, rule):
    _assert_views_agree(rule, *problem, order=4)


def _assert_views_agree(rule, loss, params, order):
    concrete = bea.modified_equation(rule, order, loss=loss, params=params)
    evaluated = bea.modified_equation(rule, order).evaluate(loss=loss, params=params)
    for l in range(order + 1):
        assert sp.expand(evaluated[l] - concrete.terms[l]) == sp.zeros(len(params), 1), f"f_{l}"


@pytest.mark.slow
@settings(max_examples=6, deadline=None)
@given(polynomial_losses(max_dim=2), st.sampled_from(GRADIENT_RULES[3:]))
def test_bseries_rules_evaluate_to_the_concrete_terms(problem, rule):
    """EGR, SAM and finite-difference GR with radii tied to h, and user rules: B-series route vs engine."""
    _assert_views_agree(rule, *problem, order=2)


def test_sam_tied_in_words():
    cf = bea.modified_equation(bea.rules.SAM(rho=C * bea.h), 1)
    assert cf.text(1) == "-(c + 1/2) ∇²E ∇E"


@pytest.mark.parametrize("notation", ["gradient", "field"])
def test_latex(notation):
    text = bea.modified_equation(GD(), 3).latex(notation)
    check_latex(text)
    assert (r"\nabla^{3} E" in text) == (notation == "gradient")


def test_modified_loss_latex():
    text = bea.modified_equation(bea.rules.EGR(), 1).modified_loss_latex()
    check_latex(text)
    assert r"\mu\, \|\nabla E\|^{2}" in text


def test_cli_coordinate_free(capsys):
    from bea.cli import main

    assert main(["derive", "gd", "--order", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["coordinate_free_terms"][2][0] == {
        "coefficient": "-1/12", "level_sequence": [1, 2, 2], "text": "∇³E[∇E, ∇E]"
    }


def test_independent_radius_is_refused_clearly():
    with pytest.raises(bea.BeaError, match="rho = c\\*h"):
        bea.modified_equation(bea.rules.SAM(), 2)


def _invariant_value(free, loss, params):
    """I(T) on a concrete loss, contracted directly from the tree (independent of the linear solve)."""
    import itertools

    from bea.engines.trees._invariants import _adjacency

    adjacency = _adjacency(free)

    def contract(v, parent, free_index):
        # nabla^{deg v} E at node v, with neighbours' vectors plugged in (and one free index if any)
        vectors = [[contract(w, v, i) for i in range(len(params))] for w in adjacency[v] if w != parent]
        total = sp.S.Zero
        for indices in itertools.product(range(len(params)), repeat=len(vectors)):
            term = loss
            for i in ([free_index] if free_index is not None else []) + list(indices):
                term = sp.diff(term, params[i])
            for vector, i in zip(vectors, indices):
                term *= vector[i]
            total += term
        return sp.expand(total)

    return contract(0, None, None)


@pytest.mark.parametrize(
    "rule, order",
    [(GD(), 1), (bea.rules.EGR(), 1), (bea.rules.SAM(rho=C * bea.h), 1), (MIDPOINT, 1)],
    ids=["gd", "egr", "sam", "midpoint"],
)
def test_coordinate_free_modified_loss_has_the_concrete_gradient(rule, order):
    q0, q1 = sp.symbols("q0 q1")
    loss = q0**3 / 3 + q0 * q1**2 - q1**2 / 2 + q0 * q1
    concrete = bea.modified_equation(rule, order, loss=loss, params=[q0, q1])
    losses = bea.modified_equation(rule, order).modified_loss()
    for l, pieces in enumerate(losses):
        potential = sum((c * _invariant_value(free, loss, [q0, q1]) for c, free, _ in pieces), sp.S.Zero)
        gradient = sp.Matrix([potential.diff(q0), potential.diff(q1)])
        assert sp.expand(gradient + concrete.terms[l]) == sp.zeros(2, 1), f"U_{l}"


def test_gd_modified_loss_in_words_and_its_limit():
    pieces = bea.modified_equation(GD(), 1).modified_loss()
    assert [(c, text) for c, _, text in pieces[0]] == [(1, "E")]
    assert [(c, text) for c, _, text in pieces[1]] == [(sp.Rational(1, 4), "|∇E|²")]
    with pytest.raises(bea.NoModifiedLossError, match="order 2"):
        bea.modified_equation(GD(), 2).modified_loss()


@pytest.mark.parametrize("rule_, name", [(bea.rules.SAM(), "rho"),
                                         (bea.rules.FiniteDifferenceGR(gamma=sp.Rational(1, 3)), "epsilon")])
def test_independent_radius_jointly_small(rule_, name):
    """small=[rho]: the double series in (h, rho) through total degree p equals the concrete engine's terms
    (exact in rho) truncated at rho-degree p - j."""
    q0, q1 = sp.symbols("q0 q1")
    loss = q0**2 / 2 + q0 * q1**2 / 3 + q1**4 / 4
    order = 2
    joint = bea.modified_equation(rule_, order, small=[name])
    assert joint.jointly_small and "(h + " in joint.latex()
    concrete = bea.modified_equation(rule_, order, loss=loss, params=[q0, q1])
    radius = next(s for s in rule_.free_symbols if s.name == name)
    for j, (mine, exact) in enumerate(zip(joint.evaluate(loss=loss, params=[q0, q1]), concrete.terms)):
        for x, y in zip(mine, exact):
            truncated = sum(sp.expand(y).coeff(radius, k) * radius**k for k in range(order - j + 1))
            assert sp.expand(x - truncated) == 0, (j, x, y)


def test_small_is_for_the_coordinate_free_view():
    with pytest.raises(bea.UnknownSymbolError, match="coordinate-free"):
        bea.modified_equation(bea.rules.SAM(), 1, loss=sp.Symbol("a") ** 2, params=[sp.Symbol("a")], small=["rho"])
    with pytest.raises(bea.UnknownSymbolError, match="not a symbol"):
        bea.modified_equation(bea.rules.SAM(), 1, small=["mu"])
