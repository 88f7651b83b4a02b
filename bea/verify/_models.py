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
    """A verification problem: losses of a flat parameter vector and the initial point of the sweeps.

    Fields:
        name, description: for messages and plots.
        theta0: the initial point, a 1-D float array (one entry per parameter).
        jax_losses: one JAX function `loss(theta) -> scalar` per loss (several for
            `SGDSteps`, one per batch; two for games, player 1's first).
        params, sympy_losses: the same losses as SymPy expressions in `params`
            (optional). With them the modified field is derived concretely on the
            loss; without them it is the coordinate-free field lowered by autodiff.
        players: block sizes of the two players of a game, e.g. (1, 1).

    A model of your own, used from Python::

        import jax.numpy as jnp
        import numpy as np
        import bea
        from bea.verify import Model, local_error

        def loss(theta):  # a Rosenbrock valley
            return (1 - theta[0]) ** 2 + 10 * (theta[1] - theta[0] ** 2) ** 2

        rosenbrock = Model("rosenbrock", "Rosenbrock, a = 1, b = 10", np.array([-0.5, 0.5]), (loss,))
        result = local_error(bea.rules.GD(), rosenbrock, 1, step_sizes=[0.004, 0.002, 0.001, 0.0005])
        print(result.slope, result.expected)  # about 3, and 3

    or from the command line as `bea verify gd --model my_models:rosenbrock --order 1`,
    `my_models.py` defining `rosenbrock` (a Model or a function returning one).
    """

    name: str
    description: str
    theta0: np.ndarray
    jax_losses: tuple[Callable, ...]
    params: tuple[sp.Symbol, ...] = ()
    sympy_losses: tuple[sp.Expr, ...] | None = None
    players: tuple[int, int] | None = None

    def __post_init__(self):
        from ._checks import VerificationError

        try:
            theta0 = np.array(self.theta0, dtype=float)
        except (TypeError, ValueError):
            raise VerificationError(f"model {self.name}: theta0 must be a vector of numbers, got {self.theta0!r}") from None
        if theta0.ndim != 1 or theta0.size == 0 or not np.isfinite(theta0).all():
            raise VerificationError(
                f"model {self.name}: theta0 must be a non-empty 1-D vector of finite numbers (flatten a pytree "
                f"with jax.flatten_util.ravel_pytree), got shape {theta0.shape}"
            )
        object.__setattr__(self, "theta0", theta0)
        losses = (self.jax_losses,) if callable(self.jax_losses) else tuple(self.jax_losses)
        if not losses or not all(callable(loss) for loss in losses):
            raise VerificationError(f"model {self.name}: jax_losses must be one or more functions loss(theta) -> scalar")
        object.__setattr__(self, "jax_losses", losses)
        object.__setattr__(self, "params", tuple(self.params))
        if self.sympy_losses is not None:
            object.__setattr__(self, "sympy_losses", tuple(self.sympy_losses))
            if len(self.sympy_losses) != len(self.jax_losses):
                raise VerificationError(f"model {self.name}: the SymPy and JAX losses must correspond one to one")
            if len(self.params) != theta0.size:
                raise VerificationError(
                    f"model {self.name}: {len(self.params)} params for a theta0 of {theta0.size} entries"
                )
        if self.players is not None:
            players = tuple(self.players)
            if len(players) != 2 or sum(players) != theta0.size or min(players) < 1:
                raise VerificationError(
                    f"model {self.name}: players must be two positive block sizes adding up to {theta0.size}, "
                    f"got {self.players!r}"
                )
            object.__setattr__(self, "players", players)

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
    """A tanh MLP 16-8-10, softmax cross-entropy on 200 digit images at 4x4 pixels (JAX only).

    `hidden` units, the first `samples` images of scikit-learn's digits (shipped
    with scikit-learn, no download), downsampled from 8x8 to 4x4 pixels. With
    batches > 1 the images are split into that many consecutive batches, one loss
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
        from ._checks import VerificationError

        raise VerificationError(f"batches must be a positive divisor of samples ({samples}), got {batches}")
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


def summary(text: str | None) -> str:
    """The first paragraph of a description or docstring, on one line (the command line's model list)."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def model(name: str) -> Model:
    """The model of a command-line name (see `MODELS`)."""
    from ._checks import registered

    return registered(MODELS, name, "model", "bea.verify.Model")
