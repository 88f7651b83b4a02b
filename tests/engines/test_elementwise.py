"""Coordinate-free view of element-wise rules (RMSProp, Adam, AdamW, AdaBelief).

References that share no code with the element-wise engine: seed 002's eqs 2-3
written out here, GD's rational tree coefficients, and the concrete engine on
random polynomial losses (component series and the correction recursion per
parameter), and JAX iterates through the lowered field.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from latex_check import check_latex
from strategies import polynomial_losses

import bea
from bea.engines.elementwise._elementwise import contract
from bea.rules import GD, Adam, RMSProp, memory_rule, sqrt

BETA, RHO, EPS = Adam().beta, Adam().rho, Adam().eps


def _same(a, b) -> bool:
    return sp.cancel(sp.together(a - b)) == 0


def test_adam_first_correction_is_seed_002_eq_3():
    """f = -(grad E + bias)/sqrt(grad E^2 + eps), bias = (h/2){(1+b)/(1-b) - (1+r)/(1-r) + (1+r)/(1-r) eps/(g^2+eps)}
    grad ||grad E||_{1,eps} (Cattaneo, Klusowski & Shigida, eqs 2-3)."""
    cf = bea.modified_equation(Adam(), 1)
    g = contract([])
    root = sp.sqrt(g**2 + EPS)
    norm_gradient = contract([g / root])
    braces = (1 + BETA) / (1 - BETA) - (1 + RHO) / (1 - RHO) + (1 + RHO) / (1 - RHO) * EPS / (g**2 + EPS)
    assert _same(cf.terms[0], -g / root)
    assert _same(cf.terms[1], -braces * norm_gradient / (2 * root))
    assert "∇‖∇E‖_(1,epsilon)" in cf.text(1)
    # RMSProp is the case beta = 0 (seed 002, Section 4)
    assert _same(bea.modified_equation(RMSProp(), 1).terms[1], (-braces * norm_gradient / (2 * root)).subs(BETA, 0))


def test_gd_through_the_elementwise_engine():
    """The element-wise engine on GD reproduces the exact rational tree coefficients to order 3."""
    from bea.engines.elementwise._elementwise import elementwise_modified_field

    fields, _ = elementwise_modified_field(GD(), 3)
    cf = bea.modified_equation(GD(), 3)
    a, b = sp.symbols("a b")
    loss = a**4 / 4 + a * b**3 / 3 + sp.exp(a) * b
    from bea.results._elementwise import ElementwiseModifiedEquation

    evaluated = ElementwiseModifiedEquation(GD(), 3, tuple(fields)).evaluate(loss=loss, params=[a, b])
    for mine, reference in zip(evaluated, cf.evaluate(loss=loss, params=[a, b])):
        assert all(_same(x, y) for x, y in zip(mine, reference))


def _adabelief(theta, state, grad, h, n, beta1, beta2, eps):
    m, s = state
    g = grad(theta)
    m = beta1 * m + (1 - beta1) * g
    s = beta2 * s + (1 - beta2) * (g - m) * (g - m) + eps
    return theta - h * m / sqrt(s + eps), (m, s)


RULES = [RMSProp(rho=sp.Rational(1, 2), eps=sp.Rational(1, 10)),
         Adam(beta=sp.Rational(1, 3), rho=sp.Rational(1, 2), eps=sp.Rational(1, 5)),
         Adam(beta=sp.Rational(1, 2), rho=sp.Rational(1, 4), eps=sp.Rational(1, 10), eps_position="outside"),
         Adam(beta=sp.Rational(1, 2), rho=sp.Rational(1, 3), eps=sp.Rational(1, 7), weight_decay=sp.Rational(1, 10))]


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(polynomial_losses(max_dim=2, factors=(2, 3), max_terms=2), st.sampled_from(RULES))
def test_elementwise_terms_equal_the_concrete_engine(problem, rule):
    """f_0, f_1 evaluated on a random loss = the concrete derivation, compared numerically at a point (60 digits)."""
    loss, params = problem
    _assert_agree_at(rule, 1, loss, params, {p: sp.Rational(3 + 2 * i, 7) for i, p in enumerate(params)})


def _assert_agree_at(rule, order, loss, params, point):
    """The coordinate-free terms evaluated on `loss` equal the concrete engine's at `point` (60 digits)."""
    concrete = bea.modified_equation(rule, order, loss=loss, params=params)
    evaluated = bea.modified_equation(rule, order).evaluate(loss=loss, params=params)
    for mine, reference in zip(evaluated, concrete.terms):
        for x, y in zip(mine, reference):
            assert abs(sp.N((x - y).subs(point), 60)) < sp.Float("1e-50")


@pytest.mark.slow
def test_adabelief_coordinate_free():
    """A user's EMA rule with element-wise operations: the same engine, checked on a loss."""
    a, b = sp.symbols("a b")
    loss = a**2 / 2 + a * b + b**4 / 4
    rule = memory_rule(_adabelief, decays=["beta1", "beta2"], beta1=sp.Rational(1, 2), beta2=sp.Rational(1, 3),
                       eps=sp.Rational(1, 5))
    _assert_agree_at(rule, 1, loss, [a, b], {a: sp.Rational(2, 3), b: sp.Rational(-1, 2)})


def test_lowered_adam_field_equals_the_concrete_one():
    import jax

    a, b = sp.symbols("a b")
    loss = (sp.Rational(3, 5) - a * b) ** 2 / 2 + a**4 / 8
    concrete = bea.modified_equation(Adam(), 1, loss=loss, params=[a, b]).to_jax()
    fn = sp.lambdify([[a, b]], loss, modules="jax")
    field = bea.modified_equation(Adam(), 1).to_jax(loss=lambda p: fn([p["a"][0], p["b"][0]]))
    values = {"beta": 0.9, "rho": 0.999, "epsilon": 1e-3}
    got = field({"a": jnp.array([0.8]), "b": jnp.array([-1.3])}, 0.01, **values)
    want = concrete(jnp.array([0.8, -1.3]), 0.01, **values)
    np.testing.assert_allclose(jnp.concatenate([got["a"], got["b"]]), want, rtol=1e-12)
    assert jax.jit(lambda p: field(p, 0.01, **values))({"a": jnp.array([0.8]), "b": jnp.array([-1.3])})["a"].shape == (1,)


def test_elementwise_latex_and_no_modified_loss():
    cf = bea.modified_equation(Adam(), 1)
    text = cf.latex()
    check_latex(text)
    assert r"\nabla \|\nabla E\|_{1,\epsilon}" in text
    with pytest.raises(bea.exports.NoModifiedLossError, match="element-wise"):
        cf.modified_loss()


@pytest.mark.slow
def test_rmsprop_second_order_equals_the_concrete_engine():
    """f_2 of RMSProp, coordinate-free (published nowhere), against the concrete engine on a 2-parameter loss."""
    a, b = sp.symbols("a b")
    loss = a**2 / 2 + a * b**2 / 3 + b**2
    rule = RMSProp(rho=sp.Rational(1, 2), eps=sp.Rational(1, 3))
    _assert_agree_at(rule, 2, loss, [a, b], {a: sp.Rational(2, 3), b: sp.Rational(-1, 2)})
