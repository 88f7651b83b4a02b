"""User-defined rules from a plain step function."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import sympy as sp

from .._errors import BeaError, InvalidRuleError, StepFunctionError
from ._base import Rule, exact

__all__ = ["CustomRule", "call_step", "rule"]


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
        _check_step_function(self.fn, "rule(step)", "step(theta, grad, h, **hyperparameters)")
        object.__setattr__(self, "params", tuple((k, exact(v, f"hyperparameter {k}")) for k, v in self.params))
        if isinstance(self.losses, bool) or not isinstance(self.losses, int) or self.losses < 1:
            raise InvalidRuleError(f"n_losses must be a positive integer, got {self.losses!r}")
        super().__post_init__()

    def validate(self):
        names = [k for k, _ in self.params]
        _check_signature(self.fn, ["theta", "grad", "h"], names)

    @property
    def n_losses(self) -> int:  # type: ignore[override]
        return self.losses

    def step(self, theta, grad, h):
        return call_step(self.fn, theta, grad, h, **dict(self.params))


def _check_step_function(fn, what: str, signature: str) -> None:
    if not callable(fn):
        raise InvalidRuleError(f"{what} needs a callable {signature}, got {fn!r} (of type {type(fn).__name__})")


def _check_signature(fn, positional: list[str], names: list[str]) -> None:
    """Raise `InvalidRuleError` unless fn(*positional, **names) binds (a wrong arity fails here, not mid-derivation)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: let the call decide
        return
    try:
        signature.bind(*([None] * len(positional)), **{k: None for k in names})
    except TypeError as exc:
        label = getattr(fn, "__name__", repr(fn))
        raise InvalidRuleError(
            f"the function {label} must accept ({', '.join(positional)}, {', '.join(names) or '**hyperparameters'}), "
            f"the hyperparameters by keyword ({exc})"
        ) from None


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


def call_step(fn: Callable, theta, *args, **hyperparameters):
    """fn(theta, *args, **hyperparameters); on the engine's series, a failure inside the user's code (jnp.sqrt,
    math.exp, an array method) becomes a `StepFunctionError` that says what a step may use."""
    try:
        return fn(theta, *args, **hyperparameters)
    except BeaError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        if not hasattr(theta, "algebra") and not hasattr(theta, "increments"):  # arrays: the user's own error
            raise
        raise StepFunctionError(
            f"the step function {getattr(fn, '__name__', fn)!r} failed on the engine's exact series "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). A step may use arithmetic "
            "(+, -, *, /, ** with rational exponents), grad(x), grad.hvp(x, v), bea.rules.sqrt, bea.rules.dot and "
            "bea.rules.norm; NumPy, JAX or math functions only run on arrays"
        ) from exc
