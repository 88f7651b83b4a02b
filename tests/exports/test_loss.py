"""Modified losses: closed forms, the paper's IGR loss, and honest refusals."""

import random

import pytest
import sympy as sp

import bea
from bea.exports import is_gradient_field

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def _grad(expr, params):
    return sp.Matrix([expr.diff(p) for p in params])


def test_implicit_gradient_regularization_loss():
    """Barrett & Dherin, eq. A.27: E~ = E + (h/4) |grad E|^2 = E (1 + (h/2)(a^2 + b^2) x^2)."""
    me = bea.modified_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b])
    loss = me.modified_loss()
    assert loss.terms[0] == TWO_PARAM
    h = bea.h
    expected = TWO_PARAM * (1 + h / 2 * (a**2 + b**2) * x**2)
    assert sp.expand(loss.expr.subs(sp.Symbol("h", positive=True), h) - expected) == 0


def test_no_modified_loss_for_gd_at_second_order():
    me = bea.modified_equation(bea.rules.GD(), 2, loss=TWO_PARAM, params=[a, b])
    with pytest.raises(bea.NoModifiedLossError, match="order 2"):
        me.modified_loss()
    assert not is_gradient_field(me.terms[2], [a, b])


def test_quadratic_losses_have_modified_losses_at_every_order():
    """E = theta^T A theta / 2: U_j = theta^T A^{j+1} theta / (2 (j+1)) (from log(I - hA)/h)."""
    rng = random.Random(3)
    n = 3
    m = sp.Matrix(n, n, lambda i, j: sp.Rational(rng.randint(-2, 2), rng.randint(1, 2)))
    A = m.T * m + sp.eye(n)
    theta = sp.Matrix(sp.symbols("t0:3"))
    loss = sp.expand((theta.T * A * theta)[0] / 2)
    me = bea.modified_equation(bea.rules.GD(), 4, loss=loss, params=list(theta))
    ml = me.modified_loss()
    for j, u in enumerate(ml.terms):
        expected = (theta.T * A ** (j + 1) * theta)[0] / (2 * (j + 1))
        assert sp.expand(u - expected) == 0


@pytest.mark.parametrize(
    "rule", [bea.rules.EGR(), bea.rules.SAM(rho=sp.Symbol("c") * bea.h), bea.rules.MIDPOINT], ids=str
)
def test_first_order_potentials_have_the_right_gradient(rule):
    me = bea.modified_equation(rule, 1, loss=TWO_PARAM, params=[a, b])
    ml = me.modified_loss()
    for l, u in enumerate(ml.terms):
        assert sp.expand(_grad(u, [a, b]) + me.terms[l]) == sp.zeros(2, 1)


def test_non_polynomial_potential():
    loss = sp.log(1 + sp.exp(-a * b))
    me = bea.modified_equation(bea.rules.GD(), 1, loss=loss, params=[a, b])
    u = me.modified_loss().terms[1]
    g = _grad(loss, [a, b])
    assert sp.simplify(u - (g.T * g)[0] / 4 - (u - (g.T * g)[0] / 4).subs({a: 0, b: 0})) == 0


def test_cli_modified_loss(capsys):
    import json

    from bea.cli import main

    main(["derive", "gd", "--loss", "(y - a*b*x)**2/2", "--params", "a,b", "--order", "2", "--modified-loss", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["modified_loss"] is None and "order 2" in data["modified_loss_note"]
