"""The numeric engine's truncated series (`_truncated`, `_slow_series`) against a computation that shares none of
their bookkeeping: the optimizer started on `settle`'s slow manifold (Newton on functions, two orders beyond the
field) and its composed iterates differentiated as one function of h by nested jvps, combined by the difference
formula. Also: the structural test for a step affine in h, and `mode="jet"` where jet has no rule."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import bea
from bea.engines.taylor import contraction, modified_terms, optax_step, settle, update_step
from bea.engines.taylor._field import difference_weights
from bea.engines.taylor._series import taylor_series
from bea.engines.taylor._step import float_leaves
from bea.engines.taylor._truncated import linear_in_h

jax.config.update("jax_enable_x64", True)

_rng = np.random.default_rng(5)
X = jnp.asarray(_rng.normal(size=(12, 3)))
Y = jnp.asarray(_rng.normal(size=12))
PARAMS = {"w1": jnp.asarray(_rng.normal(size=(3, 4)) / 2), "b1": jnp.asarray(_rng.normal(size=4) / 3),
          "w2": jnp.asarray(_rng.normal(size=4) / 2)}


def loss(p):
    return jnp.mean((jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] - Y) ** 2) / 2


def composed_iterates_terms(step, order, params):
    """f_0..f_order by brute force: theta_n(h) from the state on settle's manifold (exact through h^(order+2)),
    sum_n w_n theta_n(h) differentiated order+1 times at once (every evaluation expanded through h^(order+1))."""
    found = contraction(step, params)
    manifold = settle(step, params, found, order + 2) if found is not None else None
    weights = [float(w) for w in difference_weights(order)]

    def combination(h):
        state = manifold(params, h) if manifold is not None else step.init(params, h)
        theta, total = params, ravel_pytree(params)[0] * weights[0]
        for w in weights[1:]:
            theta, state = step.apply(theta, state, h)
            total = total + w * ravel_pytree(theta)[0]
        return total

    return taylor_series(combination, order + 1, mode="jvp")[1:], found


CASES = [
    pytest.param(lambda lr: optax.sgd(lr, momentum=0.5), id="heavy-ball"),
    pytest.param(lambda lr: optax.sgd(lr, momentum=0.6, nesterov=True), id="nesterov"),
    pytest.param(lambda lr: optax.rmsprop(lr, decay=0.7, eps=1e-2), id="rmsprop"),
    pytest.param(lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=1e-2), id="adam"),
    # the learning rate inside a nonlinearity: the step is not affine in h, so G_2, G_3, ... enter
    pytest.param(lambda lr: optax.sgd(lr + 2 * lr**2, momentum=0.5), id="momentum-lr-squared"),
    pytest.param(lambda lr: optax.sgd(jnp.sin(lr)), id="gd-sin-lr"),
]


@pytest.mark.slow
@pytest.mark.parametrize("factory", CASES)
@pytest.mark.parametrize("order", [1, 3])
def test_truncated_iterates_match_the_composed_iterates_differentiated_at_once(factory, order):
    step = optax_step(factory, loss, count=50)
    expected, found = composed_iterates_terms(step, order, PARAMS)
    terms = jax.jit(lambda p: modified_terms(step, order, p, contraction=found))(PARAMS)
    for j, (term, reference) in enumerate(zip(terms, expected)):
        error = float(jnp.linalg.norm(ravel_pytree(term)[0] - reference) / jnp.linalg.norm(reference))
        assert error < 1e-10, (j, error)
        assert float(jnp.linalg.norm(reference)) > 1e-8  # no agreement of zeros


def test_affinity_in_h_is_read_from_the_jaxpr():
    """optax scales its update by the learning rate (affine); lr^2, sin(lr) or h inside the gradient's argument are
    not; a state update that uses h counts too."""
    def affine(step):
        return linear_in_h(step, PARAMS, step.init(PARAMS, jnp.asarray(0.0)))

    assert affine(optax_step(lambda lr: optax.adam(lr), loss, count=10))
    assert affine(optax_step(lambda lr: optax.chain(optax.add_decayed_weights(0.1), optax.sgd(lr, momentum=0.9)),
                             loss, count=10))
    assert not affine(optax_step(lambda lr: optax.sgd(lr * (1 + lr)), loss, count=10))
    assert not affine(update_step(lambda p, grad, h: jax.tree_util.tree_map(
        lambda x, g: x - h * g, p, grad(jax.tree_util.tree_map(lambda y: y + h, p))), loss))
    assert not affine(update_step(lambda p, s, grad, h: (p, jax.tree_util.tree_map(lambda x: x * jnp.exp(-h), s)), loss,
                                  init=lambda p: p))


def test_gd_with_the_learning_rate_inside_a_sine_has_the_log_series_of_its_step():
    """GD with step sin(h) on E = a theta^2 / 2 is theta -> (1 - a sin h) theta: the field is
    log(1 - a sin h) theta / h, whose h-series is known (here through h^3)."""
    a = 0.7
    field = bea.from_optax(lambda lr: optax.sgd(jnp.sin(lr)), 3, loss=lambda p: a * p["x"] ** 2 / 2)
    terms = field.terms({"x": jnp.asarray(1.3)})
    # log(1 - a sin h) = -a h - a^2 h^2 / 2 + (a / 6 - a^3 / 3) h^3 + (a^2 / 6 - a^4 / 4) h^4 + O(h^5)
    expected = [-a, -a**2 / 2, a / 6 - a**3 / 3, a**2 / 6 - a**4 / 4]
    for term, c in zip(terms, expected):
        assert math.isclose(float(term["x"]), c * 1.3, rel_tol=1e-12)


def test_jet_mode_where_jet_has_no_rule_says_to_use_jvp():
    """optax's bias correction b ** count mixes an integer count with a float: jet trips on it."""
    field = bea.from_optax(lambda lr: optax.adam(lr), 1, loss=loss, mode="jet")
    with pytest.raises(bea.BeaError, match="mode='jvp'"):
        field.terms(PARAMS)


def test_slow_manifold_states_enter_through_their_float_leaves_only():
    """A state with an integer counter and float moments (optax.adam): the terms are finite and f_0 is Adam's
    h -> 0 update direction on the slow manifold, -g / (|g| + eps) (m = g, v = g^2 at h = 0)."""
    eps = 1e-2
    step = optax_step(lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=eps), loss, count=10**6)
    found = contraction(step, PARAMS)
    assert any(not jnp.issubdtype(jnp.result_type(x), jnp.inexact)
               for x in jax.tree_util.tree_leaves(step.init(PARAMS, 0.0)))
    assert len(float_leaves(step.init(PARAMS, 0.0))) == 2 * len(jax.tree_util.tree_leaves(PARAMS))
    terms = modified_terms(step, 1, PARAMS, contraction=found)
    g = jax.grad(loss)(PARAMS)
    expected = jax.tree_util.tree_map(lambda x: -x / (jnp.abs(x) + eps), g)
    np.testing.assert_allclose(ravel_pytree(terms[0])[0], ravel_pytree(expected)[0], rtol=1e-12)
