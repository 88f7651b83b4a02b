"""Kinks on the path of optimizer steps: the operations, the leaves they feed and the distances, all written by hand."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
import pytest

from bea._errors import BeaError, InvalidHyperparameterError, InvalidRuleError
from bea.engines.taylor._kinks import Kink, find_kinks

jax.config.update("jax_enable_x64", True)


def optax_step(optimizer, loss):
    """One step of `optimizer` on `loss`: the new parameters, as the numeric engine sees them."""

    def step(params, state):
        updates, _ = optimizer.update(jax.grad(loss)(params), state, params)
        return optax.apply_updates(params, updates)

    return step


def by_operation(kinks) -> dict[str, Kink]:
    found = {}
    for kink in kinks:
        assert kink.operation not in found, kinks
        found[kink.operation] = kink
    return found


def quadratic(params):
    return jnp.sum(params["w"] ** 2) + 3.0 * jnp.sum(params["b"] ** 2)


def test_lion_sign_at_a_zero_gradient_component():
    lion = optax.lion(0.1)
    params = {"w": jnp.array([0.0, 1.0, -2.0]), "b": jnp.array([0.5])}  # dL/dw_0 = 0 and the momentum is 0
    kinks = find_kinks(optax_step(lion, quadratic), params, lion.init(params))
    # one sign per leaf (the int32 step counter's comparison is not reported), each feeding only its own leaf
    assert sorted((k.operation, k.parameters) for k in kinks) == [("sign", ("['b']",)), ("sign", ("['w']",))]
    w_sign = next(k for k in kinks if k.parameters == ("['w']",))
    assert (w_sign.near, w_sign.distance) == (1, 0.0)
    assert "scale_by_lion" in w_sign.location and "transform.py" in w_sign.location
    assert "sign at" in w_sign.describe() and "['w']: 1 component at the kink" in w_sign.describe()
    generic = {"w": jnp.array([0.5, 1.0, -2.0]), "b": jnp.array([0.5])}
    kinks = find_kinks(optax_step(lion, quadratic), generic, lion.init(generic))
    w_sign = next(k for k in kinks if k.parameters == ("['w']",))
    assert w_sign.near == 0 and w_sign.distance == pytest.approx(0.25)  # |0.1 * 2 * 0.5| / |0.1 * 2 * -2|


def relu_mlp(params, x=jnp.array([[1.0, 2.0]])):
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return jnp.sum((hidden @ params["w2"]) ** 2)


MLP = {"w1": jnp.array([[1.0, -1.0], [-0.5, 1.0]]), "b1": jnp.zeros(2), "w2": jnp.array([[1.0], [2.0]])}


def test_relu_inside_its_custom_jvp_and_its_derivative():
    kinks = by_operation(find_kinks(optax_step(optax.sgd(0.1), relu_mlp), MLP, optax.sgd(0.1).init(MLP)))
    assert set(kinks) == {"max", "gt"}
    # pre-activations [1 - 1, -1 + 2] = [0, 1]: the first sits on relu's kink
    assert (kinks["max"].near, kinks["max"].distance) == (1, 0.0)
    assert kinks["max"].parameters == ("['b1']", "['w1']", "['w2']")  # the hidden layer feeds every gradient
    assert "test_taylor_kinks.py" in kinks["max"].location and "relu_mlp" in kinks["max"].location
    # relu' = [pre > 0] enters dL/dw1 and dL/db1 by the chain rule, not dL/dw2 = hidden^T dL/dout
    assert kinks["gt"].parameters == ("['b1']", "['w1']")
    moved = dict(MLP, b1=jnp.array([0.5, 1.0]))  # pre-activations [0.5, 2]: relative distance 0.5 / 2
    kinks = by_operation(find_kinks(optax_step(optax.sgd(0.1), relu_mlp), moved, optax.sgd(0.1).init(moved)))
    assert kinks["max"].near == 0 and kinks["max"].distance == pytest.approx(0.25)


def test_tanh_mlp_and_smooth_optimizers_have_none():
    def tanh_mlp(params):
        return jnp.sum((jnp.tanh(jnp.array([[1.0, 2.0]]) @ params["w1"] + params["b1"]) @ params["w2"]) ** 2)

    for optimizer in (optax.sgd(0.1, momentum=0.9, nesterov=True), optax.adam(0.1), optax.rmsprop(0.1)):
        assert find_kinks(optax_step(optimizer, tanh_mlp), MLP, optimizer.init(MLP)) == ()
    # their max only shifts the exponent, behind stop_gradient: no kink reaches the output
    assert find_kinks(lambda x: jax.nn.log_softmax(x) + jax.nn.softmax(x), jnp.ones(3)) == ()
    (kink,) = find_kinks(jax.nn.logsumexp, jnp.ones(3))  # log|sum exp|: an abs, far from its kink
    assert (kink.operation, kink.parameters, kink.near, kink.distance) == ("abs", ("",), 0, 1.0)
    assert "feeding the output:" in kink.describe()


def test_where_comparison():
    def leaky(params):
        return {"y": jnp.where(params["x"] > 0, params["x"], 0.1 * params["x"])}

    (kink,) = find_kinks(leaky, {"x": jnp.array([-2.0, 0.0, 1.0])})
    assert (kink.operation, kink.parameters, kink.near, kink.distance) == ("gt", ("['y']",), 1, 0.0)
    (kink,) = find_kinks(leaky, {"x": jnp.array([-2.0, 0.5, 1.0])})
    assert kink.near == 0 and kink.distance == pytest.approx(0.25)


def test_clip_by_global_norm():
    clipped = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))

    def half_square(params):
        return 0.5 * jnp.sum(params["w"] ** 2)  # gradient w, global norm |w|

    def clip_kink(w):
        params = {"w": jnp.asarray(w)}
        (kink,) = find_kinks(optax_step(clipped, half_square), params, clipped.init(params))
        assert "clip_by_global_norm" in kink.location and kink.parameters == ("['w']",)
        return kink

    far = clip_kink([3.0, 4.0])
    assert far.near == 0 and far.distance == pytest.approx(0.8)  # |5 - 1| / 5
    assert clip_kink([0.6, 0.8]).near == 1  # |w| = 1 to round-off


def test_equality_tests():
    # max's derivative splits ties with eq(v, max(0, v)), reduce_max's with eq(v, max v): the max is the kink
    kinks = find_kinks(jax.grad(lambda v: jnp.sum(jnp.maximum(0.0, v) ** 2 + jnp.max(v) ** 2)), jnp.array([1.0, 2.0, -1.0]))
    assert sorted((k.operation, k.distance) for k in kinks) == [("max", 0.5), ("reduce_max", 0.5)]
    assert find_kinks(lambda x: jnp.where(jnp.isnan(x), 0.0, x), jnp.ones(2)) == ()  # isnan is ne(x, x)
    assert find_kinks(lambda x: jnp.nan_to_num(x) + jnp.max(x[:1]), jnp.ones(2)) == ()  # x == inf; a max of one
    (kink,) = find_kinks(lambda x: jnp.where(x == 0.0, 1.0, x), jnp.array([0.0, 4.0]))  # a user's test is one
    assert (kink.operation, kink.near) == ("eq", 1)


def test_constants_and_integers_are_not_kinks():
    assert find_kinks(lambda x: jnp.maximum(1.0, 2.0) * x, jnp.ones(2)) == ()
    assert find_kinks(lambda x, n: x * jnp.maximum(n, 3), jnp.ones(2), jnp.array(5)) == ()
    assert find_kinks(lambda x: x * jnp.floor(jnp.float64(2.5)), jnp.ones(2)) == ()


def test_parameters_follow_the_data_flow():
    def fn(params):
        return {"a": 2.0 * params["a"], "b": jnp.abs(params["a"]) + params["b"], "c": jnp.sign(params["b"])}

    kinks = by_operation(find_kinks(fn, {"a": jnp.array([1.0, -4.0]), "b": jnp.array([0.0])}))
    assert kinks["abs"].parameters == ("['b']",) and kinks["abs"].distance == pytest.approx(0.25)
    assert kinks["sign"].parameters == ("['c']",) and kinks["sign"].near == 1
    (wide,) = find_kinks(lambda x: [jnp.abs(x)] * 6, jnp.ones(2))
    assert wide.parameters == ("[0]", "[1]", "[2]", "[3]", "[4]", "[5]")
    assert "feeding [0], [1], [2], [3] and 2 more:" in wide.describe()


def test_library_primitives_distances():
    def fn(x):
        return {"sorted": jnp.sort(x), "argmax": jnp.argmax(x) * 1.0, "floor": jnp.floor(x), "round": jnp.round(x),
                "clip": jax.lax.clamp(0.0, x, 1.5)}

    kinks = by_operation(find_kinks(fn, jnp.array([1.0, 2.0, 0.5])))
    assert kinks["sort"].distance == pytest.approx(0.25)  # neighbours 0.5, 1: gap 0.5 over max 2
    assert kinks["argmax"].distance == pytest.approx(0.5)  # top two 2, 1 over max 2
    assert (kinks["floor"].near, kinks["floor"].distance) == (2, 0.0)
    assert (kinks["round"].near, kinks["round"].distance) == (1, 0.0)  # 0.5 is a half-integer
    assert kinks["clamp"].distance == pytest.approx(0.25) and kinks["clamp"].parameters == ("['clip']",)


def test_inside_custom_vjp_loops_and_branches():
    @jax.custom_vjp
    def magnitude(x):
        return jnp.abs(x)

    magnitude.defvjp(lambda x: (magnitude(x), x), lambda x, g: (g * jnp.sign(x),))

    def fn(x):
        looped = jax.lax.fori_loop(0, 3, lambda i, c: jnp.maximum(c, 0.5) * 1.1, x)  # a scan of length 3
        doubled = jax.lax.while_loop(lambda c: c[0] < 3.0, lambda c: 2.0 * c, x)
        branch = jax.lax.cond(x[0] > 0, jnp.sign, jnp.floor, x)
        return {"loop": looped, "while": doubled, "cond": branch, "vjp": magnitude(x)}

    kinks = find_kinks(fn, jnp.array([1.0, 2.0, 0.5]))
    found = {(k.operation, k.parameters): k for k in kinks}
    assert found[("max", ("['loop']",))].near == 1  # first iteration: max(0.5, 0.5)
    assert math.isinf(found[("lt", ("['while']",))].distance)  # inside a while loop: found, not evaluated
    assert found[("sign", ("['cond']",))].distance == pytest.approx(0.25)  # the branch taken
    assert math.isinf(found[("floor", ("['cond']",))].distance)  # the branch not taken
    assert found[("gt", ("['cond']",))].distance == pytest.approx(1.0)
    assert found[("abs", ("['vjp']",))].distance == pytest.approx(0.25)


def test_bad_input():
    with pytest.raises(InvalidRuleError, match="needs a function"):
        find_kinks("not a function", jnp.ones(2))
    with pytest.raises(InvalidHyperparameterError, match="tolerance"):
        find_kinks(jnp.abs, jnp.ones(2), tolerance=-1.0)
    assert issubclass(InvalidRuleError, BeaError)
