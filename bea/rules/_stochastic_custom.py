"""User-written stochastic rules: `stochastic_rule(step, batch_size=..., gaussians=...)`.

The step is written once against a random oracle and/or standard Gaussian draws; the engine
runs it on every outcome of the exact law (batches x symbolic Gaussian vectors) and averages
exactly, `iterate` runs it on arrays with draws from a PRNG key.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any

import sympy as sp

from .._errors import InvalidRuleError
from ._base import exact
from ._custom import _check_signature, _check_step_function, call_step
from ._stochastic import BatchOracle, NoiseLaw, StochasticRule, batch_law, check_batch, sample_batch

__all__ = ["CustomStochasticRule", "stochastic_rule"]


@dataclasses.dataclass(frozen=True)
class CustomStochasticRule(StochasticRule):
    """A stochastic rule given by a function (see `stochastic_rule`)."""

    fn: Callable = None
    params: tuple = ()
    label: str = dataclasses.field(default="custom", metadata={"choice": True})
    batch_size: int | None = dataclasses.field(default=None, metadata={"hyper": False})
    replacement: bool = dataclasses.field(default=True, metadata={"hyper": False})
    gaussians: int = dataclasses.field(default=0, metadata={"hyper": False})
    states: tuple = dataclasses.field(default=(), metadata={"hyper": False})
    name = "custom-stochastic"

    def __post_init__(self):
        _check_step_function(self.fn, "stochastic_rule(step)", "step(theta, grad, h, xi, **hyperparameters)")
        object.__setattr__(self, "params", tuple((k, exact(v, f"hyperparameter {k}")) for k, v in self.params))
        super().__post_init__()

    def validate(self):
        if self.batch_size is not None:
            check_batch(self.label, self.batch_size, self.replacement)
        if isinstance(self.gaussians, bool) or not isinstance(self.gaussians, numbers.Integral) or self.gaussians < 0:
            raise InvalidRuleError(
                f"gaussians must be the number of standard Gaussian vectors a step draws (0, 1, 2, ...), got {self.gaussians!r}"
            )
        if self.batch_size is None and self.gaussians == 0:
            raise InvalidRuleError(
                "a stochastic rule needs a random draw: pass batch_size=B (a random batch of the losses) and/or "
                "gaussians=k (k standard Gaussian vectors per step); a deterministic step is bea.rules.rule(step)"
            )
        if any(not isinstance(n, str) or not n.isidentifier() for n in self.states):
            raise InvalidRuleError(f"state must be a list of names such as ['v'], got {list(self.states)!r}")
        names = [k for k, _ in self.params]
        positional = ["theta", "state", "grad", "h", "xi"] if self.states else ["theta", "grad", "h", "xi"]
        _check_signature(self.fn, positional, names)

    @property
    def state_names(self):  # type: ignore[override]
        return tuple(self.states)

    def law(self, n_losses: int, dim: int) -> NoiseLaw:
        batches = [None] if self.batch_size is None else batch_law(self.batch_size, self.replacement, n_losses, self.label)
        # one Dummy vector per Gaussian draw: never equal to a user's symbol
        xis = tuple(sp.ImmutableMatrix(sp.symbols(f"xi{k + 1}_1:{dim + 1}", cls=sp.Dummy, real=True))
                    for k in range(self.gaussians))
        p = sp.Rational(1, len(batches))
        return NoiseLaw(tuple((p, (batch, xis)) for batch in batches), gaussians=tuple(x for xi in xis for x in xi))

    def sample(self, key, n_losses: int, dim: int):
        import jax

        kb, kg = jax.random.split(key)
        batch = None if self.batch_size is None else sample_batch(kb, self.batch_size, self.replacement, n_losses)
        xis = tuple(jax.random.normal(k, (dim,)) for k in jax.random.split(kg, self.gaussians)) if self.gaussians else ()
        return batch, xis

    def _arguments(self, grad, noise):
        if noise is None:
            self._deterministic()
        batch, xis = noise
        oracle = grad if batch is None else BatchOracle(grad, batch)
        xi = None if not xis else xis[0] if len(xis) == 1 else tuple(xis)
        return oracle, xi

    def step(self, theta, grad, h, noise=None):
        if self.states:
            raise TypeError(f"{self.label} keeps state; call update(theta, state, grad, h, noise)")
        oracle, xi = self._arguments(grad, noise)
        return call_step(self.fn, theta, oracle, h, xi, **dict(self.params))

    def update(self, theta, state, grad, h, noise=None):
        if not self.states:
            return self.step(theta, grad, h, noise), ()
        oracle, xi = self._arguments(grad, noise)
        out = call_step(self.fn, theta, tuple(state), oracle, h, xi, **dict(self.params))
        if not (isinstance(out, tuple) and len(out) == 2 and len(tuple(out[1])) == len(self.states)):
            raise InvalidRuleError(
                f"the step of {self.label} keeps state {list(self.states)}: it must return (theta, "
                f"({', '.join(self.states)},)), a pair of the new theta and the tuple of new states"
            )
        return out[0], tuple(out[1])


def stochastic_rule(step: Callable, *, batch_size: int | None = None, replacement: bool = True, gaussians: int = 0,
                    state=(), name: str = "custom", **hyperparameters: Any) -> CustomStochasticRule:
    """Make a stochastic rule from `step(theta, grad, h, xi, **hyperparameters) -> theta'`.

    - `batch_size=B`: each step draws a uniform batch of B of the per-example losses (with or
      without `replacement`, as `bea.rules.SGD`); `grad(x)` is then the batch-mean gradient,
      `grad[j](x)` the j-th drawn example's, `grad.full(x)` the mean over all losses. Without
      batch_size, `grad` is the full oracle (grad(x) of the mean loss, grad[k] of loss k).
    - `gaussians=k`: each step draws k independent standard Gaussian vectors shaped like theta;
      `xi` is the vector (k = 1), a tuple of them (k > 1), or None (k = 0).
    - `state=["v", ...]`: a rule with state, `step(theta, state, grad, h, xi, **hp) -> (theta', state')`,
      states shaped like theta, zero at the start; its SME is an SDE for (theta, state), parameters
      `v_a, v_b, ...` after the model's.

    Hyperparameters without a value are symbols of their name. The engine takes exact moments of
    finite mixtures of batches and standard Gaussians entering polynomially at each order in
    sqrt(h); it assumes increments O(h) in mean and O(sqrt h) in fluctuation (Li, Tai & E, JMLR 2019,
    arXiv:1811.01558), and refuses other draws or scalings with a message. sqrt(h) is `h ** 0.5`
    (a float the step writes becomes the exact decimal it denotes in the engine: write other
    scalar roots as hyperparameters, e.g. sigma = sqrt(2 T)); `bea.rules.sqrt` is element-wise on
    vectors. Example, Langevin with a random batch (stochastic gradient Langevin dynamics,
    Welling & Teh, ICML 2011), noise scale sigma::

        sgld = bea.rules.stochastic_rule(
            lambda theta, grad, h, xi, sigma: theta - h * grad(theta) + h ** 0.5 * sigma * xi,
            batch_size=1, gaussians=1, sigma=None, name="sgld")
    """
    if isinstance(state, str):
        state = (state,)
    values = {k: sp.Symbol(k) if v is None else v for k, v in hyperparameters.items()}
    return CustomStochasticRule(fn=step, params=tuple(values.items()), label=name, batch_size=batch_size,
                                replacement=replacement, gaussians=gaussians, states=tuple(state))
