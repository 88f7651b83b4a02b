"""Monte Carlo weak errors of minibatch SGD's SME on JAX models (logistic regression, a tanh MLP)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bea._errors import NoStochasticModifiedEquationError
from bea.cli import main
from bea.rules import SGD, Langevin
from bea.verify import (
    JAX_MODELS,
    MODELS,
    STOCHASTIC_MODELS,
    JaxFiniteSumModel,
    VerificationError,
    jax_model,
    monte_carlo_weak_error,
)
from bea.verify._monte_carlo import _JaxSides


def _check_slopes(result, tolerance=0.2):
    assert result.sweeps, "no test function was resolved"
    for name, sweep in result.sweeps:
        assert not any(sweep.flags), (name, sweep.flags)
        assert abs(sweep.slope - result.expected) < tolerance, (name, sweep.slope)


# -- the models ---------------------------------------------------------------------------------------

def test_model_names_do_not_clash():
    assert set(JAX_MODELS) == {"logistic-sgd", "mlp-digits-sgd"}
    assert not set(JAX_MODELS) & (set(MODELS) | set(STOCHASTIC_MODELS))


def test_logistic_model_and_default_test_functions():
    model = jax_model("logistic-sgd")
    assert model.n_losses == 16
    assert set(model.test_functions) == {"E", "|params|^2", "['b']", "['w'][0]"}
    params = {"w": jnp.array([0.3, -0.2]), "b": jnp.array(0.1)}
    xs, signs = model.data
    expected = np.mean(np.log1p(np.exp(-np.asarray(signs) * (np.asarray(xs) @ [0.3, -0.2] + 0.1))))
    assert float(model.test_functions["E"](params)) == pytest.approx(expected, rel=1e-12)
    assert float(model.test_functions["|params|^2"](params)) == pytest.approx(0.09 + 0.04 + 0.01)
    assert float(model.test_functions["['w'][0]"](params)) == 0.3
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree_util.tree_leaves(model.params0))


def test_top_hessian_eigenvalue_is_the_dense_one():
    model = jax_model("logistic-sgd")
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(model.params0)
    hessian = jax.hessian(lambda v: model.mean_loss(unravel(v)))(flat)
    assert model.top_hessian_eigenvalue() == pytest.approx(float(np.max(np.abs(np.linalg.eigvalsh(hessian)))),
                                                           rel=1e-6)


def test_mlp_model_is_small():
    model = jax_model("mlp-digits-sgd")
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(model.params0)]
    assert model.n_losses == 32 and sum(sizes) == 16 * 4 + 4 + 4 * 10 + 10
    assert np.isfinite(float(model.mean_loss(model.params0)))


def test_rule_side_is_sgd():
    """One SGD step with a batch of all N examples without replacement is exactly a GD step."""
    model = jax_model("logistic-sgd")
    sides = _JaxSides(SGD(batch_size=model.n_losses, replacement=False), 0, model, None, None)
    ends = sides.rule_ends(0.5, 1, jax.random.PRNGKey(3), 4, jax.devices())
    gradient = jax.grad(model.mean_loss)(model.params0)
    for end, start, g in zip(jax.tree_util.tree_leaves(ends), jax.tree_util.tree_leaves(model.params0),
                             jax.tree_util.tree_leaves(gradient)):
        assert end.shape == (4, *start.shape)
        np.testing.assert_allclose(end, np.broadcast_to(start - 0.5 * g, end.shape), rtol=1e-12, atol=1e-14)


# -- slopes -------------------------------------------------------------------------------------------

@pytest.mark.slow  # ~15 s on 2 CPU cores
def test_logistic_sgd_order_0_slopes():
    result = monte_carlo_weak_error(SGD(batch_size=1), 0, model="logistic-sgd", step_sizes=[0.25, 0.125, 0.0625],
                                    time=2, paths=2048, key=0)
    assert result.model == "logistic-sgd" and result.expected == 1
    assert {"E", "|params|^2"} <= set(result.slopes)
    _check_slopes(result)


def _mean_errors(order, h, time, paths):
    sides = _JaxSides(SGD(batch_size=1), order, "logistic-sgd", None, None)
    key = jax.random.PRNGKey(7)
    rule = sides.rule_ends(h, round(time / h), jax.random.fold_in(key, 0), paths, jax.devices())
    sde = sides.sde_ends(h, time, jax.random.fold_in(key, 1), paths)
    out = {}
    for name in ("E", "|params|^2"):
        a, b = np.asarray(jax.vmap(sides.phi_fns[name])(rule)), np.asarray(jax.vmap(sides.phi_fns[name])(sde))
        out[name] = (abs(a.mean() - b.mean()), 1.96 * np.sqrt(a.var() / paths + b.var() / paths))
    return out


def test_logistic_order_1_sme_is_closer_than_the_gradient_flow():
    """At h = 1/2 (Lambda h ~ 0.12) the order-1 SME's weak error (plus its 95% half-width) is below a third of the
    gradient flow's. Its slope 2 is not resolved on CPU budgets (see docs/guide/verification.md): this checks the
    h^1 correction itself."""
    flow, sme = _mean_errors(0, 0.5, 4, 2048), _mean_errors(1, 0.5, 4, 2048)
    for name in ("E", "|params|^2"):
        (error0, half0), (error1, half1) = flow[name], sme[name]
        assert error0 > 3 * half0, (name, flow[name])  # the gradient flow's error is resolved
        assert error1 + half1 < error0 / 3, (name, flow[name], sme[name])


@pytest.mark.slow  # ~25 s on 2 CPU cores
def test_mlp_digits_sgd_order_1_slopes():
    result = monte_carlo_weak_error(SGD(batch_size=1), 1, model="mlp-digits-sgd", step_sizes=[1, 0.5, 0.25],
                                    time=2, paths=2048, key=0)
    assert result.expected == 2 and "E" in result.slopes
    _check_slopes(result)


# -- bad input ----------------------------------------------------------------------------------------

def test_langevin_on_a_jax_model_is_refused():
    with pytest.raises(VerificationError, match="SGD only.*not langevin"):
        monte_carlo_weak_error(Langevin(temperature=0.1), 1, model="logistic-sgd")


def test_order_2_on_a_jax_model_has_no_sde():
    with pytest.raises(NoStochasticModifiedEquationError, match="order 2"):
        monte_carlo_weak_error(SGD(), 2, model="logistic-sgd")


def test_bad_jax_inputs():
    with pytest.raises(VerificationError, match="JaxFiniteSumModel"):
        monte_carlo_weak_error(SGD(), 1, model="logistic-sgd", test_functions=["w"])
    with pytest.raises(VerificationError, match="unknown JAX model"):
        jax_model("logistic")
    with pytest.raises(VerificationError, match="two-param-sum, logistic-sgd, mlp-digits-sgd"):
        monte_carlo_weak_error(SGD(), 1, model="logistic")
    with pytest.raises(VerificationError, match="loss must be a JAX function"):
        JaxFiniteSumModel("bad", None, jnp.zeros((3, 2)), jnp.zeros(2))
    with pytest.raises(VerificationError, match="leading axis"):
        JaxFiniteSumModel("bad", lambda p, x: p @ x, jnp.float64(1.0), jnp.zeros(2))
    with pytest.raises(VerificationError, match="phi\\(params\\)"):
        JaxFiniteSumModel("bad", lambda p, x: p @ x, jnp.zeros((3, 2)), jnp.zeros(2), test_functions={"w": 1})


# -- command line -------------------------------------------------------------------------------------

def test_cli_monte_carlo_on_logistic(capsys):
    status = main(["verify", "sgd", "--stochastic", "--model", "logistic-sgd", "--monte-carlo", "--order", "0",
                   "--h", "0.5,0.25,0.125", "--time", "2", "--paths", "1024", "--tolerance", "0.5"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("Monte Carlo weak error: slope 1.") and "1024 paths per side at T=2" in out
    assert "weak local error" not in out and "only the Monte Carlo weak error ran" in out


def test_cli_json_on_logistic(capsys):
    status = main(["verify", "sgd", "--stochastic", "--model", "logistic-sgd", "--monte-carlo", "--order", "0",
                   "--h", "0.5,0.25,0.125", "--time", "2", "--paths", "1024", "--tolerance", "0.5", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["passed"] and set(data) & {"weak_local_error", "weak_global_error"} == set()
    result = data["monte_carlo_weak_error"]
    assert result["model"] == "logistic-sgd" and result["expected"] == 1 and "E" in result["test_functions"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sgd", "--stochastic", "--model", "logistic-sgd", "--order", "1"], "add --monte-carlo"),
        (["langevin", "--stochastic", "--model", "logistic-sgd", "--monte-carlo", "--order", "1",
          "--set", "temperature=0.1"], "checked for sgd only"),
        (["sgd", "--stochastic", "--model", "logistic-sgd", "--monte-carlo", "--order", "2"], "use --order 1"),
        (["sgd", "--stochastic", "--model", "logistic-sgd", "--monte-carlo", "--order", "1", "--set", "batch_size=17",
          "--set", "replacement=false"], "lower batch_size"),
    ],
)
def test_cli_errors(capsys, argv, message):
    status = main(["verify", *argv])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
