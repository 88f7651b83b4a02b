"""The correction recursion against closed forms, the paper's own results, and brute force."""

import random

import pytest
import sympy as sp
from reference import brute_force_corrections, inner_product_corrections, mpmath_local_error_slope

import bea
from bea.rules import GD

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def _random_spd(n, rng):
    m = sp.Matrix(n, n, lambda i, j: sp.Rational(rng.randint(-3, 3), rng.randint(1, 3)))
    return m.T * m + sp.eye(n)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_gd_quadratic_closed_form(n):
    """E = theta^T A theta / 2: the exact modified flow is log(I - hA)/h, so f_j = -A^{j+1} theta / (j+1)."""
    rng = random.Random(n)
    A = _random_spd(n, rng)
    theta = sp.Matrix(sp.symbols(f"t0:{n}"))
    loss = sp.expand((theta.T * A * theta)[0] / 2)
    me = bea.modified_equation(GD(), 6, loss=loss, params=list(theta))
    for j, term in enumerate(me.terms):
        expected = -(A ** (j + 1)) * theta / (j + 1)
        assert sp.expand(term - expected) == sp.zeros(n, 1), f"f_{j}"


def test_two_parameter_model_first_correction_and_modified_loss():
    """Barrett & Dherin, Appendix D: f_1 = -(1/4) grad |grad E|^2 and E~ = E (1 + (h/2)(a^2+b^2) x^2)."""
    me = bea.modified_equation(GD(), 1, loss=TWO_PARAM, params=[a, b])
    grad = sp.Matrix([TWO_PARAM.diff(a), TWO_PARAM.diff(b)])
    norm2 = (grad.T * grad)[0]
    assert sp.expand(me.terms[1] + sp.Matrix([norm2.diff(a), norm2.diff(b)]) / 4) == sp.zeros(2, 1)
    h = bea.h
    modified_loss = TWO_PARAM * (1 + h / 2 * (a**2 + b**2) * x**2)  # eq. A.27 with lambda = h/2
    expected = -sp.Matrix([modified_loss.diff(a), modified_loss.diff(b)])
    assert sp.expand(me.field() - expected) == sp.zeros(2, 1)


def test_two_parameter_model_brute_force_order_3():
    me = bea.modified_equation(GD(), 3, loss=TWO_PARAM, params=[a, b])
    reference = brute_force_corrections(GD(), [TWO_PARAM], [a, b], 3)
    for l, (mine, ref) in enumerate(zip(me.terms, reference)):
        assert sp.expand(mine - ref) == sp.zeros(2, 1), f"f_{l}"


def test_general_form_is_right_where_the_inner_product_form_is_not():
    """The paper's d/dtheta <f_i,f_j>/2 agrees up to f_2 and gives a wrong f_3 on a non-quadratic loss."""
    loss = a**4 / 4 + a * b**2 / 2 + b**2 / 2
    me = bea.modified_equation(GD(), 3, loss=loss, params=[a, b])
    f0 = -sp.Matrix([loss.diff(a), loss.diff(b)])
    paper = inner_product_corrections(f0, [a, b], 3)
    reference = brute_force_corrections(GD(), [loss], [a, b], 3)
    for l in range(3):
        assert sp.expand(me.terms[l] - paper[l]) == sp.zeros(2, 1)
    assert sp.expand(me.terms[3] - paper[3]) != sp.zeros(2, 1)
    assert sp.expand(me.terms[3] - reference[3]) == sp.zeros(2, 1)
    # f_2 is not a gradient field (asymmetric Jacobian): the reason the shortcut fails.
    jac = me.terms[2].jacobian([a, b])
    assert sp.expand(jac - jac.T) != sp.zeros(2, 2)


def test_one_dimensional_order_six_brute_force():
    t = sp.Symbol("t")
    loss = t**4 / 4 + t**2 / 2
    me = bea.modified_equation(GD(), 6, loss=loss, params=[t])
    reference = brute_force_corrections(GD(), [loss], [t], 6)
    for l, (mine, ref) in enumerate(zip(me.terms, reference)):
        assert sp.expand(mine - ref) == sp.zeros(1, 1), f"f_{l}"


@pytest.mark.slow
def test_two_parameter_model_brute_force_order_4():
    me = bea.modified_equation(GD(), 4, loss=TWO_PARAM, params=[a, b])
    reference = brute_force_corrections(GD(), [TWO_PARAM], [a, b], 4)
    assert all(sp.expand(m - r) == sp.zeros(2, 1) for m, r in zip(me.terms, reference))


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_orders_are_exact_rationals(order):
    me = bea.modified_equation(GD(), order, loss=TWO_PARAM, params=[a, b])
    for term in me.terms:
        for component in term:
            assert not component.has(sp.Float)


@pytest.mark.slow
def test_two_parameter_model_order_6_local_error_is_h8():
    """Independent numerical check at order 6: the flow of f_0 + ... + h^6 f_6, integrated by
    mpmath's arbitrary-precision Taylor ODE solver, is h^8-close to one GD step."""
    loss = (sp.Rational(3, 5) - a * b) ** 2 / 2  # Table A.1 data, x = 1, y = 0.6
    me = bea.modified_equation(GD(), 6, loss=loss, params=[a, b])
    slope = mpmath_local_error_slope(me, loss, [a, b], ["0.8", "0.5"], ["1/40", "1/80"])
    assert abs(slope - 8) < 0.15, slope
