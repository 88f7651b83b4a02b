"""Test problems for verification: each a loss as SymPy where it is small, and as JAX always.

Every model gives losses of a flat parameter vector, an initial point and, for
two-player games, the players' block sizes; `model(name)` builds one by its
command-line name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import sympy as sp

__all__ = ["MODELS", "Model", "model"]


@dataclasses.dataclass(frozen=True)
class Model:
    """A verification problem: `jax_losses[k](theta) -> scalar`, `sympy_losses` in `params` (or None)."""

    name: str
    description: str
    theta0: np.ndarray
    jax_losses: tuple[Callable, ...]
    params: tuple[sp.Symbol, ...] = ()
    sympy_losses: tuple[sp.Expr, ...] | None = None
    players: tuple[int, int] | None = None

    def __post_init__(self):
        if self.sympy_losses is not None and len(self.sympy_losses) != len(self.jax_losses):
            raise ValueError("the SymPy and JAX losses of a model must correspond one to one")

    @property
    def n_losses(self) -> int:
        return len(self.jax_losses)


def _from_sympy(name, description, params, losses, theta0, players=None) -> Model:
    jax_losses = []
    for loss in losses:
        fn = sp.lambdify([list(params)], loss, modules="jax")
        jax_losses.append(lambda theta, fn=fn: fn(list(theta)))
    return Model(name, description, np.asarray(theta0, dtype=float), tuple(jax_losses), tuple(params), tuple(losses), players)


def two_param() -> Model:
    """Barrett & Dherin's E = (y - a b x)^2/2 with x = 1, y = 0.6 from (2.8, 3.5) (seed 000, Table A.1)."""
    a, b = sp.symbols("a b")
    loss = (sp.Rational(3, 5) - a * b) ** 2 / 2
    return _from_sympy("two-param", two_param.__doc__, (a, b), [loss], [2.8, 3.5])


def quadratic() -> Model:
    """E = theta^T A theta/2 - c^T theta, A symmetric positive definite (3 parameters)."""
    t = sp.symbols("t0:3")
    half, quarter = sp.Rational(1, 2), sp.Rational(1, 4)
    A = sp.Matrix([[2, half, 0], [half, 1, quarter], [0, quarter, sp.Rational(3, 2)]])
    c = sp.Matrix([1, -1, sp.Rational(1, 2)])
    v = sp.Matrix(t)
    loss = sp.expand((v.T * A * v)[0] / 2 - (c.T * v)[0])
    return _from_sympy("quadratic", quadratic.__doc__, t, [loss], [1.0, -0.5, 0.8])


def dln() -> Model:
    """Diagonal linear network, L(w) = 1/(4n) sum_j (<w+^2 - w-^2, x_j> - y_j)^2 (seed 001 eq. 9), d = 2, n = 3."""
    wp, wm = sp.symbols("u0:2"), sp.symbols("v0:2")
    X = [(1, sp.Rational(1, 2)), (-sp.Rational(1, 2), 1), (1, 1)]
    Y = [1, sp.Rational(1, 2), -sp.Rational(1, 4)]
    beta = [wp[i] ** 2 - wm[i] ** 2 for i in range(2)]
    loss = sum((beta[0] * x0 + beta[1] * x1 - yj) ** 2 for (x0, x1), yj in zip(X, Y)) / (4 * len(X))
    return _from_sympy("dln", dln.__doc__, (*wp, *wm), [loss], [0.8, 0.6, 0.5, 0.7])


def logistic() -> Model:
    """Logistic regression on 4 points in the plane with a bias (smooth, non-polynomial)."""
    w = sp.symbols("w0:3")
    data = [((1, 2), 1), ((-1, 1), 0), ((2, -1), 1), ((-2, -1), 0)]
    loss = sum(sp.log(1 + sp.exp(-(2 * yj - 1) * (w[0] * x0 + w[1] * x1 + w[2]))) for (x0, x1), yj in data) / len(data)
    return _from_sympy("logistic", logistic.__doc__, w, [loss], [0.3, -0.2, 0.1])


def bilinear_game() -> Model:
    """The zero-sum bilinear game E_phi = phi theta = -E_theta (Dirac-GAN-like), players of one parameter each."""
    phi, theta = sp.symbols("phi theta")
    return _from_sympy("bilinear-game", bilinear_game.__doc__, (phi, theta), [phi * theta, -phi * theta], [1.0, 0.5], (1, 1))


def mlp(hidden: int = 8, samples: int = 200, batches: int = 1) -> Model:
    """A tanh MLP 16-hidden-10 with softmax cross-entropy on scikit-learn's digits (downsampled to 4x4
    pixels, first `samples` images; shipped with scikit-learn, no download). JAX only.

    With batches > 1 the images are split into that many consecutive batches, one loss
    each (for `sgd-steps`: SGD with exact batches on real data)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images[:samples].reshape(samples, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(samples, 16) / 16.0
    X = jnp.asarray(images)
    Y = jax.nn.one_hot(jnp.asarray(data.target[:samples]), 10)
    rng = np.random.default_rng(0)
    params = [
        {"w": jnp.asarray(rng.normal(size=(16, hidden)) / 4.0), "b": jnp.zeros(hidden)},
        {"w": jnp.asarray(rng.normal(size=(hidden, 10)) / np.sqrt(hidden)), "b": jnp.zeros(10)},
    ]
    flat, unravel = ravel_pytree(params)

    if batches < 1 or samples % batches:
        raise ValueError(f"batches must be a positive divisor of samples ({samples}), got {batches}")
    size = samples // batches

    def batch_loss(k):
        def loss(theta):
            p = unravel(theta)
            z = jnp.tanh(X[k * size:(k + 1) * size] @ p[0]["w"] + p[0]["b"])
            logits = z @ p[1]["w"] + p[1]["b"]
            return -jnp.mean(jnp.sum(Y[k * size:(k + 1) * size] * jax.nn.log_softmax(logits), axis=1))

        return loss

    name = "mlp" if batches == 1 else f"mlp-{batches}-batches"
    return Model(name, mlp.__doc__, np.asarray(flat), tuple(batch_loss(k) for k in range(batches)))


def mlp_two_batches() -> Model:
    """The MLP on digits with its 200 images in two batches of 100, one loss each (for sgd-steps)."""
    return mlp(batches=2)


#: Command-line names.
MODELS: dict[str, Callable[[], Model]] = {
    "two-param": two_param,
    "quadratic": quadratic,
    "dln": dln,
    "logistic": logistic,
    "mlp": mlp,
    "mlp-2-batches": mlp_two_batches,
    "bilinear-game": bilinear_game,
}


def model(name: str) -> Model:
    """The model of a command-line name (see `MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]()
