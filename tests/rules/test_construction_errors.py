"""Building a rule from bad input raises a `bea.BeaError` subclass that says what to do (issue 18).

`InvalidHyperparameterError` is a ValueError (as before), `InvalidRuleError` also a TypeError,
so code that caught the old built-in exceptions keeps working.
"""

import pytest
import sympy as sp

import bea
from bea.rules import (
    EGR,
    SAM,
    Adam,
    FiniteDifferenceGR,
    HeavyBall,
    RMSProp,
    RungeKutta,
    SGDSteps,
    SimultaneousGD,
    compose,
    flooding_crossing,
    memory_rule,
    rule,
)

a, b = sp.symbols("a b")
LOSS = (a * b - sp.Rational(3, 5)) ** 2 / 2


def _heavy_ball_update(theta, state, grad, h, n, beta):
    (v,) = state
    v = beta * v + grad(theta)
    return theta - h * v, (v,)


@pytest.mark.parametrize("build, match", [
    (lambda: HeavyBall(beta=2), r"beta = 2 is outside \[0, 1\)"),
    (lambda: HeavyBall(beta=-0.5), "outside"),
    (lambda: RMSProp(rho=1), "rho = 1 is outside"),
    (lambda: RMSProp(eps=0), "eps = 0 must be > 0"),
    (lambda: Adam(eps_position="middle"), "eps_position"),
    (lambda: Adam(eps=-1, eps_position="outside"), "must be >= 0"),
    (lambda: FiniteDifferenceGR(eps=0), "eps = 0"),
    (lambda: FiniteDifferenceGR(kind="sideways"), "forward"),
    (lambda: RungeKutta.from_tableau([[0, 1], [0]], [1, 0]), "must be 2 x 2"),  # implicit is fine; ragged is not
    (lambda: RungeKutta.from_tableau([[0]], [1], [1]), "row sum"),
    (lambda: RungeKutta(A=1, b=(1,)), "Butcher tableau"),
    (lambda: SGDSteps(0), "positive number of batches"),
    (lambda: SimultaneousGD(players=(1,)), "two positive block sizes"),
    (lambda: flooding_crossing("sideways"), "forward"),
    (lambda: compose(bea.rules.GD(), duration=-1), "duration must be a positive number"),
])
def test_out_of_range_hyperparameters(build, match):
    with pytest.raises(bea.InvalidHyperparameterError, match=match) as info:
        build()
    assert isinstance(info.value, ValueError)  # old `pytest.raises(ValueError)` keep passing


@pytest.mark.parametrize("value, match", [
    (float("nan"), "must be finite"),
    (float("inf"), "must be finite"),
    (sp.oo, "must be finite"),
    (sp.nan, "must be finite"),
    (sp.zoo, "must be finite"),
    (1j, "must be real"),
    (sp.I / 2, "must be real"),
    (True, "boolean"),
    (object(), "must be a number or a SymPy expression"),
    (None, "must be a number or a SymPy expression"),
    ("beta +", "cannot parse"),
    ("inf", "must be finite"),
    ("-oo", "must be finite"),
    ("nan", "must be finite"),
])
def test_non_numbers_never_skip_the_range_checks(value, match):
    """nan, oo or a complex number used to pass `0 <= beta < 1` unchecked (or raise SymPy internals)."""
    with pytest.raises(bea.BeaError, match=match):
        HeavyBall(beta=value)


def test_messages_name_the_hyperparameter():
    with pytest.raises(bea.InvalidHyperparameterError, match="hyperparameter rho of sam must be finite"):
        SAM(rho=float("inf"))


def test_string_hyperparameters_are_symbols_not_sympy_functions():
    """'beta' is the symbol beta (SymPy's sympify would give its beta function)."""
    assert HeavyBall(beta="beta").beta == sp.Symbol("beta")
    assert SAM(rho="c*h").rho == sp.Symbol("c") * bea.h
    assert EGR(mu="1/10").mu == sp.Rational(1, 10)


@pytest.mark.parametrize("build, match", [
    (lambda: rule(3), "needs a callable step"),
    (lambda: rule(lambda theta, grad: theta), r"must accept \(theta, grad, h"),
    (lambda: rule(lambda theta, grad, h: theta, beta=0.5), "must accept.*beta"),
    (lambda: rule(lambda theta, grad, h: theta, n_losses=0), "n_losses"),
    (lambda: compose(), "at least one step"),
    (lambda: compose(3), "one-step rules without state"),
    (lambda: compose(HeavyBall()), "one-step rules without state"),
    (lambda: compose(bea.rules.GD(), bea.rules.GD(), losses=(0, 2)), "none skipped"),
    (lambda: memory_rule(3, decays=["beta"], beta=None), "needs a callable update"),
    (lambda: memory_rule(_heavy_ball_update, decays="beta", beta=None), "decays must be a list"),
    (lambda: memory_rule(_heavy_ball_update, decays=["gamma"], beta=None), "gamma.*pass gamma=None"),
    (lambda: memory_rule(lambda theta, state, grad, h: theta, decays=["beta"], beta=None), "must accept"),
    (lambda: memory_rule(_heavy_ball_update, decays=["beta"], init=5, beta=None), "callable init"),
])
def test_malformed_rules(build, match):
    with pytest.raises(bea.InvalidRuleError, match=match) as info:
        build()
    assert isinstance(info.value, TypeError)  # as before


def test_memory_rule_decay_named_beta_is_the_hyperparameter():
    """decays=['beta'] parsed as SymPy's beta function and failed with `TypeError: Basic._has()`."""
    custom = memory_rule(_heavy_ball_update, decays=["beta"], beta=None)
    assert custom.decays() == (sp.Symbol("beta"),)
    derived = bea.modified_equation(custom, 1, loss=LOSS, params=[a, b])
    reference = bea.modified_equation(HeavyBall(), 1, loss=LOSS, params=[a, b])
    for mine, theirs in zip(derived.terms, reference.terms):
        assert sp.simplify(mine - theirs) == sp.zeros(2, 1)
    with pytest.raises(bea.InvalidHyperparameterError, match="outside"):
        memory_rule(_heavy_ball_update, decays=["beta"], beta=1)


def test_memory_rule_with_numeric_values_iterates_and_verifies():
    """A memory_rule with values ('decay_values has no value for beta2') could not be iterated or verified."""
    custom = memory_rule(_heavy_ball_update, decays=["beta"], beta=0.5)
    assert custom.decays() == (sp.Rational(1, 2),)
    mine = bea.iterate(custom, LOSS, [1.0, 0.5], 0.01, 5, params=[a, b])
    theirs = bea.iterate(HeavyBall(beta=0.5), LOSS, [1.0, 0.5], 0.01, 5, params=[a, b])
    assert (mine == theirs).all()
    # and symbolic values bound later, by name
    symbolic = memory_rule(_heavy_ball_update, decays=["beta"], beta=None)
    later = bea.iterate(symbolic, LOSS, [1.0, 0.5], 0.01, 5, params=[a, b], values={"beta": 0.5})
    assert (later == theirs).all()


def test_memory_rule_decay_expressions_by_name():
    def update(theta, state, grad, h, n, beta):
        (v,) = state
        return theta - h * v, (beta**2 * v + grad(theta),)

    custom = memory_rule(update, decays=["beta**2"], beta=sp.Rational(1, 2))
    assert custom.decays() == (sp.Rational(1, 4),)
    assert memory_rule(update, decays=[sp.Symbol("beta", positive=True) ** 2], beta=0.5).decays() == (sp.Rational(1, 4),)


@pytest.mark.slow
def test_memory_rule_with_numeric_values_is_verified():
    custom = memory_rule(_heavy_ball_update, decays=["beta"], beta=0.5)
    result = bea.verify.local_error(custom, bea.verify.model("two-param"), 1, step_sizes=[4e-3, 2e-3, 1e-3, 5e-4])
    assert abs(result.slope - 3) < 0.3
