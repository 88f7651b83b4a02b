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
from bea.engines.taylor._truncated import linear_in_h

jax.config.update("jax_enable_x64", True)

_rng = np.random.default_rng(5)
X = jnp.asarray(_rng.normal(size=(12, 3)))
Y = jnp.asarray(_rng.normal(size=12))
PARAMS = {"w1": jnp.asarray(_rng.normal(size=(3, 4)) / 2), "b1": jnp.asarray(_rng.normal(size=4) / 3),
          "w2": jnp.asarray(_rng.normal(size=4) / 2)}


def float_leaves(state):
    """The state's float leaves by dtype (the tests' own filter; these optimizers hold no constants)."""
    return [x for x in jax.tree_util.tree_leaves(state) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]



def loss(p):
    return jnp.mean((jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] - Y) ** 2) / 2


# The one-sided difference formulas for a first derivative on order + 2 points (Fornberg 1988, Table 1), written
# out rather than taken from the engine's `difference_weights`, which this reference must not share.
ONE_SIDED_WEIGHTS = {0: [-1.0, 1.0], 1: [-3 / 2, 2.0, -1 / 2], 2: [-11 / 6, 3.0, -3 / 2, 1 / 3],
                     3: [-25 / 12, 4.0, -3.0, 4 / 3, -1 / 4], 4: [-137 / 60, 5.0, -5.0, 10 / 3, -5 / 4, 1 / 5]}


def test_difference_weights_are_the_one_sided_formulas():
    for order, weights in ONE_SIDED_WEIGHTS.items():
        np.testing.assert_allclose([float(w) for w in difference_weights(order)], weights, rtol=1e-15)


def composed_iterates_terms(step, order, params):
    """f_0..f_order by brute force: theta_n(h) from the state on settle's manifold (exact through h^(order+2)),
    sum_n w_n theta_n(h) differentiated order+1 times at once (every evaluation expanded through h^(order+1))."""
    found = contraction(step, params)
    manifold = settle(step, params, found, order + 2) if found is not None else None
    weights = ONE_SIDED_WEIGHTS[order]

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
        return linear_in_h(step, PARAMS, step.template(PARAMS, jnp.asarray(0.0)))

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


def test_jet_mode_agrees_with_nested_jvps_on_adam():
    """Regression: jet's rule for a jitted call gave optax's integer step count a series, and b ** count failed."""
    step = optax_step(lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=1e-2), loss, count=50)
    found = contraction(step, PARAMS)
    by_jet = modified_terms(step, 2, PARAMS, contraction=found, mode="jet")
    by_jvps = modified_terms(step, 2, PARAMS, contraction=found, mode="jvp")
    for a, b in zip(by_jet, by_jvps):
        assert float(jnp.linalg.norm(ravel_pytree(a)[0] - ravel_pytree(b)[0]) / jnp.linalg.norm(ravel_pytree(b)[0])) < 1e-12


def sorted_update(params, grad, h):
    """GD with the step divided by 1 + |g|^2, the squares summed after a sort (jet has no rule for sort; the sum
    does not depend on the order, so the step is smooth)."""
    g = grad(params)
    squares = jnp.concatenate([jnp.ravel(d) ** 2 for d in jax.tree_util.tree_leaves(g)])
    scale = 1.0 + jnp.sum(jnp.sort(squares))
    return jax.tree_util.tree_map(lambda x, d: x - h * d / scale, params, g)


@pytest.mark.filterwarnings("ignore::bea.NonSmoothStepWarning")  # the sort itself is flagged; its sum is smooth
def test_jet_mode_where_jet_has_no_rule_says_to_use_jvp_and_auto_falls_back():
    with pytest.raises(bea.BeaError, match="no Taylor rule for the primitive.*mode='jvp'"):
        bea.from_update(sorted_update, 1, loss=loss, mode="jet").terms(PARAMS)
    by_auto = bea.from_update(sorted_update, 4, loss=loss, mode="auto").terms(PARAMS)  # jets from order 4
    by_jvps = bea.from_update(sorted_update, 4, loss=loss, mode="jvp").terms(PARAMS)
    for a, b in zip(by_auto, by_jvps):
        np.testing.assert_allclose(ravel_pytree(a)[0], ravel_pytree(b)[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_a_curve_has_the_polynomials_derivatives_in_h_and_in_its_coefficients(dtype):
    """`curve` (value c_0 at h = 0, derivatives by a custom jvp) against the polynomial itself: Taylor coefficients of
    sin(curve(h)), and their derivatives in the coefficients by jacfwd, jacrev and under vmap."""
    from bea.engines.taylor._truncated import curve

    def polynomial(coefficients, h):
        return sum(c * h**k for k, c in enumerate(coefficients))

    cs = [jnp.asarray(c, dtype) for c in ([0.3, 0.5], [1.0, 2.0], [0.7, -1.0], [0.2, 0.1])]
    tolerance = 1e-14 if dtype == jnp.float64 else 1e-5
    ours = taylor_series(lambda h: jnp.sin(curve(cs)(h)), 3, mode="jvp")
    plain = taylor_series(lambda h: jnp.sin(polynomial(cs, h.astype(dtype))), 3, mode="jvp")
    for a, b in zip(ours, plain):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)

    def second(make):
        return lambda c1: taylor_series(lambda h: jnp.sin(make([cs[0], c1, cs[2]], h)), 2, mode="jvp")[2]

    with_curve, with_polynomial = second(lambda c, h: curve(c)(h)), second(lambda c, h: polynomial(c, h.astype(dtype)))
    for transform in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(transform(with_curve)(cs[1]), transform(with_polynomial)(cs[1]), rtol=tolerance,
                                   atol=tolerance)
    batch = jnp.stack([cs[1], cs[2]])
    np.testing.assert_allclose(jax.vmap(with_curve)(batch), jax.vmap(with_polynomial)(batch), rtol=tolerance)


def test_slow_manifold_states_enter_through_their_float_leaves_only():
    """A state with an integer counter and float moments (optax.adam): the terms are finite and f_0 is Adam's
    h -> 0 update direction on the slow manifold, -g / (|g| + eps) (m = g, v = g^2 at h = 0)."""
    eps = 1e-2
    step = optax_step(lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=eps), loss, count=10**6)
    found = contraction(step, PARAMS)
    assert any(not jnp.issubdtype(jnp.result_type(x), jnp.inexact)
               for x in jax.tree_util.tree_leaves(step.init(PARAMS, 0.0)))
    assert len(step.state_leaves(step.template(PARAMS, 0.0))) == 2 * len(jax.tree_util.tree_leaves(PARAMS))
    terms = modified_terms(step, 1, PARAMS, contraction=found)
    g = jax.grad(loss)(PARAMS)
    expected = jax.tree_util.tree_map(lambda x: -x / (jnp.abs(x) + eps), g)
    np.testing.assert_allclose(ravel_pytree(terms[0])[0], ravel_pytree(expected)[0], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("factory", CASES[:5])
def test_slow_state_series_is_settles_newton_tree_order_by_order(factory):
    """The passes' s_0..s_3 against `settle` (Newton on functions, 2^3 steps) expanded by nested jvps."""
    from bea.engines.taylor._slow_series import slow_state_series

    step = optax_step(factory, loss, count=50)
    found = contraction(step, PARAMS)
    ours = jax.jit(lambda p: slow_state_series(step, p, found, 3, mode="jvp"))(PARAMS)
    manifold = settle(step, PARAMS, found, 3)
    expected = taylor_series(lambda h: ravel_pytree(float_leaves(manifold(PARAMS, h)))[0], 3, mode="jvp")
    for k, (ours_k, reference) in enumerate(zip(ours, expected)):
        error = float(jnp.linalg.norm(ravel_pytree(ours_k)[0] - reference) / jnp.linalg.norm(reference))
        assert error < 1e-10, (k, error)
