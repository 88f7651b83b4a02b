"""`bea.from_optax` / `bea.from_update` as users call them: jit, vmap, chains, schedules, plain updates, the optimizer's
own iterates, and every bad input, each error checked for its class and for the fix its message names."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import bea
from bea.lowering._x64 import Float64DisabledError

jax.config.update("jax_enable_x64", True)

# A small tanh network on fixed data: 3 -> 2 -> 1, 10 parameters in three leaves.
_rng = np.random.default_rng(1)
X = jnp.asarray(_rng.normal(size=(8, 3)))
Y = jnp.asarray(_rng.normal(size=8))
PARAMS = {"w": jnp.asarray(_rng.normal(size=(3, 2)) / 2), "b": jnp.asarray([0.3, -0.2]), "v": jnp.asarray([0.8, -0.5])}


def loss(p):
    return jnp.mean((jnp.tanh(X @ p["w"] + p["b"]) @ p["v"] - Y) ** 2) / 2


def flat(tree):
    return ravel_pytree(tree)[0]


def assert_close(a, b, rtol=1e-12):
    a, b = flat(a), flat(b)
    assert float(jnp.linalg.norm(a - b)) <= rtol * float(jnp.linalg.norm(b)), (a, b)


def assert_terms_equal(field, reference, rtol=1e-12):
    for got, expected in zip(field.terms(PARAMS), reference.terms(PARAMS), strict=True):
        assert_close(got, expected, rtol)


def tree(fn, *trees):
    return jax.tree_util.tree_map(fn, *trees)


# -- 3. plumbing -----------------------------------------------------------------------------------------------------

def test_field_is_the_polynomial_of_its_terms_under_jit_and_vmap():
    field = bea.from_optax(lambda lr: optax.sgd(lr, momentum=0.8), 1, loss=loss)
    terms = field.terms(PARAMS)
    hs = jnp.asarray([0.0, 1e-3, 0.05])
    by_hand = [tree(lambda a, b, h=h: a + h * b, *terms) for h in hs]
    for h, expected in zip(hs, by_hand):
        assert_close(field(PARAMS, h), expected)
        assert_close(jax.jit(field)(PARAMS, h), expected)
    stacked = jax.vmap(field, in_axes=(None, 0))(PARAMS, hs)
    for i, expected in enumerate(by_hand):
        assert_close(tree(lambda x, i=i: x[i], stacked), expected)


def test_a_chain_with_weight_decay_is_gd_on_the_regularized_loss():
    """add_decayed_weights(wd) before sgd(lr) steps theta - lr (grad E + wd theta): GD on E + wd |theta|^2 / 2."""
    wd = 0.3
    chained = bea.from_optax(lambda lr: optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr)), 2, loss=loss)

    def regularized(p):
        return loss(p) + wd * sum(jnp.sum(x**2) for x in jax.tree_util.tree_leaves(p)) / 2

    assert_terms_equal(chained, bea.from_optax(optax.sgd, 2, loss=regularized))


def test_a_schedule_is_evaluated_at_the_held_count():
    """exponential_decay(lr, 10, 0.5) at step 20 is lr / 4: the field of sgd(lr / 4)."""
    scheduled = bea.from_optax(lambda lr: optax.sgd(optax.exponential_decay(lr, 10, 0.5)), 2, loss=loss, count=20)
    assert_terms_equal(scheduled, bea.from_optax(lambda lr: optax.sgd(lr / 4), 2, loss=loss))
    assert any("20" in line for line in scheduled.assumptions)


def test_from_update_matches_optax_without_and_with_state():
    def gd(params, grad_fn, h):
        return tree(lambda p, g: p - h * g, params, grad_fn(params))

    def heavy_ball(params, velocity, grad_fn, h):  # optax.sgd(momentum=0.7): v' = 0.7 v + g, theta' = theta - h v'
        velocity = tree(lambda v, g: 0.7 * v + g, velocity, grad_fn(params))
        return tree(lambda p, v: p - h * v, params, velocity), velocity

    plain = bea.from_update(gd, 1, loss=loss)
    assert plain.slow_manifold(PARAMS, 0.1) is None and plain.contraction(PARAMS) is None
    assert_terms_equal(plain, bea.from_optax(optax.sgd, 1, loss=loss))
    with_state = bea.from_update(heavy_ball, 1, loss=loss, init=lambda p: tree(jnp.zeros_like, p))
    assert_terms_equal(with_state, bea.from_optax(lambda lr: optax.sgd(lr, momentum=0.7), 1, loss=loss))
    rates = with_state.contraction(PARAMS).eigenvalues
    assert len(rates) == 1 and abs(rates[0] - 0.7) < 1e-12


def test_iterate_is_the_optimizers_own_loop_with_counters_held():
    """Adam with its counter held at 5 (bias corrections 1 - b^6 that change with the count: holding it matters)."""
    b1, b2, h, steps, count = 0.5, 0.6, 0.01, 6, 5
    field = bea.from_optax(lambda lr: optax.adam(lr, b1=b1, b2=b2, eps=1e-3), 0, loss=loss, count=count)
    start = field.slow_manifold(PARAMS, h)
    assert int(start[0].count) == count
    optimizer = optax.adam(h, b1=b1, b2=b2, eps=1e-3)

    def loop(hold: bool):
        params, state, path = PARAMS, start, [PARAMS]
        for _ in range(steps):
            updates, state = optimizer.update(jax.grad(loss)(params), state, params)
            params = optax.apply_updates(params, updates)
            if hold:
                state = (state[0]._replace(count=jnp.asarray(count, jnp.int32)),) + tuple(state[1:])
            path.append(params)
        return tree(lambda *xs: jnp.stack(xs), *path)

    iterates = field.iterate(PARAMS, h, steps)
    assert flat(iterates).shape == (ravel_pytree(PARAMS)[0].size * (steps + 1),)
    assert_close(iterates, loop(hold=True), rtol=1e-14)
    drift = flat(tree(lambda a, b: a - b, iterates, loop(hold=False)))
    assert float(jnp.max(jnp.abs(drift))) > 1e-8  # a loop whose counter runs is a different sequence


# -- 4. bad input ----------------------------------------------------------------------------------------------------

def raises(error, *fragments):
    """pytest.raises(error) whose message must contain every fragment (the fix it names)."""
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def test_factories_that_are_not_learning_rate_to_transformation():
    with raises(bea.InvalidRuleError, "learning rate as its one argument", "lambda lr: optax.adam(lr"):
        bea.from_optax(lambda: optax.sgd(0.1), 1, loss=loss)
    with raises(bea.InvalidRuleError, "returned float", "not an optax GradientTransformation", "init and update"):
        bea.from_optax(lambda lr: lr, 1, loss=loss)
    with raises(bea.InvalidRuleError, "learning_rate -> optax.GradientTransformation"):
        bea.from_optax(optax.sgd(0.1), 1, loss=loss)


@pytest.mark.parametrize("order", [-1, 2.5, True, 99])
def test_orders_outside_0_to_5(order):
    with raises(bea.InvalidOrderError, "integer in 0..5", repr(order)):
        bea.from_optax(optax.sgd, order, loss=loss)
    with raises(bea.InvalidOrderError, "integer in 0..5", "bea.from_update"):
        bea.from_update(lambda p, g, h: p, order, loss=loss)


def test_loss_mode_count_and_update_that_are_not_what_is_asked():
    with raises(bea.InvalidRuleError, "loss must be a JAX function loss(params) -> scalar"):
        bea.from_optax(optax.sgd, 1, loss="mse")
    with raises(bea.InvalidRuleError, "mode must be one of auto, jvp, jet", "'x'"):
        bea.from_optax(optax.sgd, 1, loss=loss, mode="x")
    with raises(bea.InvalidRuleError, "count must be a non-negative integer"):
        bea.from_optax(optax.sgd, 1, loss=loss, count=-1)
    with raises(bea.InvalidRuleError, "update must be a function"):
        bea.from_update(None, 1, loss=loss)
    with raises(bea.InvalidRuleError, "init must be a function init(params) -> state"):
        bea.from_update(lambda p, s, g, h: (p, s), 1, loss=loss, init=0)


def test_a_learning_rate_that_is_ignored_is_a_zeroth_order_term():
    """sgd(0.1) moves theta by -0.1 grad E at learning rate 0: the message gives that size and its leaf."""
    field = bea.from_optax(lambda lr: optax.sgd(0.1), 1, loss=loss)
    gradient = jax.grad(loss)(PARAMS)
    worst = max(gradient, key=lambda k: float(jnp.max(jnp.abs(gradient[k]))))
    size = 0.1 * float(jnp.max(jnp.abs(gradient[worst])))
    with raises(bea.InconsistentRuleError, "not theta + O(h)", f"{size:.3g}", f"['{worst}']", "zeroth-order term",
                "scaled by the learning rate"):
        field.terms(PARAMS)


def test_weight_decay_after_the_learning_rate_is_a_zeroth_order_term():
    """chain(sgd(lr), add_decayed_weights(0.1)) adds 0.1 theta unscaled: theta' = 1.1 theta - lr grad E, a zeroth-order
    term 0.1 theta whose largest entry the message names."""
    field = bea.from_optax(lambda lr: optax.chain(optax.sgd(lr), optax.add_decayed_weights(0.1)), 1, loss=loss)
    worst = max(PARAMS, key=lambda k: float(jnp.max(jnp.abs(PARAMS[k]))))
    size = 0.1 * float(jnp.max(jnp.abs(PARAMS[worst])))
    with raises(bea.InconsistentRuleError, f"{size:.3g}", f"['{worst}']", "zeroth-order term", "decoupled weight decay"):
        field.terms(PARAMS)


def test_states_that_do_not_settle():
    with raises(bea.NoSlowManifoldError, "does not settle", "state leaves", ".z['w']", "weight_sum", "from_update"):
        bea.from_optax(lambda lr: optax.contrib.schedule_free_sgd(lr), 1, loss=loss).terms(PARAMS)

    def accumulate(params, total, grad_fn, h):  # total' = total + g: contraction factor 1
        total = tree(lambda t, g: t + g, total, grad_fn(params))
        return tree(lambda p, t: p - h * t, params, total), total

    field = bea.from_update(accumulate, 1, loss=loss, init=lambda p: tree(jnp.zeros_like, p))
    with raises(bea.NoSlowManifoldError, "factor 1", "['w']", "['b']", "Accumulators"):
        field.terms(PARAMS)


def test_state_that_init_makes_from_h_or_params_is_not_held_as_a_constant():
    """A leaf the update passes through is held only if init makes it from neither h nor params: optax's
    inject_hyperparams keeps the learning rate h in the state, and an anchor at the initial point moves with
    it. Holding either at the template's values would give a silently wrong field; both are refused."""
    with raises(bea.NoSlowManifoldError, "hyperparams['learning_rate']", "inject_hyperparams"):
        bea.from_optax(lambda h: optax.inject_hyperparams(optax.sgd)(learning_rate=h, momentum=0.9), 1,
                       loss=loss).terms(PARAMS)

    def anchored(params, state, grad_fn, h):  # a pull back to the initial point, kept in the state
        velocity, anchor = state
        velocity = tree(lambda v, g: 0.5 * v + g, velocity, grad_fn(params))
        return tree(lambda p, v, a: p - h * (v + p - a), params, velocity, anchor), (velocity, anchor)

    field = bea.from_update(anchored, 1, loss=loss, init=lambda p: (tree(jnp.zeros_like, p), p))
    with raises(bea.NoSlowManifoldError, "factor 1", "[1]['w']", "anchored at the initial point"):
        field.terms(PARAMS)


def test_a_constant_kept_in_the_state_is_held_even_through_a_jitted_core():
    """A float constant that the update passes through, here inside a jitted function, is held and named; the
    field is that of the same update with the constant written in (an independent construction)."""
    @jax.jit
    def core(params, velocity, scale, grads, h):
        velocity = tree(lambda v, g: 0.6 * v + g, velocity, grads)
        return tree(lambda p, v: p - h * scale * v, params, velocity), velocity, scale

    def kept(params, state, grad_fn, h):
        new, velocity, scale = core(params, state[0], state[1], grad_fn(params), h)
        return new, (velocity, scale)

    def written_in(params, velocity, grad_fn, h):
        velocity = tree(lambda v, g: 0.6 * v + g, velocity, grad_fn(params))
        return tree(lambda p, v: p - h * 1.5 * v, params, velocity), velocity

    field = bea.from_update(kept, 2, loss=loss, init=lambda p: (tree(jnp.zeros_like, p), jnp.asarray(1.5)))
    assert_terms_equal(field, bea.from_update(written_in, 2, loss=loss, init=lambda p: tree(jnp.zeros_like, p)),
                       rtol=1e-12)
    assert any("held as constants: [1]" in line for line in field.assumptions)
    assert len(field.contraction(PARAMS).eigenvalues) == 1  # the velocity's 0.6 only


def test_an_update_that_changes_the_states_dtype_is_named():
    def widening(params, state, grad_fn, h):
        velocity = tree(lambda v, g: 0.5 * v + g, state[0], grad_fn(params))
        return tree(lambda p, v: p - h * v, params, velocity), (velocity, jnp.asarray(state[1], jnp.float64))

    field = bea.from_update(widening, 1, loss=loss,
                            init=lambda p: (tree(jnp.zeros_like, p), jnp.asarray(1.0, jnp.float32)))
    with raises(bea.InvalidRuleError, "another structure or dtype", "float32", "make init and the update agree"):
        field.terms(PARAMS)


def test_float32_parameters_need_allow_float32():
    single = tree(lambda x: x.astype(jnp.float32), PARAMS)
    with raises(bea.InvalidArrayError, "float32", "allow_float32=True"):
        bea.from_optax(optax.sgd, 1, loss=loss).terms(single)
    terms = bea.from_optax(optax.sgd, 1, loss=loss, allow_float32=True).terms(single)
    reference = bea.from_optax(optax.sgd, 1, loss=loss).terms(PARAMS)
    for got, expected in zip(terms, reference, strict=True):
        assert_close(got, expected, rtol=1e-5)


def test_jax_in_32_bit_mode_is_refused():
    field = bea.from_optax(optax.sgd, 1, loss=loss)
    jax.config.update("jax_enable_x64", False)
    try:
        with raises(Float64DisabledError, "jax_enable_x64"):
            field.terms(PARAMS)
    finally:
        jax.config.update("jax_enable_x64", True)
    assert len(field.terms(PARAMS)) == 2  # and it runs again once float64 is back


def test_lion_warns_of_its_sign_and_names_a_gradient_at_the_kink():
    quadratic = lambda p: jnp.sum(p["w"] ** 2) + 3.0 * jnp.sum((p["b"] - 1.0) ** 2)  # noqa: E731
    generic = {"w": jnp.asarray([0.5, 1.0, -2.0]), "b": jnp.asarray([0.5])}
    with pytest.warns(bea.NonSmoothStepWarning, match=r"(?s)(?=.*sign)(?=.*\['w'\])(?=.*\['b'\])") as record:
        bea.from_optax(lambda lr: optax.lion(lr), 1, loss=quadratic).terms(generic)
    assert not any("round-off" in str(w.message) for w in record)
    at_kink = {"w": jnp.asarray([0.0, 1.0, -2.0]), "b": jnp.asarray([0.5])}  # dE/dw_0 = 0
    with pytest.warns(bea.NonSmoothStepWarning, match=r"(?s)(?=.*sign)(?=.*at the kink)(?=.*round-off)"):
        bea.from_optax(lambda lr: optax.lion(lr), 1, loss=quadratic).terms(at_kink)


def test_a_smooth_network_with_adam_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bea.NonSmoothStepWarning)
        assert len(bea.from_optax(lambda lr: optax.adam(lr), 1, loss=loss).terms(PARAMS)) == 2
