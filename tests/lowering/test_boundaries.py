"""What every lowered callable and `bea.iterate` accept: shapes, dtypes, scalars (issue 18).

A field lowered for two parameters used to broadcast a one-entry theta and return a number
(`[-22.6, -22.6]`); the checks below make each wrong input a `bea.InvalidArrayError` naming the
expected shape and the parameters' order, also under jit and vmap (shapes are static there).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import bea
from bea.rules import GD, HeavyBall

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2
FIXED = TWO_PARAM.subs({x: 1, y: sp.Rational(3, 5)})


@pytest.fixture(scope="module")
def gd():
    return bea.modified_equation(GD(), 1, loss=TWO_PARAM, params=[a, b])


@pytest.fixture(scope="module")
def heavy_ball():
    return bea.modified_equation(HeavyBall(beta=sp.Rational(1, 2)), 1, loss=FIXED, params=[a, b])


def _lowered(gd, heavy_ball):
    """Every concrete lowering: field, one term, modified loss, slow-manifold state; with the keywords each needs."""
    data = {"x": 1.0, "y": 0.6}
    return [
        (gd.to_jax(), 0.01, data),
        (gd.to_jax(term=1), None, data),
        (gd.modified_loss(1).to_jax(), 0.01, data),
        (heavy_ball.slow_manifold_to_jax()[0], 0.01, {}),
    ]


@pytest.mark.parametrize("bad", [[2.8], 2.8, [1.0, 2.0, 3.0], [[2.8], [3.5]], [[2.8, 3.5]]])
def test_concrete_wrong_theta_shape_names_the_parameters(gd, heavy_ball, bad):
    """The issue's example: one entry (or a scalar, three, a column) for a two-parameter model."""
    for fn, h, values in _lowered(gd, heavy_ball):
        with pytest.raises(bea.InvalidArrayError, match=r"expected shape \(2,\) for parameters \(a, b\), got"):
            fn(jnp.asarray(bad), h, **values)


def test_concrete_dtypes(gd):
    field = gd.to_jax()
    with pytest.raises(bea.InvalidArrayError, match="floating"):
        field(jnp.array([1, 2]), 0.01, x=1.0, y=0.6)
    with pytest.raises(bea.InvalidArrayError, match="float32.*allow_float32=True"):
        field(jnp.array([1.0, 2.0], dtype=jnp.float32), 0.01, x=1.0, y=0.6)
    with pytest.raises(bea.InvalidArrayError, match="complex"):
        field(jnp.array([1.0, 2.0]), 0.01, x=1j, y=0.6)
    # Lowered with allow_float32, float32 is computed in float32 (and still checked for shape).
    field32 = gd.to_jax(allow_float32=True)
    out = field32(jnp.array([2.8, 3.5], dtype=jnp.float32), 0.01, x=1.0, y=0.6)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, field(jnp.array([2.8, 3.5]), 0.01, x=1.0, y=0.6), rtol=1e-5)
    with pytest.raises(bea.InvalidArrayError, match=r"expected shape \(2,\)"):
        field32(jnp.array([2.8], dtype=jnp.float32), 0.01, x=1.0, y=0.6)


def test_concrete_h_and_symbols_must_be_scalars(gd):
    field = gd.to_jax()
    with pytest.raises(bea.InvalidArrayError, match="h must be a scalar, got shape"):
        field(jnp.array([2.8, 3.5]), jnp.array([0.01, 0.02]), x=1.0, y=0.6)
    with pytest.raises(bea.InvalidArrayError, match="x must be a scalar.*vmap"):
        field(jnp.array([2.8, 3.5]), 0.01, x=jnp.ones(3), y=0.6)


def test_concrete_checks_under_jit_and_vmap(gd):
    """Shapes are static: the check fires at trace time under jit, and vmap sees one example at a time."""
    field = gd.to_jax()
    theta = jnp.array([2.8, 3.5])
    jitted = jax.jit(lambda t: field(t, 0.01, x=1.0, y=0.6))
    np.testing.assert_allclose(jitted(theta), field(theta, 0.01, x=1.0, y=0.6), rtol=1e-14)
    with pytest.raises(bea.InvalidArrayError, match=r"got \(1,\)"):
        jitted(jnp.array([2.8]))
    batch = jnp.stack([theta, theta + 0.1, theta - 0.1])
    xs = jnp.array([1.0, 0.9, 1.1])
    out = jax.vmap(lambda t, xv: field(t, 0.01, x=xv, y=0.6))(batch, xs)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[1], field(batch[1], 0.01, x=0.9, y=0.6), rtol=1e-14)
    with pytest.raises(bea.InvalidArrayError, match=r"got \(3,\)"):
        jax.vmap(lambda t: field(t, 0.01, x=1.0, y=0.6))(jnp.ones((4, 3)))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3))
def test_concrete_only_shape_two_is_accepted(gd, shape):
    """Any shape other than (2,) is refused; (2,) gives the field."""
    field = gd.to_jax()
    theta = jnp.full(tuple(shape), 0.7)
    if tuple(shape) == (2,):
        assert field(theta, 0.01, x=1.0, y=0.6).shape == (2,)
    else:
        with pytest.raises(bea.InvalidArrayError, match=r"expected shape \(2,\) for parameters \(a, b\)"):
            field(theta, 0.01, x=1.0, y=0.6)


def test_coordinate_free_dtypes_and_scalars():
    cf = bea.modified_equation(bea.rules.EGR(), 1)
    field = cf.to_jax(loss=lambda p: jnp.sum(p["w"] ** 4) / 4)
    params = {"w": jnp.array([0.5, -0.3, 0.2])}
    with pytest.raises(bea.InvalidArrayError, match="float32"):
        field({"w": params["w"].astype(jnp.float32)}, 0.1, mu=0.1)
    with pytest.raises(bea.InvalidArrayError, match="h must be a scalar"):
        field(params, jnp.ones(2), mu=0.1)
    with pytest.raises(bea.InvalidArrayError, match="mu must be a scalar"):
        field(params, 0.1, mu=jnp.ones(3))
    # vmap over a batch of pytrees and over mu still works, one example at a time
    batch = {"w": jnp.stack([params["w"], 2 * params["w"]])}
    out = jax.vmap(lambda p, m: field(p, 0.1, mu=m))(batch, jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(out["w"][1], field({"w": 2 * params["w"]}, 0.1, mu=0.2)["w"], rtol=1e-14)


def test_games_need_one_pytree_per_player():
    cf = bea.modified_equation(bea.rules.SimultaneousGD(), 1)
    field = cf.to_jax(loss=[lambda p: p[0] * p[1], lambda p: -p[0] * p[1]])
    out = field((jnp.array(0.3), jnp.array(0.4)), 0.1)
    assert len(out) == 2
    with pytest.raises(bea.InvalidArrayError, match="2 players"):
        field(jnp.array([0.3, 0.4]), 0.1)


def test_initial_point_loss_needs_params0_shaped_like_params():
    ip = bea.modified_equation(bea.rules.SGDSteps(2), 1).initial_point_loss()
    loss = ip.to_jax(loss=[lambda p: jnp.sum(p**2 * p[0]), lambda p: jnp.sum(p**3)])
    theta = jnp.array([0.3, -0.2])
    assert jnp.shape(loss(theta, theta, 0.1)) == ()
    with pytest.raises(bea.InvalidArrayError, match="params0"):
        loss(theta, jnp.array([0.3, -0.2, 0.1]), 0.1)


# -- bea.iterate ---------------------------------------------------------------------------------


def test_iterate_refuses_float32_instead_of_upcasting():
    """float32 input used to be iterated in float64 without a word."""
    theta32 = jnp.array([2.8, 3.5], dtype=jnp.float32)
    with pytest.raises(bea.InvalidArrayError, match="float32.*allow_float32=True"):
        bea.iterate(GD(), FIXED, theta32, 0.01, 3, params=[a, b])
    path = bea.iterate(GD(), FIXED, theta32, 0.01, 3, params=[a, b], allow_float32=True)
    assert path.dtype == jnp.float32 and path.shape == (4, 2)
    reference = bea.iterate(GD(), FIXED, [2.8, 3.5], 0.01, 3, params=[a, b])
    assert reference.dtype == jnp.float64
    np.testing.assert_allclose(path, reference, rtol=1e-5)
    memory = bea.iterate(HeavyBall(beta=0.5), FIXED, theta32, 0.01, 3, params=[a, b], allow_float32=True)
    assert memory.dtype == jnp.float32


def test_iterate_integers_are_exact_and_become_float64():
    path = bea.iterate(GD(), FIXED, [2, 3], 0.01, 2, params=[a, b])
    assert path.dtype == jnp.float64
    np.testing.assert_allclose(path, bea.iterate(GD(), FIXED, [2.0, 3.0], 0.01, 2, params=[a, b]), rtol=0)


@pytest.mark.parametrize("theta0, match", [
    ([2.8], r"expected shape \(2,\) for parameters \(a, b\), got theta0 of shape \(1,\)"),
    ([2.8, 3.5, 1.0], r"expected shape \(2,\) for parameters \(a, b\)"),
    (2.8, r"expected shape \(2,\)"),
    ([1 + 2j, 1.0], "floating"),
])
def test_iterate_theta0_shape_and_dtype(theta0, match):
    with pytest.raises(bea.InvalidArrayError, match=match):
        bea.iterate(GD(), FIXED, theta0, 0.01, 3, params=[a, b])


def test_iterate_jax_loss_needs_a_vector():
    with pytest.raises(bea.InvalidArrayError, match="vector"):
        bea.iterate(GD(), lambda t: jnp.sum(t**2), jnp.ones((2, 2)), 0.01, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"h": float("nan")}, "h must be a finite real number"),
    ({"h": "0.1"}, "h must be a finite real number"),
    ({"steps": -1}, "steps must be a non-negative integer"),
    ({"steps": 2.5}, "steps must be a non-negative integer"),
    ({"state0": [jnp.zeros(2)]}, "keeps no state"),
])
def test_iterate_bad_arguments(kwargs, match):
    args = {"h": 0.01, "steps": 3, **kwargs}
    state0 = args.pop("state0", None)
    with pytest.raises(bea.InvalidArrayError, match=match):
        bea.iterate(GD(), FIXED, [2.8, 3.5], args["h"], args["steps"], params=[a, b], state0=state0)


def test_iterate_state0_must_match_the_states():
    rule = HeavyBall(beta=0.5)
    with pytest.raises(bea.InvalidArrayError, match="1 state vector"):
        bea.iterate(rule, FIXED, [2.8, 3.5], 0.01, 3, params=[a, b], state0=[jnp.zeros(2), jnp.zeros(2)])
    with pytest.raises(bea.InvalidArrayError, match=r"state0\[0\] has shape \(3,\)"):
        bea.iterate(rule, FIXED, [2.8, 3.5], 0.01, 3, params=[a, b], state0=[jnp.zeros(3)])
    path = bea.iterate(rule, FIXED, [2.8, 3.5], 0.01, 3, params=[a, b], state0=[jnp.zeros(2)])
    np.testing.assert_allclose(path, bea.iterate(rule, FIXED, [2.8, 3.5], 0.01, 3, params=[a, b]), rtol=0)


def test_iterate_games_check_the_player_sizes():
    phi, theta = sp.symbols("phi theta")
    rule = bea.rules.SimultaneousGD(players=(1, 1))
    with pytest.raises(bea.InvalidArrayError, match="players of sizes"):
        bea.iterate(rule, [lambda t: t[0] * t[1], lambda t: -t[0] * t[1]], jnp.ones(3), 0.01, 2)
    assert bea.iterate(rule, [phi * theta, -phi * theta], [0.3, 0.4], 0.01, 2, params=[phi, theta]).shape == (3, 2)
