"""Lowered JAX functions against SymPy values and dense autodiff references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import bea
from bea.rules import EGR, GD, MIDPOINT, SAM

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def test_concrete_field_matches_sympy_order_6():
    me = bea.modified_equation(GD(), 6, loss=TWO_PARAM, params=[a, b])
    field = me.to_jax()
    rng = np.random.default_rng(0)
    for _ in range(5):
        theta, h, xv, yv = rng.uniform(0.2, 1.5, 2), rng.uniform(0.001, 0.1), rng.uniform(0.5, 2), rng.uniform(0, 1)
        got = np.asarray(field(theta, h, x=xv, y=yv))
        point = {a: sp.Float(theta[0], 30), b: sp.Float(theta[1], 30), x: sp.Float(xv, 30), y: sp.Float(yv, 30)}
        exact = np.array(me.field().subs(point).subs(bea.h, sp.Float(h, 30)).evalf(30), dtype=float).ravel()
        np.testing.assert_allclose(got, exact, rtol=1e-12)


def test_concrete_compiles_once():
    me = bea.modified_equation(GD(), 6, loss=TWO_PARAM, params=[a, b])
    field = me.to_jax()
    field(jnp.array([1.0, 2.0]), 0.1, x=1.0, y=0.5)
    before = field._fn._cache_size()
    field(jnp.array([0.3, 0.7]), 0.05, x=2.0, y=0.1)
    assert field._fn._cache_size() == before


def test_terms_loss_and_vmap():
    me = bea.modified_equation(GD(), 2, loss=TWO_PARAM, params=[a, b], values={x: 1, y: sp.Rational(3, 5)})
    f1 = me.to_jax(term=1)
    theta = jnp.array([2.8, 3.5])
    exact = np.array(me.terms[1].subs({a: 2.8, b: 3.5}).evalf(), dtype=float).ravel()
    np.testing.assert_allclose(f1(theta), exact, rtol=1e-12)
    batch = jax.vmap(lambda t: me.to_jax()(t, 0.1))(jnp.stack([theta, theta + 1]))
    assert batch.shape == (2, 2)
    loss = me.modified_loss(1).to_jax()
    grad_loss = jax.grad(lambda t: loss(t, 0.1))(theta)
    np.testing.assert_allclose(-grad_loss, me.to_jax(order=1)(theta, 0.1), rtol=1e-12)


def test_concrete_bad_calls():
    me = bea.modified_equation(GD(), 1, loss=TWO_PARAM, params=[a, b])
    field = me.to_jax()
    with pytest.raises(bea.UnknownSymbolError, match="missing value"):
        field(jnp.ones(2), 0.1, x=1.0)
    with pytest.raises(bea.UnknownSymbolError, match="step size"):
        field(jnp.ones(2), x=1.0, y=1.0)
    with pytest.raises(TypeError, match="floating"):
        field(jnp.ones(2, dtype=jnp.int32), 0.1, x=1.0, y=1.0)


def _mlp(params, X, Y):
    hidden = jnp.tanh(X @ params[0]["w"] + params[0]["b"])
    out = hidden @ params[1]["w"] + params[1]["b"]
    return jnp.mean((out[:, 0] - Y) ** 2) / 2


def _init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": 0.1 * jnp.ones(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def _dense_field(cf, energy, flat, h, values=None):
    """The same field from dense derivative tensors (jax.hessian, jacfwd of it)."""
    tensors = {1: jax.grad(energy)(flat), 2: jax.hessian(energy)(flat)}
    for k in range(3, cf.order + 3):
        prev = tensors[k - 1]
        tensors[k] = jax.jacfwd(lambda z, k=k: _nth(energy, k - 1)(z))(flat) if prev is not None else None

    def G(tree):
        t = tensors[len(tree) + 1]
        for child in tree:
            t = jnp.tensordot(t, G(child), axes=([1], [0])) if t.ndim > 1 else t
        return t

    total = jnp.zeros_like(flat)
    for l, term in enumerate(cf.terms):
        for c, tree in term:
            named = {sp.Symbol(k): v for k, v in (values or {}).items()}
            total = total + h**l * float(sp.sympify(c).subs(named)) * G(tree)
    return total


def _nth(energy, k):
    fn = jax.grad(energy)
    for _ in range(k - 1):
        fn = jax.jacfwd(fn)
    return fn


@pytest.mark.parametrize("rule_, order, values", [(GD(), 3, {}), (MIDPOINT, 2, {}), (EGR(), 2, {"mu": 0.3}),
                                                 (SAM(rho=sp.Symbol("c") * bea.h), 2, {"c": 0.7})])
def test_coordinate_free_mlp_matches_dense(rule_, order, values):
    cf = bea.modified_equation(rule_, order)
    X = jnp.linspace(-1, 1, 16).reshape(8, 2)
    Y = jnp.sin(jnp.arange(8.0))
    params = _init(jax.random.PRNGKey(1), [2, 2, 1] if order > 2 else [2, 3, 1])  # dense rank-5 tensors are big
    field = cf.to_jax(loss=lambda p: _mlp(p, X, Y))
    got, _ = ravel_pytree(field(params, 0.2, **values))
    flat, unravel = ravel_pytree(params)
    want = _dense_field(cf, lambda z: _mlp(unravel(z), X, Y), flat, 0.2, values)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(
    shapes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    h=st.floats(0.01, 0.3),
    seed=st.integers(0, 1000),
)
def test_coordinate_free_random_polynomial_pytrees(shapes, h, seed):
    """A random quartic loss on a pytree of random shapes: lowered field = dense reference, and = the concrete engine."""
    rng = np.random.default_rng(seed)
    params = {f"w{i}": jnp.asarray(rng.normal(size=(n,))) for i, n in enumerate(shapes)}
    flat, unravel = ravel_pytree(params)
    dim = flat.shape[0]
    A = jnp.asarray(rng.normal(size=(dim, dim)))
    c = jnp.asarray(rng.normal(size=dim))

    def loss(p):
        z = ravel_pytree(p)[0]
        return jnp.sum((A @ z) ** 2) / 2 + jnp.sum(z**4) / 4 + c @ z

    cf = bea.modified_equation(GD(), 2)
    got, _ = ravel_pytree(cf.to_jax(loss=loss)(params, h))
    want = _dense_field(cf, lambda z: loss(unravel(z)), flat, h)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_coordinate_free_bad_input():
    cf = bea.modified_equation(EGR(), 1)
    field = cf.to_jax(loss=lambda p: jnp.sum(p["w"] ** 2))
    with pytest.raises(bea.UnknownSymbolError, match="mu"):
        field({"w": jnp.ones(3)}, 0.1)
    with pytest.raises(TypeError, match="integer"):
        field({"w": jnp.ones(3, dtype=jnp.int32)}, 0.1, mu=0.1)
    vector_loss = cf.to_jax(loss=lambda p: p["w"] ** 2)
    with pytest.raises(TypeError, match="scalar"):
        vector_loss({"w": jnp.ones(3)}, 0.1, mu=0.1)


def test_float32_is_refused():
    me = bea.modified_equation(GD(), 1, loss=TWO_PARAM, params=[a, b])
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(bea.lowering.Float64DisabledError, match="jax_enable_x64"):
            me.to_jax()
        with pytest.raises(bea.lowering.Float64DisabledError, match="jax_enable_x64"):
            bea.modified_equation(GD(), 1).to_jax(loss=lambda p: jnp.sum(p**2))
    finally:
        jax.config.update("jax_enable_x64", True)


Q = sp.symbols("q0:3")
BATCHES = [Q[0] ** 2 * Q[1] / 2 + Q[2] ** 2 + Q[0] * Q[2] / 3, (Q[1] - 1) ** 2 * Q[2] / 2 + Q[0] ** 4 / 4,
           Q[0] * Q[1] * Q[2] + (Q[1] + Q[2]) ** 2 / 2]


@pytest.mark.parametrize("rule_, players", [
    (bea.rules.SGDSteps(3), None),
    (bea.rules.SimultaneousGD(players=(2, 1), ratio=sp.Rational(1, 3)), (2, 1)),
    (bea.rules.AlternatingGD(players=(1, 2), ratio=sp.Symbol("r")), (1, 2)),
])
def test_coordinate_free_several_losses_match_the_concrete_engine(rule_, players):
    """Several JAX losses on pytrees (one pytree per player in games) = the concrete engine's lowered field."""
    losses = BATCHES[: rule_.n_losses]
    params = list(Q) if players is None else [list(Q[: players[0]]), list(Q[players[0]:])]
    concrete = bea.modified_equation(rule_, 2, losses=losses, params=params).to_jax()
    values = {"r": 0.7} if "r" in concrete.symbols else {}
    jax_losses = [sp.lambdify([Q], loss, modules="jax") for loss in losses]
    field = bea.modified_equation(rule_, 2).to_jax(loss=[
        (lambda p, f=f: f(jnp.concatenate([p["u"], p["v"]]))) if players is None
        else (lambda p, f=f: f(jnp.concatenate([p[0]["w"], p[1]]))) for f in jax_losses])
    theta = jnp.asarray([0.4, -0.3, 0.8])
    if players is None:
        got, _ = ravel_pytree(field({"u": theta[:2], "v": theta[2:]}, 0.15, **values))
    else:
        got, _ = ravel_pytree(field(({"w": theta[: players[0]]}, theta[players[0]:]), 0.15, **values))
    np.testing.assert_allclose(got, concrete(theta, 0.15, **values), rtol=1e-12)
    with pytest.raises(TypeError, match="loss"):
        bea.modified_equation(rule_, 1).to_jax(loss=jax_losses[0])
