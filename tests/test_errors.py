"""Bad input gets an error that names the problem."""

import jax
import pytest
import sympy as sp

import bea
from bea.rules import GD, rule

a, b = sp.symbols("a b")
LOSS = (a * b - 1) ** 2 / 2


@pytest.mark.parametrize(
    "loss, word",
    [
        (sp.Abs(a) + b**2, "Abs"),
        (sp.Max(0, a) * b, "Max"),
        (sp.Heaviside(a) * b, "Heaviside"),
        (sp.Piecewise((a, a > 0), (0, True)) + b, "Piecewise"),
        (sp.sign(a) * b, "sign"),
    ],
)
def test_non_smooth_losses(loss, word):
    with pytest.raises(bea.NonSmoothLossError, match=word):
        bea.modified_equation(GD(), 2, loss=loss, params=[a, b])


def test_undefined_function():
    relu = sp.Function("relu")
    with pytest.raises(bea.UnknownSymbolError, match="relu"):
        bea.modified_equation(GD(), 1, loss=relu(a) * b, params=[a, b])


def test_parameter_not_in_loss():
    with pytest.raises(bea.UnknownSymbolError, match="c do not appear"):
        bea.modified_equation(GD(), 1, loss=LOSS, params=[a, b, sp.Symbol("c")])


def test_undeclared_symbol_with_constants():
    z = sp.Symbol("z")
    with pytest.raises(bea.UnknownSymbolError, match="unknown symbol"):
        bea.modified_equation(GD(), 1, loss=LOSS * z, params=[a, b], constants=[])


def test_loss_using_h():
    with pytest.raises(bea.UnknownSymbolError, match="reserved for the step size"):
        bea.modified_equation(GD(), 1, loss=LOSS * sp.Symbol("h"), params=[a, b])


def test_loss_using_a_hyperparameter_name():
    mu = sp.Symbol("mu")
    with pytest.raises(bea.UnknownSymbolError, match="hyperparameter"):
        bea.modified_equation(bea.rules.EGR(), 1, loss=LOSS * mu, params=[a, b])


@pytest.mark.parametrize("order", [-1, 1.5, "2", True, None])
def test_bad_orders(order):
    with pytest.raises(bea.InvalidOrderError, match="non-negative integer"):
        bea.modified_equation(GD(), order, loss=LOSS, params=[a, b])


def test_order_beyond_safe_range_needs_consent():
    with pytest.raises(bea.InvalidOrderError, match="max_order"):
        bea.modified_equation(GD(), bea.MAX_SAFE_ORDER + 1, loss=LOSS, params=[a, b])


def test_inconsistent_rule():
    jumpy = rule(lambda theta, grad, h: theta - grad(theta) * (1 + h))
    with pytest.raises(bea.InconsistentRuleError, match="not theta \\+ O\\(h\\)"):
        bea.modified_equation(jumpy, 1, loss=LOSS, params=[a, b])


def test_rule_returning_garbage():
    with pytest.raises(bea.InconsistentRuleError, match="not the updated parameter vector"):
        bea.modified_equation(rule(lambda theta, grad, h: 0), 1, loss=LOSS, params=[a, b])


def test_unknown_value_name():
    with pytest.raises(bea.UnknownSymbolError, match="neither a symbol of the loss"):
        bea.modified_equation(GD(), 1, loss=LOSS, params=[a, b], values={"zeta": 1})


def test_missing_loss_and_params():
    with pytest.raises(bea.UnknownSymbolError):
        bea.modified_equation(GD(), 1, params=[a, b])
    with pytest.raises(bea.UnknownSymbolError, match="params"):
        bea.modified_equation(GD(), 1, loss=LOSS)


def test_iterate_requires_float64():
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(bea.BeaError, match="jax_enable_x64"):
            bea.iterate(GD(), LOSS, [1.0, 1.0], 0.1, 2, params=[a, b])
    finally:
        jax.config.update("jax_enable_x64", True)


def test_iterate_needs_hyperparameter_values():
    with pytest.raises(ValueError, match="mu"):
        bea.iterate(bea.rules.EGR(), LOSS, [1.0, 1.0], 0.1, 2, params=[a, b])


def test_loss_that_is_not_an_expression():
    """loss=object() raised SymPy's SympifyError."""
    for values in (None, {"x": 1}):
        with pytest.raises(bea.UnknownSymbolError, match="must be a SymPy expression"):
            bea.modified_equation(GD(), 1, loss=object(), params=[a, b], values=values)
    with pytest.raises(bea.UnknownSymbolError, match="loss 2 must be a SymPy expression"):
        bea.modified_equation(bea.rules.SGDSteps(2), 1, losses=[LOSS, None], params=[a, b])


def test_loss_as_text_reads_names_as_symbols():
    """A string loss is parsed like --loss: 'beta' is a symbol, not SymPy's beta function."""
    me = bea.modified_equation(GD(), 1, loss="beta*(a*b - 1)**2/2", params=[a, b])
    assert sp.Symbol("beta") in me.symbols
    assert me.terms == bea.modified_equation(GD(), 1, loss=sp.Symbol("beta") * LOSS, params=[a, b]).terms


@pytest.mark.parametrize("value", [float("nan"), float("inf"), sp.oo, 1j])
def test_values_must_be_finite_reals(value):
    x = sp.Symbol("x")
    with pytest.raises(bea.InvalidHyperparameterError, match="the value of x must be"):
        bea.modified_equation(GD(), 1, loss=LOSS * x, params=[a, b], values={x: value})
    with pytest.raises(bea.InvalidHyperparameterError, match="the value of mu must be"):
        bea.modified_equation(bea.rules.EGR(), 1, loss=LOSS, params=[a, b], values={"mu": value})


# -- text given to the Python API goes through the same bounded parser as the CLI (bea/_parse.py) --


@pytest.mark.parametrize("text, words", [
    ("9**9**9", "exponent 387420489 is beyond 1000"), ("factorial(10**9)", "factorial"), ("nan", "finite"),
    ("I", "imaginary unit"),
])
def test_text_hyperparameters_and_losses_are_parsed_with_bounds(text, words):
    import time

    start = time.perf_counter()
    with pytest.raises(bea.ParseError, match=words.replace("(", r"\(")):
        bea.rules.SAM(rho=text)
    with pytest.raises(bea.ParseError, match=words.replace("(", r"\(")):
        bea.modified_equation(GD(), 1, loss=f"a*b*({text})", params=[a, b])
    assert time.perf_counter() - start < 1
    assert bea.rules.SAM(rho="0.5").rho == sp.Rational(1, 2)
