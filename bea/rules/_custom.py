"""User-defined rules from a plain step function."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import sympy as sp

from ._base import Rule, exact

__all__ = ["CustomRule", "rule"]


@dataclasses.dataclass(frozen=True)
class CustomRule(Rule):
    """A rule given by a function `step(theta, grad, h, **hyperparameters)`.

    The function must be pure and use only arithmetic on theta, the values
    `grad` returns, h and the hyperparameters (and `grad.hvp`, `grad.value`,
    `grad[k]`); it then runs unchanged on exact series and on arrays.
    """

    fn: Callable = None
    params: tuple = ()
    label: str = dataclasses.field(default="custom", metadata={"choice": True})
    losses: int = dataclasses.field(default=1, metadata={"hyper": False})
    name = "custom"

    def __post_init__(self):
        object.__setattr__(self, "params", tuple((k, exact(v)) for k, v in self.params))
        super().__post_init__()

    def validate(self):
        if not callable(self.fn):
            raise TypeError("rule(step) needs a callable step(theta, grad, h, **hyperparameters)")
        signature = inspect.signature(self.fn)
        names = [k for k, _ in self.params]
        try:
            signature.bind(None, None, None, **{k: None for k in names})
        except TypeError as exc:
            raise TypeError(
                f"the step function {self.fn.__name__} must accept (theta, grad, h, {', '.join(names) or '...'}): {exc}"
            ) from None

    @property
    def n_losses(self) -> int:  # type: ignore[override]
        return self.losses

    def step(self, theta, grad, h):
        return self.fn(theta, grad, h, **dict(self.params))


def rule(step: Callable, *, name: str = "custom", n_losses: int = 1, **hyperparameters: Any) -> CustomRule:
    """Make a rule from `step(theta, grad, h, **hyperparameters)`.

    Hyperparameters not given a value default to a SymPy symbol of their name::

        heavy_extrapolation = bea.rules.rule(
            lambda theta, grad, h, beta: theta - h * grad(theta - beta * h * grad(theta)),
            beta=None,
        )
    """
    values = {k: sp.Symbol(k) if v is None else v for k, v in hyperparameters.items()}
    return CustomRule(fn=step, params=tuple(values.items()), label=name, losses=n_losses)
