"""The low-rank SDE of minibatch SGD (bea.sgd_sde): its noise factor against the dense covariance,
its drift and diffusion against bea's stochastic engine, its paths against Ornstein-Uhlenbeck closed forms."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from jax.flatten_util import ravel_pytree

import bea
from bea import MinibatchSDE, sgd_sde, sgd_sde_paths

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(7, 3)))
Y = jnp.asarray(RNG.normal(size=7))
PARAMS = {"w": jnp.asarray(RNG.normal(size=(3, 2))), "v": jnp.asarray(RNG.normal(size=2)), "c": jnp.asarray(0.3)}


def tiny_mlp(params, example):
    x, y = example
    return 0.5 * (jnp.tanh(x @ params["w"]) @ params["v"] + params["c"] - y) ** 2


def dense_factor(sde, params, h):
    """The P x N matrix of the noise map, column i its value at the i-th unit vector of example space."""
    columns = jax.vmap(lambda e: ravel_pytree(sde.noise(params, h, e))[0])(jnp.eye(sde.n_examples))
    return columns.T


def dense_sigma(params):
    """Covariance of the per-example gradients, from the N x P Jacobian."""
    grads = jax.vmap(lambda x, y: ravel_pytree(jax.grad(tiny_mlp)(params, (x, y)))[0])(X, Y)
    centered = grads - grads.mean(axis=0)
    return centered.T @ centered / len(grads)


@pytest.mark.parametrize("batch_size, replacement, factor", [(1, True, 1.0), (3, True, 1 / 3), (3, False, 4 / 18),
                                                             (7, False, 0.0)])
def test_noise_factor_has_the_dense_covariance(batch_size, replacement, factor):
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=batch_size, replacement=replacement)
    assert sde.variance_factor == pytest.approx(factor)
    h = 0.07
    root = dense_factor(sde, PARAMS, h)
    assert root.shape == (ravel_pytree(PARAMS)[0].size, 7)  # P x N: low rank, no P x P matrix needed
    np.testing.assert_allclose(root @ root.T, h * factor * dense_sigma(PARAMS), atol=1e-14)
    assert float(sde.noise_trace(PARAMS)) == pytest.approx(float(jnp.trace(dense_sigma(PARAMS))), rel=1e-12)


def test_order_zero_is_the_gradient_flow():
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=1, order=0)
    gradient = jax.grad(sde.loss)(PARAMS)
    drift = sde.drift(PARAMS, 0.1)
    for key in PARAMS:
        np.testing.assert_allclose(drift[key], -gradient[key], rtol=1e-13)
    assert not np.any(dense_factor(sde, PARAMS, 0.1))  # D_0 = 0: the noise enters at order 1


# ---- against bea's stochastic engine on a SymPy finite sum ----

a, b = sp.symbols("a b")
DATA = [(sp.Rational(1, 2), sp.Rational(3, 4)), (sp.Rational(-1), sp.Rational(1, 3)), (sp.Rational(2), sp.Rational(-1))]


def sympy_loss(x, y):
    return (y - a * b * x) ** 2 / 2 + (a - x) ** 4 / 12 + x * b**3 / 3


def jax_loss(params, example):
    x, y = example
    return (y - params["a"] * params["b"] * x) ** 2 / 2 + (params["a"] - x) ** 4 / 12 + x * params["b"] ** 3 / 3


@pytest.mark.parametrize("batch_size, replacement", [(2, True), (2, False)])
def test_drift_and_diffusion_match_the_stochastic_engine(batch_size, replacement):
    losses = [sympy_loss(x, y) for x, y in DATA]
    rule = bea.rules.SGD(batch_size=batch_size, replacement=replacement)
    engine_drift, engine_diffusion = bea.stochastic_modified_equation(rule, 1, losses=losses, params=[a, b]).to_jax()
    data = (jnp.asarray([float(x) for x, _ in DATA]), jnp.asarray([float(y) for _, y in DATA]))
    sde = sgd_sde(jax_loss, data, batch_size=batch_size, replacement=replacement)
    for theta, h in [((0.4, -0.8), 0.1), ((1.3, 0.6), 0.03)]:
        params = {"a": jnp.asarray(theta[0]), "b": jnp.asarray(theta[1])}
        drift = sde.drift(params, h)
        np.testing.assert_allclose([drift["a"], drift["b"]], engine_drift(jnp.asarray(theta), h), rtol=1e-12)
        root = dense_factor(sde, params, h)
        np.testing.assert_allclose(root @ root.T, engine_diffusion(jnp.asarray(theta), h), rtol=1e-12, atol=1e-15)


# ---- paths: a linear-Gaussian model is an Ornstein-Uhlenbeck process ----

@pytest.mark.slow  # ~10 s: 2000 paths of 200 steps, each Brownian increment from a VirtualBrownianTree
def test_paths_match_the_ornstein_uhlenbeck_closed_form():
    """E_i = |w - u_i|^2/2 + k (c - s_i)^2/2: the per-example gradients differ by constants, so Sigma is the
    data covariance and the SME (drift -(1 + h H/2) H (x - mean)) is an OU process with mean and covariance
    in closed form: mean m + e^{-L t} (x0 - m), covariance (h/B) Sigma_jk (1 - e^{-(L_j + L_k) t})/(L_j + L_k)."""
    k, h, batch, n_paths = 2.0, 0.1, 2, 2000
    rng = np.random.default_rng(1)
    u, s = jnp.asarray(rng.normal(size=(6, 2))), jnp.asarray(rng.normal(size=6))

    def loss(params, example):
        ui, si = example
        return jnp.sum((params["w"] - ui) ** 2) / 2 + k * (params["c"] - si) ** 2 / 2

    params0 = {"w": jnp.asarray([1.0, -0.5]), "c": jnp.asarray(0.8)}
    times = [0.0, 0.4, 1.0]
    paths = sgd_sde_paths(loss, (u, s), params0, h, times, batch_size=batch, key=jax.random.PRNGKey(3),
                          n_paths=n_paths, dt0=5e-3)  # Euler's bias: < 1/4 of a standard error here
    assert paths["w"].shape == (n_paths, 3, 2) and paths["c"].shape == (n_paths, 3)
    flat = jnp.concatenate([paths["c"][..., None], paths["w"]], axis=-1)  # ravel order: c, w
    grads = jnp.concatenate([(k * (0.0 - s))[:, None], -u], axis=1)  # g_i - gbar = -(data_i - mean) (times k for c)
    sigma = np.cov(np.asarray(grads).T, bias=True)
    rates = np.array([k * (1 + h * k / 2), 1 + h / 2, 1 + h / 2])
    x0, mean = np.array([0.8, 1.0, -0.5]), np.array([float(s.mean()), *np.asarray(u.mean(axis=0))])
    for i, t in enumerate(times):
        expected_mean = mean + np.exp(-rates * t) * (x0 - mean)
        total = rates[:, None] + rates[None, :]
        expected_cov = h / batch * sigma * (1 - np.exp(-total * t)) / total
        got = np.asarray(flat[:, i, :])
        if t == 0:
            np.testing.assert_array_equal(got, np.broadcast_to(x0, got.shape))
            continue
        variance = np.diag(expected_cov)
        assert np.all(np.abs(got.mean(axis=0) - expected_mean) < 4 * np.sqrt(variance / n_paths))
        assert np.all(np.abs(got.var(axis=0) - variance) < 4 * variance * np.sqrt(2 / (n_paths - 1)))
        # the noise couples the coordinates through Sigma: the cross-covariance of (w_0, w_1) too
        cross = np.cov(got[:, 1], got[:, 2])[0, 1]
        scale = np.sqrt((variance[1] * variance[2] + expected_cov[1, 2] ** 2) / n_paths)
        assert abs(cross - expected_cov[1, 2]) < 4 * scale


def test_sample_paths_at_time_zero_and_pytree_structure():
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=2)
    paths = sde.sample_paths(PARAMS, 0.1, [0.0], key=jax.random.PRNGKey(0), n_paths=3)
    assert jax.tree_util.tree_structure(paths) == jax.tree_util.tree_structure(PARAMS)
    np.testing.assert_array_equal(paths["w"], np.broadcast_to(PARAMS["w"], (3, 1, 3, 2)))


def test_implicit_regularizers():
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=3, replacement=False)
    igr, noise = sde.implicit_regularizers(PARAMS, 0.2)
    gradient = ravel_pytree(jax.grad(sde.loss)(PARAMS))[0]
    assert float(igr) == pytest.approx(0.05 * float(gradient @ gradient), rel=1e-12)
    # Smith et al.: (h/(4B)) (N - B)/(N - 1) (1/N) sum_i |grad E_i - grad E|^2
    assert float(noise) == pytest.approx(0.2 / 12 * 4 / 6 * float(jnp.trace(dense_sigma(PARAMS))), rel=1e-12)


# ---- bad input ----

def test_order_two_is_refused_with_the_reason():
    with pytest.raises(bea.NoStochasticModifiedEquationError, match="third cumulant.*order=1"):
        sgd_sde(tiny_mlp, (X, Y), batch_size=1, order=2)
    with pytest.raises(bea.InvalidOrderError, match="order must be 0 or 1"):
        sgd_sde(tiny_mlp, (X, Y), batch_size=1, order=-1)


def test_bad_batches_and_data_are_refused():
    with pytest.raises(bea.InvalidHyperparameterError, match="batch_size 8 is larger than the 7 examples"):
        sgd_sde(tiny_mlp, (X, Y), batch_size=8, replacement=False)
    assert sgd_sde(tiny_mlp, (X, Y), batch_size=8).variance_factor == pytest.approx(1 / 8)  # with replacement: fine
    for bad in (0, True, 1.5):
        with pytest.raises(bea.InvalidHyperparameterError, match="batch_size must be a positive integer"):
            sgd_sde(tiny_mlp, (X, Y), batch_size=bad)
    with pytest.raises(bea.InvalidArrayError, match=r"loss\(params, example\) -> scalar"):
        sgd_sde("mse", (X, Y), batch_size=1)
    with pytest.raises(bea.InvalidArrayError, match="same number of examples"):
        sgd_sde(tiny_mlp, (X, Y[:5]), batch_size=1)
    with pytest.raises(bea.InvalidArrayError, match="leading axis"):
        sgd_sde(tiny_mlp, (X, jnp.asarray(1.0)), batch_size=1)
    sde = sgd_sde(lambda p, ex: p["w"].sum(axis=0) * ex[1], (X, Y), batch_size=1)
    with pytest.raises(bea.InvalidArrayError, match="must return a scalar"):
        sde.noise(PARAMS, 0.1, jnp.zeros(7))
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=1)
    with pytest.raises(bea.InvalidArrayError, match=r"example space, shape \(7,\)"):
        sde.noise(PARAMS, 0.1, jnp.zeros(6))
    with pytest.raises(bea.InvalidArrayError, match="float64"):
        sde.noise(jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), PARAMS), 0.1, jnp.zeros(7))
    with pytest.raises(bea.UnsupportedError, match="Stratonovich"):
        sde.sample_paths(PARAMS, 0.1, [0.5], key=jax.random.PRNGKey(0), n_paths=2, solver=diffrax.Heun())
    with pytest.raises(bea.InvalidArrayError, match="n_paths"):
        sde.sample_paths(PARAMS, 0.1, [0.5], key=jax.random.PRNGKey(0), n_paths=0)
    with pytest.raises(bea.InvalidArrayError, match="h must be a positive number"):
        sde.sample_paths(PARAMS, -0.1, [0.5], key=jax.random.PRNGKey(0), n_paths=2)


def test_float32_mode_is_refused():
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(bea.lowering.Float64DisabledError, match="jax_enable_x64"):
            sgd_sde(tiny_mlp, (X, Y), batch_size=1)
    finally:
        jax.config.update("jax_enable_x64", True)


def test_result_type_is_exported():
    assert isinstance(sgd_sde(tiny_mlp, (X, Y), batch_size=1), MinibatchSDE)
    assert "sgd_sde" in bea.__all__ and "MinibatchSDE" in bea.__all__


@pytest.mark.slow  # ~7 s: one compilation of the diffrax solve
def test_with_batch_size_reuses_the_compiled_solver_and_scales_the_noise():
    sde = sgd_sde(tiny_mlp, (X, Y), batch_size=1)
    other = sde.with_batch_size(4)
    assert other.batch_size == 4 and other.variance_factor == pytest.approx(1 / 4)
    np.testing.assert_allclose(dense_factor(other, PARAMS, 0.1), dense_factor(sde, PARAMS, 0.1) / 2, rtol=1e-13)
    key = jax.random.PRNGKey(0)
    one = sde.sample_paths(PARAMS, 0.1, [0.2], key=key, n_paths=2)
    four = other.sample_paths(PARAMS, 0.1, [0.2], key=key, n_paths=2)
    (solve,) = sde._solvers.values()
    assert other._solvers is sde._solvers and solve._cache_size() == 1  # compiled once for both batch sizes
    assert not np.allclose(one["c"], four["c"])  # same Brownian paths, a quarter of the noise covariance
    with pytest.raises(bea.InvalidHyperparameterError, match="larger than the 7 examples"):
        sde.with_batch_size(9, replacement=False)
