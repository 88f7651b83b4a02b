"""Rules made of several steps: compositions, SGD with exact batches, two-player games, flooding.

A composite rule applies steps one after another, each with its own loss. Its
`duration` says how much flow time one composite step advances, in units of h:
n SGD steps advance n h (theta_n ~ theta(n h), Rosca & Deisenroth 2024 /
Smith et al. 2021), one round of a two-player game advances h. The engine
expands the composite map in h and matches it to the flow over `duration * h`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sympy as sp

from .._errors import InvalidHyperparameterError, InvalidRuleError, UnknownSymbolError
from ._base import Rule, exact
from ._gradient import GD

__all__ = [
    "AlternatingGD",
    "Composite",
    "GradientAscent",
    "SGDSteps",
    "SimultaneousGD",
    "block",
    "compose",
    "flooding_crossing",
]


def block(vector, start: int, stop: int):
    """The vector with every entry outside [start, stop) set to zero (one player's block)."""
    from ..engines.series._jet import ScalarSeries, VectorSeries

    if hasattr(vector, "block"):  # a B-series (coordinate-free view): project the root of every tree
        return vector.block(start, stop)
    if isinstance(vector, VectorSeries):
        zero = ScalarSeries(vector.algebra, [vector.algebra.zero] * len(vector.coeffs), vector.valid)
        return VectorSeries.stack([vector.component(i) if start <= i < stop else zero for i in range(vector.dim)])
    if isinstance(vector, sp.MatrixBase):
        return sp.Matrix([vector[i] if start <= i < stop else 0 for i in range(len(vector))])
    import jax.numpy as jnp

    index = jnp.arange(vector.shape[0])
    return jnp.where((index >= start) & (index < stop), vector, 0.0)


@dataclasses.dataclass(frozen=True)
class GradientAscent(Rule):
    """theta_{n+1} = theta_n + h grad E(theta_n) (a building block: flooding below the flood level)."""

    name = "gradient-ascent"

    def step(self, theta, grad, h):
        return theta + h * grad(theta)


class _Indexed:
    """The gradient oracle of loss `index`, seen by a sub-step as its only loss."""

    def __init__(self, grad, index: int):
        single = index == 0 and getattr(grad, "n_losses", 1) == 1
        self._grad = grad if single else grad[index]

    def __call__(self, x):
        return self._grad(x)

    def hvp(self, x, v):
        return self._grad.hvp(x, v)

    def value(self, x):
        return self._grad.value(x)

    def __getitem__(self, k):
        if k:
            raise IndexError("a sub-step of a composite rule sees one loss")
        return self


@dataclasses.dataclass(frozen=True)
class Composite(Rule):
    """Steps applied in order, step i with loss `losses[i]` (see `compose`)."""

    steps: tuple = ()
    losses: tuple = dataclasses.field(default=(), metadata={"hyper": False})
    duration: Any = dataclasses.field(default=None, metadata={"hyper": False})
    label: str = dataclasses.field(default="composite", metadata={"choice": True})

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    def __post_init__(self):
        if not self.steps:
            raise InvalidRuleError("a composition needs at least one step: compose(step_1, step_2, ...)")
        for s in self.steps:
            if not isinstance(s, Rule) or hasattr(s, "decays"):
                raise InvalidRuleError(
                    f"compose() takes one-step rules without state (bea.rules.GD(), bea.rules.rule(...), ...), got {s!r}"
                )
            if s.n_losses != 1:
                raise InvalidRuleError(f"each composed step takes one loss; {s.name} takes {s.n_losses}")
        if not self.losses:
            object.__setattr__(self, "losses", tuple(range(len(self.steps))))
        if len(self.losses) != len(self.steps):
            raise InvalidRuleError(f"{len(self.steps)} steps but {len(self.losses)} loss indices: give one per step")
        if any(isinstance(k, bool) or not isinstance(k, int) for k in self.losses) or sorted(set(self.losses)) != list(
            range(len(set(self.losses)))
        ):
            raise InvalidRuleError(f"loss indices must be the integers 0, 1, ..., k-1 with none skipped, got {self.losses}")
        if self.duration is None:
            object.__setattr__(self, "duration", len(self.steps))
        duration = exact(self.duration, "duration")
        if not (duration.is_number and duration > 0):
            raise InvalidHyperparameterError(f"duration must be a positive number (in units of h), got {self.duration}")
        object.__setattr__(self, "duration", duration)
        super().__post_init__()

    @property
    def n_losses(self) -> int:  # type: ignore[override]
        return len(set(self.losses))

    @property
    def hyperparameters(self) -> dict:
        out = {}
        for i, s in enumerate(self.steps):
            out.update({f"{i}.{k}": v for k, v in s.hyperparameters.items()})
        return out

    def bind(self, values=None, /, **named):
        return dataclasses.replace(self, steps=tuple(s.bind(values, **named) if s.free_symbols else s for s in self.steps))

    def numeric(self, h, values=None):
        return dataclasses.replace(self, steps=tuple(s.numeric(h, values) for s in self.steps))

    def step(self, theta, grad, h):
        for s, k in zip(self.steps, self.losses):
            theta = s.step(theta, _Indexed(grad, k), h)
        return theta


def compose(*steps: Rule, losses=None, duration=None, name: str = "composite") -> Composite:
    """The rule that applies `steps` in order, step i on loss `losses[i]` (default: its own loss i).

    `duration` is the flow time of one composite step in units of h (default:
    the number of steps, so that k steps of size h follow the flow over k h).
    """
    return Composite(steps=tuple(steps), losses=tuple(losses or ()), duration=duration, label=name)


@dataclasses.dataclass(frozen=True)
class SGDSteps(Rule):
    """n steps of SGD, step i on batch loss E_i: theta_{i+1} = theta_i - h grad E_i(theta_i).

    The modified field is per step of size h (theta_n ~ theta(n h)) and
    reproduces Rosca & Deisenroth, "Implicit regularisation in SGD: from
    single-objective to two-player games", arXiv:2307.05789, Theorem 4.
    """

    n: int = dataclasses.field(default=2, metadata={"hyper": False})
    name = "sgd-steps"

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InvalidHyperparameterError(f"{self.name} needs a positive number of batches, got {self.n!r}")
        super().__post_init__()

    @property
    def n_losses(self) -> int:  # type: ignore[override]
        return self.n

    @property
    def duration(self):
        return sp.Integer(self.n)

    def step(self, theta, grad, h):
        for i in range(self.n):
            theta = theta - h * grad[i](theta)
        return theta


@dataclasses.dataclass(frozen=True)
class _Game(Rule):
    """Two players: parameters [0, players[0]) minimize loss 0, the rest minimize loss 1."""

    players: tuple = dataclasses.field(default=(1, 1), metadata={"hyper": False})
    ratio: Any = 1  # learning rate of player 2 over player 1's (nu/alpha in seed 003)
    n_losses = 2

    def __post_init__(self):
        if len(self.players) != 2 or any(not isinstance(p, int) or p < 1 for p in self.players):
            raise InvalidHyperparameterError(f"players must be two positive block sizes, got {self.players!r}")
        super().__post_init__()

    def check_params(self, count: int) -> None:
        """Raise if the parameter count does not match the players' blocks."""
        if count != sum(self.players):
            raise UnknownSymbolError(
                f"{self.name} has players of sizes {self.players} ({sum(self.players)} parameters), "
                f"but {count} parameters were given; list player 1's parameters first"
            )


@dataclasses.dataclass(frozen=True)
class SimultaneousGD(_Game):
    """Simultaneous gradient descent in a two-player game (seed 003 Section 5):

        phi' = phi - h grad_phi E_phi(phi, theta),    theta' = theta - ratio h grad_theta E_theta(phi, theta).
    """

    name = "simultaneous-gd"

    def step(self, theta, grad, h):
        n1, n = self.players[0], sum(self.players)
        return theta - h * block(grad[0](theta), 0, n1) - self.ratio * h * block(grad[1](theta), n1, n)


@dataclasses.dataclass(frozen=True)
class AlternatingGD(_Game):
    """Alternating gradient descent: player 1 moves, then player 2 sees the new phi (Rosca et al.,
    "Discretization drift in two-player games", ICML 2021, arXiv:2105.13922)."""

    name = "alternating-gd"

    def step(self, theta, grad, h):
        n1 = self.players[0]
        moved = theta - h * block(grad[0](theta), 0, n1)
        return moved - self.ratio * h * block(grad[1](moved), n1, sum(self.players))


def flooding_crossing(kind: str = "forward") -> Composite:
    """Two flooding steps across the flood level b (Karakida et al., arXiv:2210.02720, Theorem 5.1).

    forward (E < b, then E > b): an ascent step then a descent step, theta_{t+2} =
    theta_t - h^2 (grad E(theta_t + h grad E) - grad E)/h, one F-GR step on the
    regularizer with eps = gamma = h; backward: descent then ascent (B-GR).
    """
    if kind not in ("forward", "backward"):
        raise InvalidHyperparameterError(f"kind must be 'forward' or 'backward', got {kind!r}")
    steps = (GradientAscent(), GD()) if kind == "forward" else (GD(), GradientAscent())
    return compose(*steps, losses=(0, 0), duration=1, name=f"flooding-{kind}")
