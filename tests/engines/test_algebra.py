"""The coefficient algebras against SymPy's own differentiation."""

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import mpmath_local_error_slope

import bea
from bea.engines.series import DifferentialAlgebra, NotPolynomialError

a, b = sp.symbols("a b")
UNARY = [sp.exp, sp.tanh, sp.sin, sp.cos, lambda u: sp.log(1 + u**2), lambda u: 1 / (1 + u**2), lambda u: sp.sqrt(2 + u**2)]


@st.composite
def smooth_expressions(draw):
    inner = draw(st.sampled_from([a * b, a - b, a + 2 * b, a**2]))
    outer = draw(st.sampled_from(UNARY))
    poly = draw(st.sampled_from([a, b, a * b, sp.Integer(1)]))
    return outer(inner) * poly + draw(st.sampled_from(UNARY))(b)


@settings(max_examples=25, deadline=None)
@given(smooth_expressions(), st.lists(st.sampled_from([0, 1]), min_size=1, max_size=3))
def test_derivatives_match_sympy(expr, indices):
    algebra = DifferentialAlgebra([a, b], seeds=[expr])
    value, reference = algebra.from_expr(expr), expr
    for i in indices:
        value, reference = algebra.diff(value, i), sp.diff(reference, [a, b][i])
    difference = algebra.to_expr(value) - reference
    # numerical comparison at rational points: independent of any simplification
    for point in [(sp.Rational(1, 3), sp.Rational(-2, 5)), (sp.Rational(7, 4), sp.Rational(1, 2))]:
        assert abs(sp.N(difference.subs({a: point[0], b: point[1]}), 30)) < 1e-25


def test_unknown_atoms_are_rejected():
    algebra = DifferentialAlgebra([a, b], seeds=[sp.exp(a)])
    with pytest.raises(NotPolynomialError):
        algebra.from_expr(sp.tanh(b))


@pytest.mark.slow
def test_logistic_loss_local_error_order():
    """Order 2 on a logistic loss: the flow of f_0 + h f_1 + h^2 f_2 is h^4-close to a GD step."""
    # mpmath's Taylor solver is independent of the engine; low precision keeps it quick.
    loss = sp.log(1 + sp.exp(-(a * sp.Rational(3, 2) + b))) + (a**2 + b**2) / 10
    me = bea.modified_equation(bea.rules.GD(), 2, loss=loss, params=[a, b])
    slope = mpmath_local_error_slope(me, loss, [a, b], ["0.3", "-0.2"], ["1/4", "1/8"], dps=18)
    assert abs(slope - 4) < 0.15, slope
