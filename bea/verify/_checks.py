"""Checks of a verification's inputs, run before any derivation or iteration.

A sweep costs seconds to minutes; every input that can be checked without it is
checked first. Each check takes the names the caller knows the inputs by (the
Python keyword, or the command-line flag), so that its message says what to fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable

import sympy as sp

from .._errors import BeaError, InvalidOrderError
from ..engines.series._jet import STEP_SIZE

__all__ = [
    "MIN_STEP_SIZES",
    "VerificationError",
    "check_compatible",
    "check_order",
    "check_step_sizes",
    "check_time",
    "check_values",
    "hyperparameter_names",
    "rule_name",
]

#: A slope fitted through two points cannot be checked; three is the least `_fit` accepts.
MIN_STEP_SIZES = 3


class VerificationError(BeaError):
    """The sweep cannot give a trustworthy slope: bad step sizes or time, missing hyperparameter values,
    a rule that does not fit the model, or too few usable points (divergence, round-off, solver error)."""


def registered(registry: dict, name: str, kind: str, alternative: str):
    """`registry[name]()`, the built-in model of a name; an unknown name lists the known ones and `alternative`."""
    if name not in registry:
        raise VerificationError(f"unknown {kind} {name!r}; choose one of {', '.join(registry)}, or pass a {alternative}")
    return registry[name]()


def check_step_sizes(step_sizes, *, name: str = "step_sizes") -> tuple[float, ...]:
    """The step sizes as floats: finite, positive, at least three and all distinct."""
    if isinstance(step_sizes, (str, bytes, dict)) or not isinstance(step_sizes, Iterable):
        raise VerificationError(f"{name} must be a sequence of step sizes, got {step_sizes!r}")
    values = []
    for value in list(step_sizes):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VerificationError(f"{name}: {value!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise VerificationError(f"{name}: every step size must be a finite number > 0, got {value!r}")
        values.append(number)
    repeated = sorted({h for h in values if values.count(h) > 1})
    if repeated:
        raise VerificationError(
            f"{name} repeats {', '.join(map(repr, repeated))}: a slope is fitted over distinct step sizes; "
            f"give at least {MIN_STEP_SIZES} different ones, e.g. 0.004,0.002,0.001"
        )
    if len(values) < MIN_STEP_SIZES:
        raise VerificationError(
            f"{name} has {len(values)} step size(s); fitting and checking a slope needs at least {MIN_STEP_SIZES} "
            "distinct ones, e.g. 0.004,0.002,0.001"
        )
    return tuple(values)


def check_time(time, *, name: str = "time") -> float:
    """The time span of the global error as a float: finite and positive."""
    try:
        value = float(time)
    except (TypeError, ValueError):
        raise VerificationError(f"{name} must be a number, got {time!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise VerificationError(f"{name} must be a finite time > 0 (the span of the global error), got {time!r}")
    return value


def check_order(order, *, name: str = "order", memory: bool = False) -> int:
    """A non-negative int, low enough that the derivation (two orders more for rules with memory) is allowed."""
    from .._derive import MAX_SAFE_ORDER

    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise InvalidOrderError(f"{name} must be an integer >= 0, got {order!r}")
    highest = MAX_SAFE_ORDER - (2 if memory else 0)  # the slow manifold is derived two orders further
    if order > highest:
        raise InvalidOrderError(
            f"{name} {order} is above {highest}, the highest order verification derives"
            + (" for a rule with memory (its slow manifold needs two orders more)" if memory else "")
        )
    return int(order)


def rule_name(rule) -> str:
    """The name a user gave the rule (`bea.rules.rule(..., name=)`), else its class's command-line name."""
    return str(getattr(rule, "label", None) or rule.name)


def hyperparameter_names(rule) -> dict[sp.Symbol, str]:
    """The name to set each free symbol of the rule by: the field's name where the field is just that
    symbol (RMSProp's `eps` holds the symbol `epsilon`), else the symbol's own name."""
    names = {s: s.name for s in rule.free_symbols}
    for field, value in rule.hyperparameters.items():
        if isinstance(value, sp.Symbol) and value in names and "." not in field:
            names[value] = field
    return names


def check_values(rule, values: dict | None, *, suggest: Callable[[str], str], name: str = "values") -> dict:
    """`values` keyed by the rule's symbols, after checking that every free symbol of the rule has a
    finite real value (or an expression in h) and that no value is for a symbol the rule lacks.

    Keys may be symbols, their names, or the names of the fields holding them (`eps` for RMSProp's
    `epsilon`). `suggest(name)` words how to give a value (`values={'beta': ...}` or `--set beta=...`).
    """
    from ..rules import exact

    names = hyperparameter_names(rule)
    by_name = {s.name: s for s in names} | {field: s for s, field in names.items()}
    bound = {}
    for key, value in (values or {}).items():
        key_name = key.name if isinstance(key, sp.Symbol) else str(key)
        if key_name == "h" or key == STEP_SIZE:
            raise VerificationError(f"{name}: h is the step size of the sweep and cannot be set")
        if key_name not in by_name:
            have = f"it has {', '.join(sorted(names.values()))}" if names else "all its hyperparameters have values"
            raise VerificationError(f"{name}: {rule_name(rule)} has no free hyperparameter {key_name} ({have})")
        if isinstance(value, numbers.Real) and not isinstance(value, sp.Basic) and not math.isfinite(float(value)):
            raise VerificationError(f"{name}: the value of {key_name} must be a finite real number, got {value}")
        try:
            expr = exact(value)
        except (TypeError, ValueError, sp.SympifyError):
            raise VerificationError(f"{name}: the value of {key_name} must be a number, got {value!r}") from None
        if expr.free_symbols - {STEP_SIZE}:
            raise VerificationError(
                f"{name}: the value of {key_name} must be a number (or an expression in h), got {value}"
            )
        if expr.is_number and not (expr.is_real and expr.is_finite):
            raise VerificationError(f"{name}: the value of {key_name} must be a finite real number, got {value}")
        bound[by_name[key_name]] = expr
    missing = sorted((s for s in names if s not in bound), key=lambda s: names[s])
    if missing:
        raise VerificationError(
            f"{rule_name(rule)} needs a number for {', '.join(names[s] for s in missing)} to be iterated: "
            + "; ".join(suggest(names[s]) for s in missing)
        )
    if bound:
        rule.bind(bound)  # the rule's own checks of its hyperparameters (0 <= beta < 1, ...), before any work
    return bound


def check_compatible(rule, model, *, model_hint: Callable[[str], str] = lambda name: f"bea.verify.model({name!r})") -> None:
    """The rule takes as many losses as the model has, and games get a model with two players.

    `model_hint(name)` words how to pick a built-in model (`--model NAME` on the command line)."""
    from ..rules import SGDSteps
    from ..rules._composite import _Game

    if isinstance(rule, _Game) and model.players is None:
        raise VerificationError(
            f"{rule_name(rule)} is a two-player game and {model.name} has no players; use a game model "
            f"({model_hint('bilinear-game')}, or a bea.verify.Model with players=(n1, n2))"
        )
    if not isinstance(rule, _Game) and model.players is not None:
        raise VerificationError(
            f"{model.name} is a two-player game; verify a game rule on it (simultaneous-gd, alternating-gd, "
            f"extragradient, optimistic-gd), not {rule_name(rule)}"
        )
    if rule.n_losses != model.n_losses:
        if isinstance(rule, SGDSteps) or rule.n_losses > 1:
            advice = f"use a model with {rule.n_losses} batch losses (e.g. {model_hint('mlp-2-batches')} for 2)"
        else:
            advice = f"{model.name} has {model.n_losses} losses: use a rule that takes them, e.g. sgd-steps"
        raise VerificationError(f"{rule_name(rule)} takes {rule.n_losses} loss(es) but {model.name} has {model.n_losses}; "
                                + advice)
    if isinstance(rule, _Game) and tuple(rule.players) != tuple(model.players):
        raise VerificationError(
            f"{rule_name(rule)} has players of sizes {tuple(rule.players)} but {model.name} has {tuple(model.players)}; "
            f"build the rule with players={tuple(model.players)}"
        )
