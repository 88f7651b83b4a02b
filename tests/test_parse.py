"""Parsing text strictly and with bounded work (bea/_parse.py), and the loss checks that need the parameters."""

import time

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bea
from bea._parse import (
    MAX_EXPANDED_TERMS,
    MAX_EXPONENT,
    MAX_NUMBER_DIGITS,
    check_loss,
    estimated_terms,
    parse_expression,
)

a, b, x, y, eps = sp.symbols("a b x y eps")
SECONDS = 2.0  # every parse, good or bad, ends well within this


def parse(text):
    start = time.perf_counter()
    try:
        return parse_expression(text)
    finally:
        assert time.perf_counter() - start < SECONDS, f"parsing {text!r} took too long"


# -- item 1: no hang, no memory exhaustion --------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("a*10**10**10", "exponent 10000000000 is beyond 1000"),
    ("9**9**9", "exponent 387420489 is beyond 1000"),
    ("factorial(10**9)", "factorial(...) of a number beyond 1000"),
    ("gamma(10**9)*a", "gamma(...) of a number beyond 1000"),
    ("loggamma(10**9)", "loggamma"),
    ("a**(10**8)", "exponent 100000000 is beyond 1000"),
    ("a**100000", "exponent 100000"),
    ("a**(1/1001)", "exponent 1/1001"),
    ("root(a, 10**9)", "exponent 1/1000000000"),
    ("1e400*a", "more than 100 digits"),
    ("1e99999999999999999999", "more than 100 digits"),
    ("1" * 150, "more than 100 digits"),
    ("10**101", "digits"),
    ("(10**99)**(999/2)", "a 100-digit number**(999/2) is a number of about 49450 digits"),
    ("factorial(100)", "158 digits"),
    ("sqrt(2)**1000", "151 digits"),
    ("a + " * 2600 + "a", "longer than the 10000"),
])
def test_huge_inputs_are_refused_at_once(text, words):
    with pytest.raises(bea.ParseError) as info:
        parse(text)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_limits_are_inclusive_and_documented():
    assert parse(f"a**{MAX_EXPONENT}") == a**MAX_EXPONENT
    assert parse(f"a**(-{MAX_EXPONENT})") == a**-MAX_EXPONENT
    assert parse("9" * MAX_NUMBER_DIGITS) == int("9" * MAX_NUMBER_DIGITS)
    assert parse("factorial(50)") == sp.factorial(50)
    assert parse("exp(10**99)") == sp.exp(sp.Integer(10) ** 99)
    for name in ("MAX_TEXT_LENGTH", "MAX_NUMBER_DIGITS", "MAX_EXPONENT", "MAX_EXACT_ARGUMENT", "MAX_EXPANDED_TERMS"):
        assert name in bea._parse.__doc__


# -- item 2: inputs that must not be accepted -----------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("inf", "finite"), ("nan*a", "finite"), ("oo", "finite"), ("-oo*a", "finite"), ("zoo", "finite"),
    ("Infinity", "finite"), ("NaN", "finite"),
    ("1/0", "division by zero"), ("0**-1", "division by zero"), ("log(0)*a", "zoo"),
    ("I*a**2", "imaginary unit"), ("1j*a", "imaginary"), ("sqrt(-1)*a", "complex"),
    ("asin(2)*a", "complex"), ("(-1)**(1/3)", "complex"), ("root(a, 3, 1)", "complex"),
])
def test_non_finite_and_complex_text_is_refused(text, words):
    with pytest.raises(bea.ParseError, match="cannot parse") as info:
        parse(text)
    assert words in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ("a**0.5", sp.sqrt(a)),
    ("0.1", sp.Rational(1, 10)),
    ("1.5e-3*a", sp.Rational(3, 2000) * a),
    ("(y - a*b*0.6)**2", (y - sp.Rational(3, 5) * a * b) ** 2),
    ("a^2", a**2),
    ("cbrt(a)", a ** sp.Rational(1, 3)),
    ("E*beta + gamma*pi", sp.Symbol("E") * sp.Symbol("beta") + sp.Symbol("gamma") * sp.pi),
])
def test_decimals_are_exact_and_names_are_symbols(text, expected):
    result = parse(text)
    assert result == expected and not result.has(sp.Float)


@pytest.mark.parametrize("text, words", [
    ("exp('10**10**10')", "quoted text"),
    ("a % b", "unexpected '%'"),
    ("legendre(1000, a)", "not among the functions"),
    ("relu(a)", "not a SymPy function"),
    ("exp(a, b)", "takes exactly 1 argument"),
    ("gamma*gamma(a)", "both as a name and as a function"),
    ("(a, b)", "not a scalar expression"),
    ("Mul*a + 2", "a name the parser itself uses"),
    ("exp(a", "a parenthesis is not closed"),
    ("a +", "invalid syntax"),
])
def test_other_bad_text(text, words):
    with pytest.raises(bea.ParseError) as info:
        parse(text)
    assert words in str(info.value)


@pytest.mark.parametrize("text", [
    "sqrt(a**2)", "(a**2)**(1/2)", "(a**2)**(3/2)", "(a**2)**(1/3)", "sqrt((a*b - 1)**2)", "sqrt((a - x)**2)",
    "sqrt(x*a**2)", "sqrt(a*b**2)", "sqrt(a**2 + b**2)", "(a**2 + b**2)**(3/2)", "sqrt(x**2*a**2 + x**2*b**2)",
])
def test_abs_like_roots_are_not_smooth(text):
    with pytest.raises(bea.NonSmoothLossError, match="not differentiable"):
        check_loss(parse_expression(text, {"a": a, "b": b}), [a, b])


@pytest.mark.parametrize("text", [
    "sqrt(a**2 + 1)", "sqrt(a**2 + eps**2)", "sqrt(a**2 + eps)", "(a**4)**(1/2)", "(a**6)**(1/3)", "sqrt((a**2 + 1)**2)",
    "sqrt((a - 1)**2 + (a + 1)**2)", "sqrt(a)", "a**(1/3)", "1/sqrt(a**2)", "sqrt(exp(2*a))*b",
    "sqrt(a**4 + 2*a**2*b**2 + b**4)", "log(1 + exp(-y*(a*x + b)))", "(y - a*b*x)**2/2",
])
def test_smooth_roots_are_accepted(text):
    check_loss(parse_expression(text, {"a": a, "b": b}), [a, b])


def test_roots_the_engine_accepts_still_derive():
    """The Adam-style root sqrt(a**2 + eps) on the CLI path and through the engine."""
    loss = parse_expression("sqrt(a**2 + eps) + b**2", {"a": a, "b": b})
    check_loss(loss, [a, b])
    me = bea.modified_equation(bea.rules.GD(), 1, loss=loss, params=[a, b])
    assert sp.simplify(me.terms[0][0] + a / sp.sqrt(a**2 + eps)) == 0


@pytest.mark.parametrize("loss, words", [
    (sp.I * a**2, "complex"), (sp.nan * a, "not finite"), (a + sp.oo, "not finite"), (sp.asin(2) * a, "complex"),
])
def test_python_losses_must_be_real_and_finite(loss, words):
    with pytest.raises(bea.NonSmoothLossError, match=words):
        check_loss(loss, [a])


def test_expanded_size_is_bounded():
    assert estimated_terms((a + x + y) ** 2) == 6
    assert estimated_terms((a + x) * (b + y) + 1) == 5
    assert estimated_terms(a * x, sizes={x: 3}) == 3
    assert estimated_terms((a + b + x) ** 10**8, cap=100) == 100  # capped, not computed
    check_loss((a + x + y) ** 100, [a])  # 5151 terms
    check_loss((a + b) ** MAX_EXPONENT, [a, b])
    with pytest.raises(bea.UnsupportedError, match=f"at most {MAX_EXPANDED_TERMS}"):
        check_loss((a + x + y) ** 729, [a])
    with pytest.raises(bea.UnsupportedError, match="expand into about 20301"):
        check_loss(a * x**200, [a], sizes={x: 3})  # x = b + c + 1 substituted
    with pytest.raises(bea.UnsupportedError, match="exponents beyond 1000"):
        check_loss(a**(10**8), [a])


# -- the parser fuzzed: a result or a one-line ParseError, quickly, never another exception ----------

NAMES = ["a", "b", "x", "h", "E", "pi", "I", "nan", "oo", "inf", "beta", "gamma", "_x", "lambda", "import", "Mul"]
NUMBERS = ["0", "1", "2", "3", "0.5", "1e-3", "10", "1000", "1001", "9", "10000000000", "1e400", "1j", "0x10",
           "99999999999999999999999999999999999999999999999999"]
OPERATORS = ["+", "-", "*", "/", "**", "^", "(", ")", "(", ")", ","]
FUNCTIONS = ["exp(", "log(", "sqrt(", "sin(", "tanh(", "factorial(", "gamma(", "binomial(", "Abs(", "Max(",
             "root(", "cbrt(", "loggamma(", "legendre(", "relu(", "__import__("]
JUNK = [".", ";", "%", "!", "=", "[", "]", "'", "\"", "@", "<", "#", "\\", "`", "lambda:", "\n", "a.__class__"]
TOKENS = st.one_of(
    st.sampled_from(NAMES), st.sampled_from(NUMBERS), st.sampled_from(OPERATORS), st.sampled_from(OPERATORS),
    st.sampled_from(FUNCTIONS), st.sampled_from(JUNK),
)


@st.composite
def token_texts(draw):
    tokens = draw(st.lists(TOKENS, min_size=1, max_size=14))
    return draw(st.sampled_from(["", " "])).join(tokens)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_texts())
def test_parser_fuzz(text):
    start = time.perf_counter()
    try:
        expr = parse_expression(text)
    except bea.ParseError as exc:
        message = str(exc)
        assert message and "\n" not in message
    else:
        assert isinstance(expr, sp.Expr) and not expr.has(sp.Float, sp.I, sp.nan, sp.zoo, sp.oo)
        try:
            check_loss(expr, sorted(expr.free_symbols, key=str))
        except bea.BeaError as exc:
            assert "\n" not in str(exc)
    assert time.perf_counter() - start < SECONDS, f"{text!r} took {time.perf_counter() - start:.2f} s"
