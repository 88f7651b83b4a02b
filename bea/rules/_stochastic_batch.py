"""Deterministic rules run on a random batch: `minibatch(rule)` for any rule, and SAM on a random batch.

Each step draws a batch B of the per-example losses E_1..E_N (uniform, with or without
replacement, as `bea.rules.SGD`) and runs the rule's own step with the batch's gradient
oracle (`BatchOracle`: grad(x) = (1/|B|) sum_{i in B} grad E_i(x)). `minibatch(GD())` is SGD.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import sympy as sp

from .._errors import InvalidRuleError
from ._base import Rule
from ._gradient import SAM
from ._memory import MemoryRule
from ._stochastic import BatchOracle, NoiseLaw, StochasticRule, batch_law, check_batch, sample_batch

__all__ = ["Minibatch", "SAMSGD", "minibatch"]


class _BatchLaw:
    """Law and sampling of `batches` independent batches of `batch_size` per step."""

    def law(self, n_losses: int, dim: int) -> NoiseLaw:
        batches = batch_law(self.batch_size, self.replacement, n_losses, self.name)
        draws = [tuple(b) for b in batches] if self._batches() == 1 else \
            [(b1, b2) for b1 in batches for b2 in batches]
        p = sp.Rational(1, len(draws))
        return NoiseLaw(tuple((p, d) for d in draws))

    def sample(self, key, n_losses: int, dim: int):
        import jax

        if self._batches() == 1:
            return sample_batch(key, self.batch_size, self.replacement, n_losses)
        k1, k2 = jax.random.split(key)
        return (sample_batch(k1, self.batch_size, self.replacement, n_losses),
                sample_batch(k2, self.batch_size, self.replacement, n_losses))

    def _batches(self) -> int:
        return 1


@dataclasses.dataclass(frozen=True)
class Minibatch(_BatchLaw, StochasticRule):
    """A deterministic rule whose every gradient call in a step uses the same random batch.

        theta' = step(theta, grad_B, h),   grad_B = (1/|B|) sum_{i in B} grad E_i,

    B uniform over batches of `batch_size` (with or without replacement). A rule with state
    (`bea.rules.HeavyBall`, ...) becomes a Markov chain on (theta, state), which has an SME only
    when its state moves O(h) per step: a fixed beta does not (the engine refuses and names the
    scaling), `RMSProp(rho=1 - c*bea.h)` does, and HeavyBall's v' = beta v + grad E never does (use
    `bea.rules.SGDMomentum`, `RMSPropSDE`, `AdamSDE`). With one loss it is the rule itself.
    """

    rule: Rule = dataclasses.field(default=None, metadata={"hyper": False})
    batch_size: int = dataclasses.field(default=1, metadata={"hyper": False})
    replacement: bool = dataclasses.field(default=True, metadata={"hyper": False})
    name = "minibatch"

    def validate(self):
        if not isinstance(self.rule, Rule) or isinstance(self.rule, StochasticRule):
            raise InvalidRuleError(f"minibatch needs a deterministic bea.rules rule (GD(), SAM(), ...), got {self.rule!r}")
        check_batch(self.name, self.batch_size, self.replacement)

    @property
    def state_names(self):  # type: ignore[override]
        return tuple(f"s{i + 1}" for i in range(len(self.rule.decays()))) if isinstance(self.rule, MemoryRule) else ()

    def step(self, theta, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        return self.rule.step(theta, BatchOracle(grad, noise), h)

    def update(self, theta, state, grad, h, noise=None):
        if not isinstance(self.rule, MemoryRule):
            return self.step(theta, grad, h, noise), ()
        if noise is None:
            self._deterministic()
        return self.rule.update(theta, tuple(state), BatchOracle(grad, noise), h, None)

    def init_state(self, theta):
        return tuple(0 * theta for _ in self.state_names)

    # the hyperparameters are the wrapped rule's
    @property
    def free_symbols(self):
        return self.rule.free_symbols

    def bind(self, values=None, /, **named):
        return dataclasses.replace(self, rule=self.rule.bind(values, **named))

    def numeric(self, h, values=None):
        out = copy.copy(self)
        object.__setattr__(out, "rule", self.rule.numeric(h, values))
        return out


def minibatch(rule: Rule, *, batch_size: int = 1, replacement: bool = True) -> Minibatch:
    """`rule` with its gradient oracle drawn afresh on a random batch each step (`Minibatch`)."""
    return Minibatch(rule=rule, batch_size=batch_size, replacement=replacement)


@dataclasses.dataclass(frozen=True)
class SAMSGD(_BatchLaw, StochasticRule):
    """SAM (unnormalized) on a random batch:

        theta' = theta - h grad_B(theta + rho grad_B(theta))            (independent=False, the practice),
        theta' = theta - h grad_B'(theta + rho grad_B(theta))           (independent=True: ascent on B,
                                                                          descent on an independent B'),

    `bea.rules.SAM`'s step (Foret et al., ICLR 2021, arXiv:2010.01412) run on the batch oracle. rho is
    independent of h (exact in rho), or tied to it with rho = c * bea.h. The SGD scaling holds: the
    noise is O(h), so the SME starts with D_0 = 0 and D_1 = the covariance of the batch's SAM direction.
    """

    rho: Any = sp.Symbol("rho")
    batch_size: int = dataclasses.field(default=1, metadata={"hyper": False})
    replacement: bool = dataclasses.field(default=True, metadata={"hyper": False})
    independent: bool = dataclasses.field(default=False, metadata={"hyper": False})
    name = "sam-sgd"

    def validate(self):
        check_batch(self.name, self.batch_size, self.replacement)
        if not isinstance(self.independent, bool):
            raise InvalidRuleError(f"independent of sam-sgd must be True or False, got {self.independent!r}")

    def _batches(self) -> int:
        return 2 if self.independent else 1

    def step(self, theta, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        if not self.independent:
            return SAM.step(self, theta, BatchOracle(grad, noise), h)  # SAM's formula reads only self.rho
        ascent, descent = BatchOracle(grad, noise[0]), BatchOracle(grad, noise[1])
        return theta - h * descent(theta + self.rho * ascent(theta))
