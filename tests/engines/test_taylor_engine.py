"""The numeric engine (`bea.from_optax`) against references that share none of its code: the symbolic coordinate-free
and element-wise engines lowered to JAX (trees, exact coefficients), closed forms (GD on quadratics, heavy ball and
GD on a network by hand-written Hessian-vector products) and the optimizer's own iterates (the slow manifold's
invariance)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import bea

jax.config.update("jax_enable_x64", True)

# A tanh MLP on fixed data: 4 -> 5 -> 1, 31 parameters in four leaves (a scalar among them).
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(16, 4)))
Y = jnp.asarray(_rng.normal(size=16))
PARAMS = {"w1": jnp.asarray(_rng.normal(size=(4, 5)) / 2), "b1": jnp.asarray(_rng.normal(size=5) / 3),
          "w2": jnp.asarray(_rng.normal(size=5) / 2), "b2": jnp.asarray(0.1)}


def float_leaves(state):
    """The state's float leaves by dtype (the tests' own filter; these optimizers hold no constants)."""
    return [x for x in jax.tree_util.tree_leaves(state) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]



def mlp_loss(p):
    hidden = jnp.tanh(X @ p["w1"] + p["b1"])
    return jnp.mean((hidden @ p["w2"] + p["b2"] - Y) ** 2) / 2


def flat(tree):
    return ravel_pytree(tree)[0]


def relative(a, b) -> float:
    a, b = flat(a), flat(b)
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def hvp(loss, params, v):
    """H(params) v by forward-over-reverse (no Hessian formed)."""
    return jax.jvp(jax.grad(loss), (params,), (v,))[1]


def third(loss, params, v):
    """grad^3 E(params)[v, v] with v held fixed: the derivative of H v along v."""
    return jax.jvp(lambda p: hvp(loss, p, v), (params,), (v,))[1]


def scaled(c, tree):
    return jax.tree_util.tree_map(lambda x: c * x, tree)


def added(*trees):
    return jax.tree_util.tree_map(lambda *xs: sum(xs), *trees)


# -- 1. against the symbolic engines, term by term -------------------------------------------------------------------

def _optax_nesterov(theta, state, grad, h, n, beta):
    """optax.sgd(momentum=beta, nesterov=True): m' = beta m + g, theta' = theta - h (beta m' + g); not bea's
    (Sutskever) Nesterov, whose gradient is taken at a look-ahead point."""
    (m,) = state
    g = grad(theta)
    m = beta * m + g
    return theta - h * (beta * m + g), (m,)


# Adam with eps inside the root: at order 3 below.
SYMBOLIC_CASES = [
    pytest.param(lambda lr: optax.sgd(lr), bea.rules.GD(), id="gd"),
    pytest.param(lambda lr: optax.sgd(lr, momentum=0.5), bea.rules.HeavyBall(beta=0.5), id="heavy-ball"),
    pytest.param(lambda lr: optax.sgd(lr, momentum=0.6, nesterov=True),
                 bea.rules.memory_rule(_optax_nesterov, decays=["beta"], name="optax-nesterov", beta=0.6), id="nesterov"),
    pytest.param(lambda lr: optax.rmsprop(lr, decay=0.9, eps=1e-3, eps_in_sqrt=True),
                 bea.rules.RMSProp(rho=0.9, eps=1e-3), id="rmsprop"),
    pytest.param(lambda lr: optax.adam(lr, b1=0.9, b2=0.99, eps=1e-3),
                 bea.rules.Adam(beta=0.9, rho=0.99, eps=1e-3, eps_position="outside"), id="adam-eps-outside"),
    pytest.param(lambda lr: optax.adamw(lr, b1=0.9, b2=0.99, eps=1e-3, weight_decay=0.1),
                 bea.rules.Adam(beta=0.9, rho=0.99, eps=1e-3, eps_position="outside", weight_decay=0.1), id="adamw"),
]


def symbolic_term(result, j):
    """f_j of a symbolic result alone, lowered to JAX on the MLP (the result's terms carry no power of h)."""
    only_j = dataclasses.replace(result, order=0, terms=(result.terms[j],), slow_manifold=())
    return only_j.to_jax(loss=mlp_loss)(PARAMS, 0.0)


def assert_terms_match_symbolic(factory, rule, order):
    terms = bea.from_optax(factory, order, loss=mlp_loss).terms(PARAMS)
    symbolic = bea.modified_equation(rule, order)
    errors = [relative(terms[j], symbolic_term(symbolic, j)) for j in range(order + 1)]
    assert max(errors) < 1e-10, errors
    assert all(float(jnp.linalg.norm(flat(t))) > 1e-6 for t in terms)  # no vacuous agreement of zeros


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "rule"), SYMBOLIC_CASES)
def test_terms_match_the_symbolic_engine_through_order_2(factory, rule):
    assert_terms_match_symbolic(factory, rule, 2)


@pytest.mark.slow
def test_adam_terms_match_the_symbolic_engine_at_order_3():
    """f_0..f_3 of Adam with eps inside the root (the symbolic side takes about 30 s on two cores)."""
    assert_terms_match_symbolic(lambda lr: optax.adam(lr, b1=0.9, b2=0.99, eps=0.0, eps_root=1e-3),
                                bea.rules.Adam(beta=0.9, rho=0.99, eps=1e-3), 3)


def state_vector(state):
    return flat(float_leaves(state))


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "rule", "h"), [
    pytest.param(lambda lr: optax.sgd(lr, momentum=0.5), bea.rules.HeavyBall(beta=0.5), 0.1, id="heavy-ball"),
    pytest.param(lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=1e-3),
                 bea.rules.Adam(beta=0.5, rho=0.6, eps=1e-3, eps_position="outside"), 0.1, id="adam"),
])
def test_slow_manifold_matches_the_symbolic_one(factory, rule, h):
    """The symbolic slow manifold of an order-2 result is exact through h^2 (its h^3 entries are zeros): the engine's,
    truncated there too (margin=0), is the same polynomial in h: compared at h and h/2, where the h and h^2 terms are
    as large as the h^0 one (optax's state order mu, nu is bea's m, nu)."""
    field = bea.from_optax(factory, 2, loss=mlp_loss)
    symbolic = bea.modified_equation(rule, 2).slow_manifold_to_jax(loss=mlp_loss)
    for step in (h, h / 2):
        expected = flat([state(PARAMS, step) for state in symbolic])
        assert relative(state_vector(field.slow_manifold(PARAMS, step, margin=0)), expected) < 1e-10


@pytest.mark.slow
def test_slow_manifold_is_invariant_under_the_optimizer_to_its_order():
    """One optax step from the slow manifold lands on it again up to the truncation: exact through h^2 (order 0,
    margin 2), the invariance residual S(theta_1) - s_1 is O(h^3) and must shrink 2^3 = 8-fold per halving of h."""
    factory = lambda lr: optax.sgd(lr, momentum=0.5)  # noqa: E731
    field = bea.from_optax(factory, 0, loss=mlp_loss)
    residuals = []
    for h in (0.02, 0.01):
        state = field.slow_manifold(PARAMS, h, margin=2)
        updates, new_state = factory(h).update(jax.grad(mlp_loss)(PARAMS), state, PARAMS)
        landed = field.slow_manifold(optax.apply_updates(PARAMS, updates), h, margin=2)
        residuals.append(relative(state_vector(new_state), state_vector(landed)))
    slope = math.log2(residuals[0] / residuals[1])
    assert 2.7 < slope < 3.3, residuals


# -- 2. closed forms -------------------------------------------------------------------------------------------------

@st.composite
def spd_matrices(draw, max_dim=5):
    """A symmetric positive definite matrix B B^T + I / 4 with entries of B in [-1, 1], and a point theta."""
    n = draw(st.integers(1, max_dim))
    entries = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    b = np.array(draw(st.lists(entries, min_size=n * n, max_size=n * n))).reshape(n, n)
    theta = np.array(draw(st.lists(entries, min_size=n, max_size=n)))
    return b @ b.T + np.eye(n) / 4, theta + 0.5  # theta away from the minimum, so no term is zero


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spd_matrices(), st.integers(0, 4))
@example((np.diag([0.5, 1.0, 1.5, 2.0, 2.5]) + 0.1, np.linspace(-1.0, 1.0, 5)), 4)
def test_gd_on_a_quadratic_has_the_log_series(problem, order):
    """GD on E = theta^T A theta / 2 is theta -> (I - h A) theta, whose field is log(I - h A) theta / h:
    f_j = -A^(j+1) theta / (j + 1), for every order and both differentiation modes."""
    a, theta = problem
    matrix = jnp.asarray(a)
    loss = lambda p: p["theta"] @ matrix @ p["theta"] / 2  # noqa: E731
    params = {"theta": jnp.asarray(theta)}
    expected = [-np.linalg.matrix_power(a, j + 1) @ theta / (j + 1) for j in range(order + 1)]
    for mode in ("jvp", "jet"):
        terms = bea.from_optax(optax.sgd, order, loss=loss, mode=mode).terms(params)
        assert len(terms) == order + 1
        for j, term in enumerate(terms):
            np.testing.assert_allclose(term["theta"], expected[j], rtol=1e-10, atol=1e-12 * np.abs(expected[j]).max())


@pytest.mark.slow
def test_gd_on_the_mlp_has_the_euler_corrections():
    """Explicit Euler on theta' = -grad E: f_1 = -(1/2) H g, f_2 = -(1/3) H H g - (1/12) grad^3 E[g, g]
    (Hairer, Lubich & Wanner, doi:10.1007/3-540-30666-8, Sect. IX.1), g = grad E, by nested jvps."""
    terms = bea.from_optax(optax.sgd, 2, loss=mlp_loss).terms(PARAMS)
    g = jax.grad(mlp_loss)(PARAMS)
    hg = hvp(mlp_loss, PARAMS, g)
    assert relative(terms[0], scaled(-1.0, g)) < 1e-12
    assert relative(terms[1], scaled(-0.5, hg)) < 1e-10
    f2 = added(scaled(-1 / 3, hvp(mlp_loss, PARAMS, hg)), scaled(-1 / 12, third(mlp_loss, PARAMS, g)))
    assert relative(terms[2], f2) < 1e-10


@pytest.mark.parametrize("beta", [0.3, 0.9])
def test_heavy_ball_on_the_mlp_has_the_known_first_correction(beta):
    """optax.sgd(momentum=beta) on its slow manifold: f_0 = -g / (1 - beta), f_1 = -(1 + beta) / (2 (1 - beta)^3) H g
    (Kovachki & Stuart, arXiv:1906.04285; Ghosh et al., arXiv:2302.00849)."""
    terms = bea.from_optax(lambda lr: optax.sgd(lr, momentum=beta), 1, loss=mlp_loss).terms(PARAMS)
    g = jax.grad(mlp_loss)(PARAMS)
    assert relative(terms[0], scaled(-1 / (1 - beta), g)) < 1e-12
    assert relative(terms[1], scaled(-(1 + beta) / (2 * (1 - beta) ** 3), hvp(mlp_loss, PARAMS, g))) < 1e-10


# -- the Taylor coefficients themselves ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["jvp", "jet"])
def test_taylor_series_of_a_pytree_with_list_containers(mode):
    """Regression: jet mode took the output's own lists (a step's state leaves, an empty state) for its series lists.
    sin, exp and h^2 have known coefficients; a constant has none."""
    from bea.engines.taylor._series import taylor_series

    def fun(h):
        return {"sin": jnp.sin(h) * jnp.ones(2), "leaves": [jnp.exp(h), h**2], "empty": [], "constant": jnp.ones(3)}

    series = taylor_series(fun, 3, mode=mode)
    for k, c in enumerate(series):
        np.testing.assert_allclose(c["sin"], [0.0, 1.0, 0.0, -1 / 6][k] * np.ones(2), atol=1e-15)
        np.testing.assert_allclose(c["leaves"][0], 1 / math.factorial(k), rtol=1e-14)
        np.testing.assert_allclose(c["leaves"][1], 1.0 if k == 2 else 0.0, atol=1e-15)
        np.testing.assert_allclose(c["constant"], np.ones(3) if k == 0 else np.zeros(3), atol=1e-15)
        assert c["empty"] == []
