"""Acceptance: fitted error slopes of truncated modified flows against the rules' own iterates."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import bea
from bea.rules import GD, SAM, Adam, AlternatingGD, FiniteDifferenceGR, HeavyBall, RMSProp, SimultaneousGD
from bea.verify import VerificationError, global_error, local_error, model

TOLERANCE = 0.15
SMALL_H = np.geomspace(0.004, 0.0005, 5)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_gd_two_param_local(order):
    result = local_error(GD(), model("two-param"), order, step_sizes=SMALL_H)
    assert abs(result.slope - (order + 2)) < TOLERANCE, result
    assert not any(result.flags)


@pytest.mark.slow
@pytest.mark.parametrize("order", [0, 1, 2])
def test_gd_two_param_global(order):
    result = global_error(GD(), model("two-param"), order, step_sizes=SMALL_H, time=0.1)
    assert abs(result.slope - (order + 1)) < TOLERANCE, result


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule_, name, steps",
    [
        (HeavyBall(beta=0.5), "two-param", np.geomspace(0.001, 0.000125, 4)),
        (RMSProp(rho=0.5, eps=0.1), "two-param", SMALL_H),
        (Adam(beta=0.5, rho=0.6, eps=0.1), "two-param", SMALL_H),
        (SAM(rho=0.05), "two-param", np.geomspace(0.001, 0.000125, 4)),
        (FiniteDifferenceGR(gamma=0.05, eps=0.01), "two-param", np.geomspace(0.001, 0.000125, 4)),
        (SimultaneousGD(), "bilinear-game", np.geomspace(0.1, 0.0125, 4)),
        (AlternatingGD(), "bilinear-game", np.geomspace(0.1, 0.0125, 4)),
        (GD(), "dln", np.geomspace(0.1, 0.0125, 4)),
        (GD(), "logistic", np.geomspace(0.4, 0.05, 4)),
    ],
    ids=["heavy-ball", "rmsprop", "adam", "sam", "fd-gr", "simultaneous", "alternating", "dln", "logistic"],
)
def test_first_order_rules(rule_, name, steps):
    result = local_error(rule_, model(name), 1, step_sizes=steps)
    assert abs(result.slope - 3) < TOLERANCE, result


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2])
def test_mlp_on_digits(order):
    result = local_error(GD(), model("mlp"), order, step_sizes=np.geomspace(0.2, 0.05, 4))
    assert abs(result.slope - (order + 2)) < TOLERANCE, result


def test_memory_rule_global_error_from_the_slow_manifold():
    result = global_error(HeavyBall(beta=0.5), model("quadratic"), 1, step_sizes=np.geomspace(0.02, 0.0025, 4), time=0.2)
    assert abs(result.slope - 2) < TOLERANCE and "slow manifold" in result.note


def test_divergence_and_roundoff_are_flagged_not_fitted():
    with pytest.raises(VerificationError, match="usable"):
        local_error(GD(), model("two-param"), 1, step_sizes=[0.5, 0.3, 1e-7, 1e-8])
    result = local_error(GD(), model("quadratic"), 1, step_sizes=[0.02, 0.01, 0.005, 0.0025, 1e-6])
    assert result.flags[-1] == "round-off" and abs(result.slope - 3) < TOLERANCE


def test_model_rule_mismatch_is_reported():
    with pytest.raises(VerificationError, match="two-player game and two-param has no players.*bilinear-game"):
        local_error(SimultaneousGD(), model("two-param"), 1, step_sizes=SMALL_H)
    with pytest.raises(VerificationError, match="unknown model"):
        model("resnet")


def test_result_serializes_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = local_error(GD(), model("quadratic"), 1, step_sizes=[0.02, 0.01, 0.005, 0.0025])
    data = result.to_dict()
    assert data["expected"] == 3 and len(data["h"]) == 4
    ax = result.plot()
    plt.savefig(tmp_path / "slope.png")
    assert (tmp_path / "slope.png").stat().st_size > 0
    assert ax.get_xscale() == "log"
    # The h axis is labelled at the step sizes, in plain decimals, with no minor labels to overlap them.
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0025", "0.005", "0.01", "0.02"]
    assert all(not t.get_text() for t in ax.get_xticklabels(minor=True))
    plt.close("all")


def test_x64_required():
    import jax

    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(bea.lowering.Float64DisabledError):
            local_error(GD(), model("quadratic"), 1, step_sizes=[0.01, 0.005, 0.0025])
    finally:
        jax.config.update("jax_enable_x64", True)
    assert jnp.zeros(1).dtype == jnp.float64


@pytest.mark.slow
@pytest.mark.parametrize(
    "rule_",
    [GD(), HeavyBall(beta=0.5), Adam(beta=0.5, rho=0.6, eps=0.1)],
    ids=["gd", "heavy-ball", "adam"],
)
def test_against_optax_iterates(rule_):
    """The same sweep with optax's optimizer taking the step (state on the slow manifold)."""
    steps = np.geomspace(0.001, 0.000125, 4)
    ours = local_error(rule_, model("two-param"), 1, step_sizes=steps)
    theirs = local_error(rule_, model("two-param"), 1, step_sizes=steps, iterates="optax")
    assert abs(theirs.slope - 3) < TOLERANCE and "optax" in theirs.note
    np.testing.assert_allclose(theirs.error, ours.error, rtol=1e-6)


@pytest.mark.slow
def test_sgd_steps_on_mlp_batches():
    """Two SGD steps over two batches of digits: the coordinate-free field of coloured trees, lowered by autodiff
    with one loss per batch, integrated over 2 h."""
    from bea.rules import SGDSteps

    result = local_error(SGDSteps(2), model("mlp-2-batches"), 1, step_sizes=np.geomspace(0.4, 0.05, 4))
    assert abs(result.slope - 3) < TOLERANCE, result


@pytest.mark.slow
@pytest.mark.parametrize("rule_, order, step_sizes", [
    (HeavyBall(beta=0.5), 1, np.geomspace(0.04, 0.005, 4)),
    (RMSProp(rho=0.9, eps=0.01), 0, np.geomspace(0.004, 0.0005, 4)),
])
def test_memory_rules_on_the_mlp_coordinate_free(rule_, order, step_sizes):
    """JAX-only model: the coordinate-free field (B-series for heavy ball, element-wise for RMSProp) and
    its slow manifold, both lowered by autodiff; the iterates start on that manifold."""
    result = local_error(rule_, model("mlp"), order, step_sizes=step_sizes)
    assert abs(result.slope - (order + 2)) < TOLERANCE, result


# -- issue 18: inputs checked before any work, vanishing terms, refused sweeps, user models ----------------

@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a sweep gets as far as deriving the field: the checks must come first."""
    import bea.verify._sweep as sweep

    def derive(*args, **kwargs):
        raise AssertionError("the sweep derived the modified field before checking its inputs")

    monkeypatch.setattr(sweep, "modified_field", derive)


@pytest.mark.parametrize("step_sizes, words", [
    ([-1, 0.002, 0.001], "finite number > 0"),
    ([0, 0.002, 0.001], "finite number > 0"),
    ([float("nan"), 0.002, 0.001], "finite number > 0"),
    ([1e-3], "needs at least 3"),
    ([2e-3, 1e-3], "needs at least 3"),
    ([1e-3, 1e-3, 1e-3], "repeats 0.001"),
    ([0.004, 0.002, 0.002, 0.001], "repeats 0.002"),
    (["a", 0.002, 0.001], "not a number"),
    (0.001, "sequence of step sizes"),
])
def test_bad_step_sizes_are_refused_up_front(no_work, step_sizes, words):
    for sweep, extra in ((local_error, {}), (global_error, {"time": 0.1})):
        with pytest.raises(VerificationError, match=words) as info:
            sweep(GD(), model("quadratic"), 1, step_sizes=step_sizes, **extra)
        assert "step_sizes" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("time, words", [(-1, "finite time > 0"), (0, "finite time > 0"), (float("inf"), "finite time"),
                                         (0.004, "longer than time/4"), (0.1, "both become time/48")])
def test_bad_time_spans_are_refused_up_front(no_work, time, words):
    with pytest.raises(VerificationError, match=words):
        global_error(GD(), model("quadratic"), 1, step_sizes=[0.004, 0.0021, 0.002], time=time)


def test_global_step_sizes_print_as_decimals():
    """h = time/N from the decimal time: 0.3/12 is 0.025, not 0.024999999999999998 (JSON shows what repr does)."""
    from bea.verify._sweep import global_step_sizes

    assert 0.3 / 12 != 0.025
    assert global_step_sizes([0.025, 0.0125, 0.00625], 0.3) == ((0.025, 12), (0.0125, 24), (0.00625, 48))


def test_missing_hyperparameters_are_named_up_front(no_work):
    with pytest.raises(VerificationError, match=r"heavy-ball needs a number for beta.*values=\{'beta': \.\.\.\}"):
        local_error(HeavyBall(), model("two-param"), 1, step_sizes=SMALL_H)
    # Adam without any value used to run for minutes in the symbolic engine.
    with pytest.raises(VerificationError, match="adam needs a number for beta, eps, rho"):
        local_error(Adam(), model("two-param"), 1, step_sizes=SMALL_H)
    with pytest.raises(VerificationError, match="has no free hyperparameter gamma"):
        local_error(HeavyBall(), model("two-param"), 1, step_sizes=SMALL_H, values={"beta": 0.5, "gamma": 1})
    with pytest.raises(VerificationError, match="finite real number"):
        local_error(HeavyBall(), model("two-param"), 1, step_sizes=SMALL_H, values={"beta": float("inf")})
    with pytest.raises(ValueError, match="outside"):  # the rule's own check, also before any work
        local_error(HeavyBall(), model("two-param"), 1, step_sizes=SMALL_H, values={"beta": 2})
    with pytest.raises(bea.InvalidOrderError, match="order"):
        local_error(GD(), model("two-param"), -1, step_sizes=SMALL_H)


def test_values_by_field_name_bind_the_field_symbol():
    """RMSProp's field `eps` holds the symbol `epsilon`: either name sets it."""
    from bea.verify._checks import check_values

    rule_ = RMSProp()
    by_field = check_values(rule_, {"eps": 0.1, "rho": 0.5}, suggest=str)
    assert by_field == check_values(rule_, {"epsilon": 0.1, "rho": 0.5}, suggest=str)
    assert {s.name: v for s, v in by_field.items()} == {"epsilon": bea.rules.exact(0.1), "rho": bea.rules.exact(0.5)}


def test_vanishing_terms_raise_the_expected_slope():
    """The midpoint rule has f_1 = 0: truncating after f_0 leaves h^3 f_2 in one step, slope 3, not 2, and that
    passes with a note rather than a hint that the field is wrong."""
    from bea.rules import MIDPOINT, RK4
    from bea.verify import vanishing_terms

    assert vanishing_terms(GD(), model("two-param"), 1) == ()
    assert vanishing_terms(MIDPOINT, model("two-param"), 0) == (1,)
    assert vanishing_terms(RK4, model("two-param"), 0) == (1, 2, 3)
    result = local_error(MIDPOINT, model("two-param"), 0, step_sizes=[0.004, 0.002, 0.001])
    assert result.expected == 3 and result.vanishing == (1,) and result.passes()
    assert "f_1 vanishes" in result.note and result.to_dict()["vanishing_terms"] == ["f_1"]


def test_plain_results_pass_or_fail_by_tolerance():
    result = local_error(GD(), model("quadratic"), 1, step_sizes=[0.02, 0.01, 0.005])
    assert result.vanishing == () and result.expected == 3
    assert result.passes() and not result.passes(abs(result.deviation) / 2)


def test_errors_that_do_not_decrease_are_not_fitted():
    from bea.verify._sweep import _fit

    with pytest.raises(VerificationError, match="does not decrease with h"):
        _fit("local", [0.004, 0.002, 0.001], [1e-6, 2e-6, 1e-7], ["", "", ""], 3, "")
    assert abs(_fit("local", [0.004, 0.002, 0.001], [8e-6, 1e-6, 1.25e-7], ["", "", ""], 3, "").slope - 3) < 1e-9


def test_non_finite_iterates_and_flows_are_flagged():
    from bea.verify._sweep import _flag

    assert _flag(float("nan"), 1.0, 0.0, float("nan"), iterates_finite=False) == "diverged"
    assert _flag(float("nan"), 1.0, float("nan"), 1.0, flow_finite=False) == "flow solver failed"
    assert _flag(1e-6, 1.0, float("nan"), 1e-3) == "solver error"
    assert _flag(1e-6, 1.0, 1e-12, 1e-3) == ""


def test_a_diverging_sweep_is_refused():
    """E = exp(a^4) from a = 3: every step overflows; nothing is fitted through the NaNs."""
    steep = bea.verify.Model("steep", "E = exp(a^4)", np.array([3.0]), (lambda t: jnp.exp(t[0] ** 4),))
    with pytest.raises(VerificationError, match=r"only 0 of 3 .*h=0.1: diverged"):
        local_error(GD(), steep, 1, step_sizes=[0.1, 0.05, 0.02])


def test_user_model_from_the_docstring():
    """The example in bea.verify.Model's docstring runs and gives the slope it states."""
    import re
    import textwrap

    doc = bea.verify.Model.__doc__
    code = textwrap.dedent(doc[doc.index("::") + 2: doc.index("or from the command line")])
    printed = []
    namespace = {"print": lambda *args: printed.append(args)}
    exec(compile(code, "Model docstring", "exec"), namespace)
    slope, expected = printed[0]
    assert expected == 3 and abs(slope - 3) < TOLERANCE
    assert re.search(r"about 3, and 3", doc)
    assert "Model" in bea.verify.__all__


@pytest.mark.parametrize("kwargs, words", [
    ({"theta0": [[1.0, 2.0]]}, "1-D vector"),
    ({"theta0": [1.0, float("nan")]}, "finite numbers"),
    ({"jax_losses": ()}, "one or more functions"),
    ({"params": (sp.Symbol("a"),), "sympy_losses": (sp.Symbol("a") ** 2,)}, "1 params for a theta0 of 2"),
    ({"players": (1, 2)}, "adding up to 2"),
])
def test_user_models_are_checked(kwargs, words):
    fields = {"name": "mine", "description": "", "theta0": [1.0, 2.0], "jax_losses": (lambda t: t @ t,)} | kwargs
    with pytest.raises(VerificationError, match=words):
        bea.verify.Model(**fields)
