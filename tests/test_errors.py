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
