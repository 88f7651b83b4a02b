"""Finite sums on JAX models, for the Monte Carlo weak error of minibatch SGD where SymPy is too slow.

A `JaxFiniteSumModel` holds a per-example loss `loss(params, example)` (a JAX function of a
parameter pytree and one row of `data`), the data (leading axis N) and an initial point. Its SME
is `bea.sgd_sde` (drift by autodiff, noise low-rank in example space): no SymPy, so transcendental
losses (logistic regression, an MLP) are checked in seconds where the exact engine takes minutes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["JAX_MODELS", "JaxFiniteSumModel", "jax_model"]


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class JaxFiniteSumModel:
    """E(params) = (1/N) sum_i loss(params, example_i) on a JAX model, with an initial point.

    Args:
        name: a name for reports.
        loss: `loss(params, example) -> scalar`, params a pytree of float64 arrays, `example` one row of
            `data` (every leaf indexed by its leading axis).
        data: an array or pytree of arrays with a common leading axis of N examples.
        params0: the initial parameters, a pytree (made float64 arrays).
        test_functions: named JAX functions phi(params) -> scalar; default (None): the mean loss "E",
            "|params|^2" (the sum of squares over the leaves) and the first entry of each leaf.
        description: one line for listings.

    `bea.verify.monte_carlo_weak_error(bea.rules.SGD(...), p, model=...)` compares minibatch SGD on
    it with Li, Tai & E's SME (JMLR 20, 2019, arXiv:1811.01558) lowered by `bea.sgd_sde`.
    """

    name: str
    loss: Callable
    data: object
    params0: object
    test_functions: Mapping[str, Callable] | None = None
    description: str = ""

    def __post_init__(self):
        import jax
        import jax.numpy as jnp

        from .._errors import BeaError
        from ..lowering._minibatch_sde import _n_examples
        from ._checks import VerificationError

        if not callable(self.loss):
            raise VerificationError(f"model {self.name}: loss must be a JAX function loss(params, example) -> "
                                    f"scalar, got {self.loss!r}")
        leaves = jax.tree_util.tree_leaves(self.params0)
        if not leaves:
            raise VerificationError(f"model {self.name}: params0 has no arrays; pass a pytree of float arrays")
        try:
            params0 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.float64), self.params0)
        except (TypeError, ValueError) as exc:
            raise VerificationError(f"model {self.name}: params0 must be a pytree of numbers ({exc})") from None
        object.__setattr__(self, "params0", params0)
        try:
            n = _n_examples(self.data)
        except BeaError as exc:  # InvalidArrayError: say which model
            raise VerificationError(f"model {self.name}: {exc}") from None
        object.__setattr__(self, "_n", n)
        if self.test_functions is None:
            object.__setattr__(self, "test_functions", self._default_test_functions())
        else:
            functions = dict(self.test_functions)
            if not functions:
                raise VerificationError("test_functions is empty; give at least one, or None for the defaults")
            bad = [name for name, fn in functions.items() if not callable(fn)]
            if bad:
                raise VerificationError(f"test_functions: {', '.join(map(str, bad))} must be JAX functions "
                                        "phi(params) -> scalar")
            object.__setattr__(self, "test_functions", functions)

    @property
    def n_losses(self) -> int:
        """N, the number of examples (as `FiniteSumModel.n_losses`)."""
        return self._n

    def mean_loss(self, params):
        """E(params) = (1/N) sum_i loss(params, example_i)."""
        import jax
        import jax.numpy as jnp

        return jnp.mean(jax.vmap(self.loss, in_axes=(None, 0))(params, self.data))

    def _default_test_functions(self) -> dict[str, Callable]:
        import jax
        import jax.numpy as jnp

        out = {"E": self.mean_loss,
               "|params|^2": lambda p: sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(p))}
        paths = jax.tree_util.tree_flatten_with_path(self.params0)[0]
        for k, (path, leaf) in enumerate(paths):
            label = jax.tree_util.keystr(path) or "params"
            index = "" if jnp.ndim(leaf) == 0 else "[" + ",".join("0" for _ in range(jnp.ndim(leaf))) + "]"
            out[f"{label}{index}"] = lambda p, k=k: jnp.ravel(jax.tree_util.tree_leaves(p)[k])[0]
        return out

    def top_hessian_eigenvalue(self, iterations: int = 50) -> float:
        """|lambda|_max of the Hessian of E at params0, by power iteration on Hessian-vector products."""
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        flat0, unravel = ravel_pytree(self.params0)
        gradient = jax.grad(lambda flat: self.mean_loss(unravel(flat)))

        @jax.jit
        def power(v, _):
            hv = jax.jvp(gradient, (flat0,), (v,))[1]
            return hv / (jnp.linalg.norm(hv) + 1e-300), jnp.linalg.norm(hv)

        v0 = jnp.asarray(np.random.default_rng(0).normal(size=flat0.size))
        _, norms = jax.lax.scan(power, v0 / jnp.linalg.norm(v0), None, length=iterations)
        return float(norms[-1])


def logistic_sgd() -> JaxFiniteSumModel:
    """Logistic regression (softplus loss, weights and bias) on 16 points of a fixed 2-D synthetic data set."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(14)
    labels = np.arange(16) % 2
    xs = rng.normal(size=(16, 2)) + np.where(labels[:, None] == 1, 1.0, -1.0) * np.array([1.0, 0.5])
    signs = 2.0 * labels - 1.0

    def loss(params, example):
        x, s = example
        return jax.nn.softplus(-s * (x @ params["w"] + params["b"]))

    params0 = {"w": jnp.array([-1.0, -0.5]), "b": jnp.array(0.25)}  # every margin about -1: coherent gradients
    return JaxFiniteSumModel("logistic-sgd", loss, (jnp.asarray(xs), jnp.asarray(signs)), params0,
                             description=logistic_sgd.__doc__)


def mlp_digits_sgd() -> JaxFiniteSumModel:
    """A 16-4-10 tanh MLP (softmax cross-entropy) on 32 scikit-learn digits averaged to 4x4 pixels."""
    import jax
    import jax.numpy as jnp

    try:
        from sklearn.datasets import load_digits  # ships with scikit-learn: no download
    except ImportError:
        from ._checks import VerificationError

        raise VerificationError("model mlp-digits-sgd needs scikit-learn (pip install scikit-learn); or use "
                                "logistic-sgd") from None
    digits = load_digits()
    n = 32
    images = digits.images[:n].reshape(n, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(n, 16) / 16.0
    data = (jnp.asarray(images), jax.nn.one_hot(jnp.asarray(digits.target[:n]), 10, dtype=jnp.float64))
    rng = np.random.default_rng(0)
    params0 = {"hidden": {"w": jnp.asarray(rng.normal(size=(16, 4)) / 2.0), "b": jnp.zeros(4)},
               "out": {"w": jnp.asarray(rng.normal(size=(4, 10)) / 2.0), "b": jnp.zeros(10)}}

    def loss(params, example):
        x, y = example
        z = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
        return -jnp.sum(y * jax.nn.log_softmax(z @ params["out"]["w"] + params["out"]["b"]))

    return JaxFiniteSumModel("mlp-digits-sgd", loss, data, params0, description=mlp_digits_sgd.__doc__)


#: Command-line names of the JAX finite-sum models (`bea verify sgd --stochastic --monte-carlo --model NAME`).
JAX_MODELS: dict[str, Callable[[], JaxFiniteSumModel]] = {
    "logistic-sgd": logistic_sgd,
    "mlp-digits-sgd": mlp_digits_sgd,
}


def jax_model(name: str) -> JaxFiniteSumModel:
    """The JAX finite-sum model of a command-line name (see `JAX_MODELS`)."""
    from ._checks import registered

    return registered(JAX_MODELS, name, "JAX model", "bea.verify.JaxFiniteSumModel")
