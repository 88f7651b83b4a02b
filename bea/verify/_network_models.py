"""Networks for the numeric (Taylor-mode) engine: a tanh MLP, a CNN and a pre-LN transformer in Equinox.

Each factory returns a `NetworkModel`: a full-batch mean loss `loss(params)` on fixed data and the
initial parameters, a pytree of float64 arrays that `jax.grad` and optax take as they are. The
networks are built with Equinox (Kidger & Garcia 2021, arXiv:2111.00254) and split with
`eqx.partition(model, eqx.is_inexact_array)`: the array half is `params0`, the rest (activations,
shapes, None where an array was) is closed over by `loss`.

Every function on the path is smooth, because the engine differentiates the optimizer's step in h
several times: tanh, softplus and the tanh form of GELU, strided convolutions instead of max-pooling,
a layer norm without the variance clamp of `eqx.nn.LayerNorm` (`jnp.maximum(0, var)`), softmax
cross-entropy by `jax.nn.log_softmax`. The maxima inside `jax.nn.log_softmax` and `jax.nn.softmax`
are a shift under `stop_gradient` that the value does not depend on, so they add no kink.

Data are fixed and need no download: the first images of scikit-learn's digits (the UCI optical
recognition of handwritten digits set, 8x8 pixels, values 0..16 scaled to [0, 1]) and a random
token-reversal task drawn from a seeded numpy Generator. The batches are small so that one full-batch
gradient costs milliseconds on one CPU core (an ODE solve in a sweep calls it hundreds of times).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

__all__ = ["NETWORK_MODELS", "NetworkModel", "cnn_digits", "mlp_digits", "network_model", "transformer_sequence"]

#: Digits images in the full batch of `mlp_digits` and `cnn_digits` (the first ones of `load_digits`).
N_DIGITS = 64
#: The token-reversal task of `transformer_sequence`: sequences, their length, the vocabulary.
N_SEQUENCES, SEQUENCE_LENGTH, VOCABULARY = 16, 8, 16
#: eps of the layer norm, as `eqx.nn.LayerNorm`'s default.
LAYER_NORM_EPS = 1e-5


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class NetworkModel:
    """A network with its data: E(params) = full-batch mean loss, and the initial parameters.

    Args:
        name: a name for reports.
        loss: `loss(params) -> scalar`, the mean loss over the model's fixed data (closed over), a JAX
            function of a parameter pytree; it must be jit-able and differentiable.
        params0: the initial parameters, a pytree whose leaves are all float64 arrays. For an Equinox
            module `m`, `params, static = eqx.partition(m, eqx.is_inexact_array)` and
            `loss = lambda p: mean_loss(eqx.combine(p, static))`.
        description: one line for listings.

    Raises `VerificationError` (before any sweep) when the loss is not callable, a leaf is not a float64
    array, or the loss at params0 is not one finite number.
    """

    name: str
    loss: Callable
    params0: object
    description: str = ""

    def __post_init__(self):
        import jax
        import jax.numpy as jnp

        from .._errors import BeaError
        from ..lowering._x64 import require_x64
        from ._checks import VerificationError

        require_x64(f"network model {self.name}")
        if not callable(self.loss):
            raise VerificationError(f"network model {self.name}: loss must be a JAX function loss(params) -> scalar, "
                                    f"got {self.loss!r}")
        paths = jax.tree_util.tree_flatten_with_path(self.params0)[0]
        if not paths:
            raise VerificationError(f"network model {self.name}: params0 has no arrays; pass a pytree of float64 "
                                    "arrays (eqx.partition(model, eqx.is_inexact_array)[0] for an Equinox module)")
        for path, leaf in paths:
            where = jax.tree_util.keystr(path) or "params0"
            if not isinstance(leaf, (jax.Array, np.ndarray)):
                raise VerificationError(f"network model {self.name}: params0{where} is {type(leaf).__name__}, not an "
                                        "array; keep only arrays in params0 (eqx.partition(model, "
                                        "eqx.is_inexact_array)) and close over the rest in loss")
            if leaf.dtype != jnp.float64:
                raise VerificationError(f"network model {self.name}: params0{where} has dtype {leaf.dtype}; every leaf "
                                        "must be float64 (integer or boolean arrays: move them out of params0 with "
                                        "eqx.partition(model, eqx.is_inexact_array); float32: cast with "
                                        "jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params0))")
        try:
            value = jnp.asarray(self.loss(self.params0))
        except BeaError:
            raise
        except Exception as exc:  # the user's function: say where it failed, keep the cause chained
            raise VerificationError(f"network model {self.name}: loss(params0) failed ({exc}); loss must take the "
                                    "params0 pytree and return a scalar") from exc
        if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
            raise VerificationError(f"network model {self.name}: loss(params0) must be one real number, got shape "
                                    f"{value.shape} and dtype {value.dtype}; return the mean loss (jnp.mean)")
        if not np.isfinite(float(value)):
            raise VerificationError(f"network model {self.name}: loss(params0) = {float(value)} is not finite; choose "
                                    "another initial point or scale the inputs to O(1)")

    @property
    def n_parameters(self) -> int:
        """The number of trainable numbers: the total size of params0's leaves."""
        import jax

        return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(self.params0))


def mlp_digits() -> NetworkModel:
    """A 64-32-10 tanh MLP (`eqx.nn.MLP`, 2,410 parameters) on the first 64 digits images, softmax cross-entropy.

    Small enough for fast tests; the data and loss are those of `cnn_digits`.
    """
    import jax
    import jax.numpy as jnp

    eqx = _equinox("mlp-digits")
    images, labels = _digits(N_DIGITS, "mlp-digits")
    model = eqx.nn.MLP(64, 10, width_size=32, depth=1, activation=jnp.tanh, dtype=jnp.float64,
                       key=jax.random.PRNGKey(0))
    params0, static = _partition(eqx, model)
    inputs = images.reshape(len(images), 64)

    def loss(params):
        return _cross_entropy(jax.vmap(eqx.combine(params, static))(inputs), labels)

    return NetworkModel("mlp-digits", loss, params0, description="64-32-10 tanh MLP on 64 digits images")


def cnn_digits() -> NetworkModel:
    """A tanh CNN (108,810 parameters) on the first 64 digits images, softmax cross-entropy.

    Architecture, per 1x8x8 image x scaled to [0, 1]:
    tanh(conv 3x3, 1 -> 16 channels, padding 1) -> 16x8x8;
    tanh(conv 3x3, 16 -> 64 channels, stride 2, padding 1) -> 64x4x4 (a strided convolution downsamples:
    smooth, unlike max-pooling); flatten -> 1024; tanh(dense 1024 -> 96); dense 96 -> 10 logits.
    Parameters: 160 + 9,280 + 98,400 + 970 = 108,810, most in the dense layer. One full-batch gradient
    takes about 5 ms on one CPU core (jitted, float64).
    Equinox layers (Kidger & Garcia 2021, arXiv:2111.00254) with their default initialisation, key 0.
    """
    import jax
    import jax.numpy as jnp

    eqx = _equinox("cnn-digits")
    images, labels = _digits(N_DIGITS, "cnn-digits")
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    f64 = jnp.float64
    network = {"conv1": eqx.nn.Conv2d(1, 16, 3, padding=1, dtype=f64, key=keys[0]),
               "conv2": eqx.nn.Conv2d(16, 64, 3, stride=2, padding=1, dtype=f64, key=keys[1]),
               "hidden": eqx.nn.Linear(64 * 4 * 4, 96, dtype=f64, key=keys[2]),
               "out": eqx.nn.Linear(96, 10, dtype=f64, key=keys[3])}
    params0, static = _partition(eqx, network)
    inputs = images[:, None, :, :]  # one channel

    def logits(net, x):
        z = jnp.tanh(net["conv1"](x))
        z = jnp.tanh(net["conv2"](z))
        z = jnp.tanh(net["hidden"](z.reshape(-1)))
        return net["out"](z)

    def loss(params):
        net = eqx.combine(params, static)
        return _cross_entropy(jax.vmap(lambda x: logits(net, x))(inputs), labels)

    return NetworkModel("cnn-digits", loss, params0, description="tanh CNN (2 convolutions, 108,810 parameters) on "
                        "64 digits images")


def transformer_sequence() -> NetworkModel:
    """A pre-LayerNorm transformer encoder (102,672 parameters) that reverses random token sequences.

    Task: 16 sequences of 8 tokens drawn uniformly from 16 symbols (numpy Generator, seed 17); the target
    at position i is the token at position 7 - i; loss: softmax cross-entropy averaged over sequences and
    positions (log 16 = 2.77 for a uniform guess). Reversal needs attention: each position must read
    another one.

    Architecture (Vaswani et al. 2017, arXiv:1706.03762, with the layer norm before each sublayer as in
    Xiong et al. 2020, arXiv:2002.04745), width d = 64: one-hot tokens -> linear embedding (16 -> 64, no
    bias; the same map as a table lookup, without the integer gather) + learned positional embedding
    (8 x 64); 2 blocks of x += MHA(LN(x)) (4 heads, `eqx.nn.MultiheadAttention`, biases on, no mask) and
    x += W2 gelu(W1 LN(x) + b1) + b2 (64 -> 256 -> 64, GELU in its tanh form); a final LN; a linear head
    64 -> 16 logits. LN is written out (x - mean) / sqrt(var + 1e-5) * w + b: `eqx.nn.LayerNorm` clamps the
    variance with a max, which is a kink (at zero variance only) that the engine would warn about.
    Parameters: 1,024 + 512 + 2 x (256 + 16,640 + 33,088) + 128 + 1,040 = 102,672; one full-batch gradient
    takes about 3 ms on one CPU core (jitted, float64).
    """
    import jax
    import jax.numpy as jnp

    eqx = _equinox("transformer-sequence")
    rng = np.random.default_rng(17)
    tokens = rng.integers(0, VOCABULARY, size=(N_SEQUENCES, SEQUENCE_LENGTH))
    inputs = jax.nn.one_hot(jnp.asarray(tokens), VOCABULARY, dtype=jnp.float64)
    targets = jax.nn.one_hot(jnp.asarray(tokens[:, ::-1]), VOCABULARY, dtype=jnp.float64)

    d, heads, hidden, n_blocks = 64, 4, 256, 2
    f64 = jnp.float64
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 3 + 3 * n_blocks))

    def norm():
        return {"weight": jnp.ones(d), "bias": jnp.zeros(d)}

    def block():
        return {"norm1": norm(),
                "attention": eqx.nn.MultiheadAttention(heads, d, use_query_bias=True, use_key_bias=True,
                                                       use_value_bias=True, use_output_bias=True, dtype=f64,
                                                       key=next(keys)),
                "norm2": norm(),
                "mlp_in": eqx.nn.Linear(d, hidden, dtype=f64, key=next(keys)),
                "mlp_out": eqx.nn.Linear(hidden, d, dtype=f64, key=next(keys))}

    network = {"embed": eqx.nn.Linear(VOCABULARY, d, use_bias=False, dtype=f64, key=next(keys)),
               "position": 0.1 * jax.random.normal(next(keys), (SEQUENCE_LENGTH, d), dtype=f64),
               "blocks": tuple(block() for _ in range(n_blocks)),
               "final_norm": norm(),
               "head": eqx.nn.Linear(d, VOCABULARY, dtype=f64, key=next(keys))}
    params0, static = _partition(eqx, network)

    def layer_norm(p, x):  # one position: x of shape (d,)
        centred = x - jnp.mean(x)
        return centred * jax.lax.rsqrt(jnp.mean(centred**2) + LAYER_NORM_EPS) * p["weight"] + p["bias"]

    def logits(net, x):  # one sequence: x of shape (SEQUENCE_LENGTH, VOCABULARY)
        z = jax.vmap(net["embed"])(x) + net["position"]
        for b in net["blocks"]:
            y = jax.vmap(lambda v, p=b["norm1"]: layer_norm(p, v))(z)
            z = z + b["attention"](y, y, y)
            y = jax.vmap(lambda v, p=b["norm2"]: layer_norm(p, v))(z)
            z = z + jax.vmap(lambda v, b=b: b["mlp_out"](jax.nn.gelu(b["mlp_in"](v), approximate=True)))(y)
        z = jax.vmap(lambda v: layer_norm(net["final_norm"], v))(z)
        return jax.vmap(net["head"])(z)

    def loss(params):
        net = eqx.combine(params, static)
        out = jax.vmap(lambda x: logits(net, x))(inputs)
        return _cross_entropy(out.reshape(-1, VOCABULARY), targets.reshape(-1, VOCABULARY))

    return NetworkModel("transformer-sequence", loss, params0,
                        description="pre-LN transformer (2 blocks, width 64, 102,672 parameters) reversing 16 random "
                                    "token sequences")


#: Names of the network models (`network_model(name)`).
NETWORK_MODELS: dict[str, Callable[[], NetworkModel]] = {
    "mlp-digits": mlp_digits,
    "cnn-digits": cnn_digits,
    "transformer-sequence": transformer_sequence,
}


def network_model(name: str) -> NetworkModel:
    """The network model of a name (see `NETWORK_MODELS`)."""
    from ._checks import registered

    return registered(NETWORK_MODELS, name, "network model", "bea.verify.NetworkModel")


# -- shared pieces --------------------------------------------------------------------------------------

def _equinox(name: str):
    """The equinox module, or a VerificationError that says how to install it."""
    from ..lowering._x64 import require_x64

    require_x64(f"network model {name}")  # before any array is made: in 32-bit mode they would be float32
    try:
        import equinox
    except ImportError:
        from ._checks import VerificationError

        raise VerificationError(f"network model {name} is built with Equinox: pip install equinox") from None
    return equinox


def _digits(n: int, name: str):
    """The first n digits images (n, 8, 8) scaled to [0, 1] and their one-hot labels (n, 10), float64."""
    import jax
    import jax.numpy as jnp

    try:
        from sklearn.datasets import load_digits  # ships with scikit-learn: no download
    except ImportError:
        from ._checks import VerificationError

        raise VerificationError(f"network model {name} needs scikit-learn's digits: pip install scikit-learn; or use "
                                "transformer-sequence") from None
    digits = load_digits()
    images = jnp.asarray(digits.images[:n] / 16.0, dtype=jnp.float64)
    return images, jax.nn.one_hot(jnp.asarray(digits.target[:n]), 10, dtype=jnp.float64)


def _partition(eqx, network):
    """(params0, static): the float arrays of an Equinox pytree, made float64, and the rest."""
    import jax
    import jax.numpy as jnp

    params, static = eqx.partition(network, eqx.is_inexact_array)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.float64), params), static


def _cross_entropy(logits, one_hot):
    """Mean over rows of -sum_k y_k log softmax(logits)_k."""
    import jax
    import jax.numpy as jnp

    return -jnp.mean(jnp.sum(one_hot * jax.nn.log_softmax(logits, axis=-1), axis=-1))
