"""Acceptance: fitted error slopes of truncated modified flows against the rules' own iterates."""

import jax.numpy as jnp
import numpy as np
import pytest

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
    with pytest.raises(bea.UnknownSymbolError):
        local_error(SimultaneousGD(), model("two-param"), 1, step_sizes=SMALL_H)
    with pytest.raises(ValueError, match="unknown model"):
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
