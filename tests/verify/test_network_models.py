"""The network models of the numeric engine (MLP, CNN, transformer in Equinox): sizes, dtypes, losses
against hand-written NumPy forward passes, gradients against finite differences, trainability, and
smoothness of the gradient's jaxpr."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend import core as jex
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_digits

from bea.verify import JAX_MODELS, MODELS, STOCHASTIC_MODELS, VerificationError
from bea.verify._network_models import (
    N_DIGITS,
    N_SEQUENCES,
    NETWORK_MODELS,
    SEQUENCE_LENGTH,
    VOCABULARY,
    NetworkModel,
    network_model,
)

NAMES = ("mlp-digits", "cnn-digits", "transformer-sequence")


@pytest.fixture(scope="module")
def models():
    return {name: network_model(name) for name in NAMES}


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def _cross_entropy(logits, labels):
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return -np.mean(log_p[np.arange(len(labels)), labels])


def _digits():
    digits = load_digits()
    return digits.images[:N_DIGITS] / 16.0, digits.target[:N_DIGITS]


# -- names, sizes, dtypes -----------------------------------------------------------------------------

def test_names_and_no_clash_with_other_models():
    assert set(NETWORK_MODELS) == set(NAMES)
    assert not set(NETWORK_MODELS) & (set(MODELS) | set(JAX_MODELS) | set(STOCHASTIC_MODELS))


def test_parameter_counts_from_the_architectures(models):
    # counted from the layer shapes by hand (weights + biases), not from the pytree
    mlp = 64 * 32 + 32 + 32 * 10 + 10
    cnn = (1 * 16 * 9 + 16) + (16 * 64 * 9 + 64) + (64 * 4 * 4 * 96 + 96) + (96 * 10 + 10)
    d = 64
    block = 2 * 2 * d + 4 * (d * d + d) + (d * 256 + 256) + (256 * d + d)
    transformer = VOCABULARY * d + SEQUENCE_LENGTH * d + 2 * block + 2 * d + (d * VOCABULARY + VOCABULARY)
    assert {name: m.n_parameters for name, m in models.items()} == {
        "mlp-digits": mlp, "cnn-digits": cnn, "transformer-sequence": transformer}
    assert cnn >= 100_000 and transformer >= 100_000
    for m in models.values():
        assert ravel_pytree(m.params0)[0].size == m.n_parameters


@pytest.mark.parametrize("name", NAMES)
def test_only_float64_array_leaves_and_deterministic(models, name):
    leaves = jax.tree_util.tree_leaves(models[name].params0)
    assert leaves and all(isinstance(leaf, jax.Array) and leaf.dtype == jnp.float64 for leaf in leaves)
    again = network_model(name)
    assert all(np.array_equal(a, b) for a, b in zip(leaves, jax.tree_util.tree_leaves(again.params0), strict=True))
    assert float(again.loss(again.params0)) == float(models[name].loss(models[name].params0))


# -- losses against NumPy forward passes written from the parameter arrays -----------------------------

def test_mlp_loss_is_the_hand_written_one(models):
    m = models["mlp-digits"]
    layers = _np(m.params0).layers
    images, labels = _digits()
    hidden = np.tanh(images.reshape(N_DIGITS, 64) @ layers[0].weight.T + layers[0].bias)
    expected = _cross_entropy(hidden @ layers[1].weight.T + layers[1].bias, labels)
    assert float(m.loss(m.params0)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(np.log(10), rel=0.2)  # an untrained classifier


def _conv_same_3x3(x, weight, bias, stride):
    """Cross-correlation with a 3x3 kernel, zero padding 1: x (C, H, W) -> (O, H', W')."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    size = (x.shape[1] - 1) // stride + 1
    out = np.zeros((weight.shape[0], size, size))
    for i in range(3):
        for j in range(3):
            patch = padded[:, i:i + stride * size:stride, j:j + stride * size:stride]
            out += np.einsum("oc,chw->ohw", weight[:, :, i, j], patch)
    return out + bias


def test_cnn_loss_is_the_hand_written_one(models):
    m = models["cnn-digits"]
    p = _np(m.params0)
    images, labels = _digits()
    logits = []
    for image in images:
        z = np.tanh(_conv_same_3x3(image[None], p["conv1"].weight, p["conv1"].bias, 1))
        z = np.tanh(_conv_same_3x3(z, p["conv2"].weight, p["conv2"].bias, 2))
        assert z.shape == (64, 4, 4)
        z = np.tanh(p["hidden"].weight @ z.reshape(-1) + p["hidden"].bias)
        logits.append(p["out"].weight @ z + p["out"].bias)
    assert float(m.loss(m.params0)) == pytest.approx(_cross_entropy(np.array(logits), labels), rel=1e-12)


def _layer_norm(p, x):
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + 1e-5) * p["weight"] + p["bias"]


def _attention(a, x, heads):
    """Multi-head self-attention (Vaswani et al. 2017, eq. 1): heads are contiguous slices of the projections."""
    q, k, v = (x @ proj.weight.T + proj.bias for proj in (a.query_proj, a.key_proj, a.value_proj))
    size = q.shape[1] // heads
    outs = []
    for h in range(heads):
        s = slice(h * size, (h + 1) * size)
        logits = q[:, s] @ k[:, s].T / np.sqrt(size)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        outs.append(weights / weights.sum(axis=1, keepdims=True) @ v[:, s])
    return np.concatenate(outs, axis=1) @ a.output_proj.weight.T + a.output_proj.bias


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_transformer_loss_is_the_hand_written_one_on_the_reversal_task(models):
    m = models["transformer-sequence"]
    p = _np(m.params0)
    tokens = np.random.default_rng(17).integers(0, VOCABULARY, size=(N_SEQUENCES, SEQUENCE_LENGTH))
    logits = []
    for sequence in tokens:
        z = p["embed"].weight.T[sequence] + p["position"]  # the one-hot product is a table lookup
        for b in p["blocks"]:
            z = z + _attention(b["attention"], _layer_norm(b["norm1"], z), heads=4)
            y = _gelu_tanh(_layer_norm(b["norm2"], z) @ b["mlp_in"].weight.T + b["mlp_in"].bias)
            z = z + y @ b["mlp_out"].weight.T + b["mlp_out"].bias
        logits.append(_layer_norm(p["final_norm"], z) @ p["head"].weight.T + p["head"].bias)
    expected = _cross_entropy(np.concatenate(logits), tokens[:, ::-1].reshape(-1))
    assert float(m.loss(m.params0)) == pytest.approx(expected, rel=1e-10)


# -- gradients, training ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_a_finite_difference(models, name):
    m = models[name]
    flat, unravel = ravel_pytree(m.params0)
    direction = np.random.default_rng(3).normal(size=flat.size)
    direction /= np.linalg.norm(direction)

    def along(t):
        return float(m.loss(unravel(flat + t * direction)))

    eps = 1e-3  # fourth-order central difference: truncation ~ eps^4, round-off ~ 1e-16 / eps
    fd = (8 * (along(eps) - along(-eps)) - (along(2 * eps) - along(-2 * eps))) / (12 * eps)
    gradient = ravel_pytree(jax.grad(m.loss)(m.params0))[0]
    assert np.all(np.isfinite(gradient))
    assert float(gradient @ direction) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_twenty_adam_steps_decrease_the_loss(models, name):
    m = models[name]
    optimizer = optax.adam(1e-3)

    @jax.jit
    def step(params, state):
        updates, state = optimizer.update(jax.grad(m.loss)(params), state, params)
        return optax.apply_updates(params, updates), state

    params, state = m.params0, optimizer.init(m.params0)
    for _ in range(20):
        params, state = step(params, state)
    before, after = float(m.loss(m.params0)), float(m.loss(params))
    assert np.isfinite(after) and after < 0.95 * before, (before, after)


# -- smoothness: no kink on the gradient's path --------------------------------------------------------

#: Primitives with a kink or a jump (or that pick a branch): the engine differentiates through the gradient.
NONSMOOTH = {"max", "min", "reduce_max", "reduce_min", "argmax", "argmin", "sign", "abs", "floor", "ceil", "round",
             "select_n", "clamp"}


def _live_nonsmooth(jaxpr, live_out):
    """Non-smooth primitives whose outputs reach `live_out` (outputs of `jaxpr` by position) other than through
    stop_gradient. A max that only shifts softmax's logits under stop_gradient is dropped: the value does not
    depend on it, so no derivative does. Dead code (outputs nobody reads) is dropped as well."""
    live = {v for v, keep in zip(jaxpr.outvars, live_out, strict=True) if keep and isinstance(v, jex.Var)}
    found = []
    for eqn in reversed(jaxpr.eqns):
        out_live = [v in live for v in eqn.outvars]
        if not any(out_live) or eqn.primitive.name == "stop_gradient":
            continue
        if eqn.primitive.name in NONSMOOTH:
            found.append(eqn.primitive.name)
        in_live = [True] * len(eqn.invars)
        for sub in jex.jaxprs_in_params(eqn.params):
            positional = eqn.primitive.name in {"pjit", "jit", "closed_call"} and len(sub.outvars) == len(eqn.outvars)
            found += _live_nonsmooth(sub, out_live if positional else [True] * len(sub.outvars))
        live |= {v for v, keep in zip(eqn.invars, in_live, strict=True) if keep and isinstance(v, jex.Var)}
    return found


def _kinks(fn, *args):
    closed = jax.make_jaxpr(fn)(*args)
    return _live_nonsmooth(closed.jaxpr, [True] * len(closed.jaxpr.outvars))


def _all_primitives(jaxpr):
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jex.jaxprs_in_params(eqn.params):
            names |= _all_primitives(sub)
    return names


def test_the_kink_finder_finds_kinks_and_passes_stop_gradient_shifts():
    x = jnp.array([0.3, -1.0, 2.0])
    assert _kinks(jax.grad(lambda v: jnp.sum(jnp.abs(v))), x)  # a sign, or (this JAX) a select on v >= 0
    assert "max" in _kinks(jax.grad(lambda v: jnp.sum(jnp.maximum(v, 0.0) ** 2)), x)
    assert _kinks(jax.grad(lambda v: jnp.sum(jax.nn.relu(v))), x)  # relu's derivative is a select
    # log_softmax's max (and softmax's) shifts the logits under stop_gradient: present, but not a kink
    grad = jax.grad(lambda v: jax.nn.log_softmax(v)[0] + jax.nn.softmax(v)[1])
    assert {"max", "reduce_max"} <= _all_primitives(jax.make_jaxpr(grad)(x).jaxpr)
    assert _kinks(grad, x) == []
    # eqx.nn.LayerNorm clamps the variance with a max: why the transformer writes its layer norm out
    import equinox as eqx

    norm = eqx.nn.LayerNorm(3)
    assert "max" in _kinks(jax.grad(lambda v: jnp.sum(norm(v) * jnp.arange(3.0))), x)


@pytest.mark.parametrize("name", NAMES)
def test_the_gradient_has_no_kink(models, name):
    m = models[name]
    assert _kinks(jax.grad(m.loss), m.params0) == []
    # and the Hessian-vector product (what a first Lie derivative costs) has none either
    hvp = jax.jvp(jax.grad(m.loss), (m.params0,), (m.params0,))
    assert np.isfinite(float(ravel_pytree(hvp[1])[0] @ ravel_pytree(hvp[1])[0]))
    assert _kinks(lambda p: jax.jvp(jax.grad(m.loss), (p,), (p,))[1], m.params0) == []


# -- bad input ----------------------------------------------------------------------------------------

def test_unknown_name_lists_the_names():
    with pytest.raises(VerificationError, match="mlp-digits, cnn-digits, transformer-sequence"):
        network_model("resnet")


def test_bad_models_are_refused_with_what_to_do():
    def loss(p):
        return jnp.sum(p["w"] ** 2)

    ok = NetworkModel("ok", loss, {"w": jnp.ones(3)})
    assert ok.n_parameters == 3
    with pytest.raises(VerificationError, match="loss must be a JAX function"):
        NetworkModel("x", "not a function", {"w": jnp.ones(3)})
    with pytest.raises(VerificationError, match="no arrays"):
        NetworkModel("x", loss, {})
    with pytest.raises(VerificationError, match=r"\['n'\] has dtype int.*eqx.partition"):
        NetworkModel("x", lambda p: loss(p) + p["n"], {"w": jnp.ones(3), "n": jnp.array(2)})
    with pytest.raises(VerificationError, match=r"float32.*jnp.float64"):
        NetworkModel("x", loss, {"w": jnp.ones(3, dtype=jnp.float32)})
    with pytest.raises(VerificationError, match="not an array"):
        NetworkModel("x", lambda p: loss(p) * p["s"], {"w": jnp.ones(3), "s": 2.0})
    with pytest.raises(VerificationError, match="one real number"):
        NetworkModel("x", lambda p: p["w"] ** 2, {"w": jnp.ones(3)})
    with pytest.raises(VerificationError, match="not finite"):
        NetworkModel("x", lambda p: jnp.sum(jnp.log(p["w"] - 1.0)), {"w": jnp.ones(3)})
    with pytest.raises(VerificationError, match="loss.params0. failed"):
        NetworkModel("x", lambda p: p["missing"], {"w": jnp.ones(3)})


def test_missing_equinox_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "equinox", None)  # import equinox now raises ImportError
    with pytest.raises(VerificationError, match="pip install equinox"):
        network_model("cnn-digits")
