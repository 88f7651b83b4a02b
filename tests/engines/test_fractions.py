"""QQ(hyperparameters) on FLINT (`engines.series._fractions`) against SymPy's own fraction field."""

from fractions import Fraction

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.polys.rings import PolyRing

from bea.engines.series._fractions import RationalFunctionField, rational_function_field

beta, rho, eps = sp.symbols("beta rho eps")
SYMBOLS = (beta, rho, eps)
FIELD = rational_function_field(SYMBOLS)
REFERENCE = sp.QQ.frac_field(*sorted(SYMBOLS, key=str))


@st.composite
def rational_functions(draw):
    """A random element of QQ(beta, rho, eps) with the denominators the engines meet (1 - beta, eps, ...)."""
    numerator = sum(
        sp.Rational(draw(st.integers(-6, 6)), draw(st.integers(1, 4)))
        * beta ** draw(st.integers(0, 3)) * rho ** draw(st.integers(0, 2)) * eps ** draw(st.integers(0, 1))
        for _ in range(draw(st.integers(1, 4)))
    )
    factors = [1 - beta, 1 - rho, eps, beta + 2 * rho, 3 - eps]
    denominator = sp.Mul(*[f ** draw(st.integers(0, 2)) for f in factors])
    return numerator / denominator


@settings(max_examples=60, deadline=None)
@given(rational_functions(), rational_functions())
def test_arithmetic_matches_sympy_fraction_field(x, y):
    fx, fy = FIELD.from_sympy(x), FIELD.from_sympy(y)
    rx, ry = REFERENCE.from_sympy(x), REFERENCE.from_sympy(y)
    for got, want in [(fx + fy, rx + ry), (fx - fy, rx - ry), (fx * fy, rx * ry), (fx**3, rx**3)]:
        assert FIELD.to_sympy(got) == REFERENCE.to_sympy(want)  # same canonical form, printed alike
    if y != 0:
        assert FIELD.to_sympy(fx / fy) == REFERENCE.to_sympy(rx / ry)
        assert (fx / fy) * fy == fx


@settings(max_examples=40, deadline=None)
@given(rational_functions())
def test_canonical_zero_and_equality(x):
    fx = FIELD.from_sympy(x)
    assert not (fx - FIELD.from_sympy(sp.together(x)))  # another way of writing it: exactly zero
    assert fx == FIELD.from_sympy(sp.expand(sp.together(x)))
    assert hash(fx) == hash(FIELD.from_sympy(sp.factor(x)))
    assert sp.cancel(FIELD.to_sympy(fx) - x) == 0


def test_numbers_mix_with_elements():
    one_minus_beta = FIELD.from_sympy(1 - beta)
    assert FIELD.to_sympy(2 / one_minus_beta + sp.Rational(1, 3)) == REFERENCE.to_sympy(
        2 / REFERENCE.from_sympy(1 - beta) + REFERENCE.convert(sp.Rational(1, 3)))
    assert one_minus_beta * 0 == FIELD.zero and not FIELD.zero
    assert FIELD.convert(sp.QQ(3, 4)) == FIELD.from_sympy(sp.Rational(3, 4))
    assert one_minus_beta**-1 == 1 / one_minus_beta


def test_no_symbols_is_the_rationals():
    assert rational_function_field(()) is sp.QQ
    assert isinstance(rational_function_field([rho]), RationalFunctionField)


def test_polynomial_ring_over_the_field_matches_sympy():
    """The concrete engine's polynomials in the parameters over QQ(constants) (diff, exact quotients, compose)."""
    a, b = sp.symbols("a b")
    ours, theirs = PolyRing((a, b), FIELD), PolyRing((a, b), REFERENCE)
    expr = a**2 * beta / (1 - beta) + b * eps / (1 - rho) - a * b / (2 * beta + 4 * rho)
    p, q = ours.from_expr(expr), theirs.from_expr(expr)
    checks = [
        (p * p - p.diff(ours.gens[0]), q * q - q.diff(theirs.gens[0])),
        (p.exquo(ours.from_expr(1 - beta)), q.exquo(theirs.from_expr(1 - beta))),
        (p.compose([(ours.gens[0], ours.gens[0] + 2 * ours.gens[1])]),
         q.compose([(theirs.gens[0], theirs.gens[0] + 2 * theirs.gens[1])])),
    ]
    for got, want in checks:
        assert sp.expand(got.as_expr() - want.as_expr()) == 0


def test_numbers_hash_and_sign_like_numbers():
    """Elements equal to numbers hash like them (dict keys, sets) and have their sign (SymPy's printers ask)."""
    assert FIELD.convert(1) == 1 and hash(FIELD.convert(1)) == hash(1) and hash(FIELD.zero) == hash(0)
    assert hash(FIELD.convert(sp.Rational(3, 4))) == hash(Fraction(3, 4))
    assert FIELD.is_negative(FIELD.convert(-2)) and FIELD.is_positive(FIELD.convert(sp.Rational(1, 3)))
    assert not FIELD.is_positive(FIELD.from_sympy(beta)) and not FIELD.is_negative(FIELD.from_sympy(beta))
    a = sp.Symbol("a")
    ring = PolyRing((a,), FIELD)
    element = FIELD.from_sympy(beta)
    assert (element * ring.gens[0]).as_expr() == beta * a == (ring.gens[0] * element).as_expr()
