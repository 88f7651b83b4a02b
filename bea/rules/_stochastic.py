"""Stochastic update rules: SGD with random batches, unadjusted Langevin.

A stochastic rule is a frozen dataclass with a pure step written against a random draw,

    step(theta, grad, h, noise) -> theta_next,

and the exact law of that draw, `law(n_losses, dim)`. The engine
(`bea.stochastic_modified_equation`) runs the step once per outcome of the law on exact
SymPy input and averages exactly; `iterate` runs the same step on JAX arrays with actual
draws from a PRNG key. One definition serves both sides.

- SGD: noise is a batch, a tuple of loss indices; the law is uniform over the N^B ordered
  batches (with replacement) or the C(N, B) subsets (without).
- Langevin: noise is a standard Gaussian vector xi; the law is one outcome whose noise is
  a vector of symbols the engine averages by the Gaussian moments E[xi^k] = (k-1)!! (k even), 0 (k odd).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import sympy as sp

from .._errors import InvalidHyperparameterError, UnsupportedError
from ._base import Rule

__all__ = ["SGD", "Langevin", "NoiseLaw", "StochasticRule"]


@dataclasses.dataclass(frozen=True)
class NoiseLaw:
    """The exact law of a step's draw: a finite mixture of outcomes (probability, noise).

    A noise may contain the symbols in `gaussians`: independent standard normal variables,
    averaged by their moments. Probabilities are exact Rationals summing to 1.
    """

    outcomes: tuple[tuple[sp.Rational, Any], ...]
    gaussians: tuple[sp.Symbol, ...] = ()


@dataclasses.dataclass(frozen=True)
class StochasticRule(Rule):
    """Base class of stochastic rules: `step(theta, grad, h, noise)`, `law`, `sample`.

    A rule with state (momentum, moving averages) names its states in `state_names` and defines
    `update(theta, state, grad, h, noise) -> (theta', state')`, each state shaped like theta: a
    Markov chain on (theta, state), whose SME is an SDE for the joint vector (parameters
    `{name}_{param}` for the states, see `bea.engines.stochastic.joint_params`).
    """

    #: Names of the state vectors (empty: a rule on theta alone).
    state_names: ClassVar[tuple[str, ...]] = ()

    def step(self, theta, grad, h, noise=None):  # pragma: no cover - interface
        raise NotImplementedError

    def update(self, theta, state, grad, h, noise=None):
        """(theta', state'): one step of a rule with state; a stateless rule's is (step(...), ())."""
        return self.step(theta, grad, h, noise), ()

    def init_state(self, theta) -> tuple:
        """The state at the first step (zeros, as in every optimizer library)."""
        return tuple(0 * theta for _ in self.state_names)

    def law(self, n_losses: int, dim: int) -> NoiseLaw:  # pragma: no cover - interface
        """The exact law of the draw for `n_losses` losses in `dim` parameters."""
        raise NotImplementedError

    def sample(self, key, n_losses: int, dim: int):  # pragma: no cover - interface
        """One draw from the law, with a JAX PRNG key."""
        raise NotImplementedError

    def _deterministic(self):
        raise UnsupportedError(
            f"{self.name} is stochastic: its step needs a draw; derive it with bea.stochastic_modified_equation "
            "(or iterate it with rule.iterate(..., key=...))"
        )

    def iterate(self, losses, theta0, h: float, steps: int, key, *, params: Sequence[sp.Symbol] | None = None,
                values: dict | None = None, state0=None):
        """Iterates on arrays with actual draws from `key`: shape (steps+1, dim), or (steps+1, dim * (1 + m))
        for a rule with m states, the row (theta, state_1, ..., state_m) as in the SME's parameters.

        `losses`: one loss or a list of per-example losses, JAX functions of the parameter vector or
        SymPy expressions in `params`. `state0`: the initial states (default `init_state`, zeros).
        The step is the very function the engine averages exactly. A plain Python loop (not
        jitted): for checks on small problems.
        """
        from ..lowering._iterate import iterate_random

        return iterate_random(self, losses, theta0, h, steps, key, params=params, values=values, state0=state0)


class BatchOracle:
    """The gradient oracle of one drawn batch: grad(x) the batch-mean gradient, grad[j] the j-th drawn
    example's, grad.full the mean over all N losses; value and hvp batch means. Works on the engine's
    exact vectors and on arrays alike (it only combines the per-example oracles it wraps)."""

    def __init__(self, oracle, batch):
        self._oracle, self.batch = oracle, tuple(batch)

    @property
    def full(self):
        """The oracle of the mean loss E = (1/N) sum_i E_i."""
        return self._oracle

    def __getitem__(self, j):
        if not 0 <= j < len(self.batch):
            raise IndexError(f"the rule asked for example {j} of a batch of {len(self.batch)}")
        return self._oracle[self.batch[j]]

    def _mean(self, fn):
        total = fn(self._oracle[self.batch[0]])
        for i in self.batch[1:]:
            total = total + fn(self._oracle[i])
        return total / len(self.batch)

    def __call__(self, x):
        return self._mean(lambda o: o(x))

    def value(self, x):
        return self._mean(lambda o: o.value(x))

    def hvp(self, x, v):
        return self._mean(lambda o: o.hvp(x, v))


def batch_law(batch_size: int, replacement: bool, n_losses: int, name: str) -> list:
    """The batches a step draws: the N^B ordered tuples (with replacement) or the C(N, B) subsets (without)."""
    if replacement:
        return list(itertools.product(range(n_losses), repeat=batch_size))
    if batch_size > n_losses:
        raise InvalidHyperparameterError(
            f"batch_size {batch_size} of {name} is larger than the {n_losses} losses given, which sampling without "
            "replacement cannot draw; lower batch_size or pass replacement=True"
        )
    return list(itertools.combinations(range(n_losses), batch_size))


def sample_batch(key, batch_size: int, replacement: bool, n_losses: int) -> tuple:
    """One batch of loss indices drawn from `key`, as `batch_law` describes."""
    import jax

    return tuple(int(i) for i in jax.random.choice(key, n_losses, (batch_size,), replace=replacement))


def check_batch(name: str, batch_size, replacement) -> None:
    """`InvalidHyperparameterError` unless batch_size is a positive integer and replacement a bool."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InvalidHyperparameterError(
            f"batch_size of {name} must be a positive integer, got {batch_size!r} "
            "(batch_size=2; --set batch_size=2 on the command line)"
        )
    if not isinstance(replacement, bool):
        raise InvalidHyperparameterError(f"replacement of {name} must be True or False, got {replacement!r}")


def root(x):
    """sqrt of a scalar: exact for SymPy input (the engine's h = s^2 gives s), float otherwise."""
    return sp.sqrt(x) if isinstance(x, sp.Basic) else math.sqrt(x)


@dataclasses.dataclass(frozen=True)
class SGD(StochasticRule):
    """Stochastic gradient descent with a random batch of B of the N per-example losses E_1..E_N.

        theta' = theta - h (1/B) sum_{j < B} grad E_{I_j}(theta),   E = (1/N) sum_i E_i,

    I_j uniform on {1..N}, independent (replacement=True), or a uniform B-subset
    (replacement=False). Its stochastic modified equation to first order is Li, Tai & E's
    (JMLR 2019, arXiv:1811.01558, Thm 3): drift -grad E - (h/4) grad |grad E|^2, diffusion
    h Sigma / B, Sigma = (1/N) sum_i g_i g_i^T - grad E grad E^T the covariance of the per-example
    gradients g_i; without replacement the batch mean's covariance is Sigma (N - B) / (B (N - 1)).
    """

    batch_size: int = dataclasses.field(default=1, metadata={"hyper": False})
    replacement: bool = dataclasses.field(default=True, metadata={"hyper": False})
    name = "sgd"

    def validate(self):
        check_batch(self.name, self.batch_size, self.replacement)

    def step(self, theta, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        return theta - h * BatchOracle(grad, noise)(theta)

    def law(self, n_losses: int, dim: int) -> NoiseLaw:
        batches = batch_law(self.batch_size, self.replacement, n_losses, self.name)
        p = sp.Rational(1, len(batches))
        return NoiseLaw(tuple((p, batch) for batch in batches))

    def sample(self, key, n_losses: int, dim: int):
        return sample_batch(key, self.batch_size, self.replacement, n_losses)


@dataclasses.dataclass(frozen=True)
class Langevin(StochasticRule):
    """The unadjusted Langevin algorithm (Euler-Maruyama for dX = -grad E dt + sqrt(2T) dW),

        theta' = theta - h grad E(theta) + sqrt(2 h T) xi,   xi ~ N(0, I).

    Its stochastic modified equation starts at the Langevin SDE itself: drift -grad E,
    diffusion 2T I (Li, Tai & E, arXiv:1811.01558; Debussche & Faou, "Weak backward error
    analysis for SDEs", SIAM J. Numer. Anal. 50 (2012)).
    """

    temperature: Any = sp.Symbol("T", nonnegative=True)
    name = "langevin"

    def validate(self):
        t = self.temperature
        if isinstance(t, sp.Expr) and t.is_negative:
            raise InvalidHyperparameterError(
                f"temperature of langevin must be >= 0 (it is a variance), got {t}; e.g. Langevin(temperature=0.1) "
                "(--set temperature=0.1 on the command line)"
            )

    def step(self, theta, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        return theta - h * grad(theta) + root(2 * h * self.temperature) * noise

    def law(self, n_losses: int, dim: int) -> NoiseLaw:
        xi = sp.symbols(f"xi_1:{dim + 1}", cls=sp.Dummy, real=True)  # never equal to a user's symbol
        return NoiseLaw(((sp.Integer(1), sp.ImmutableMatrix(xi)),), gaussians=tuple(xi))

    def sample(self, key, n_losses: int, dim: int):
        import jax

        return jax.random.normal(key, (dim,))
