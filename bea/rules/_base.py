"""What an update rule is.

A rule is a frozen dataclass of hyperparameters plus one pure function,

    step(theta, grad, h) -> theta_next,

written with ordinary arithmetic. `grad(x)` is the gradient of the loss at x
(`grad.hvp(x, v)`, `grad.value(x)` and `grad[k]` for rules with several losses
are also available). The same `step` is run by the symbolic engine (on exact
power series in h) and by the numerical iteration (on JAX arrays), so the
derived modified equation and the iterates it is checked against can never
disagree.

Hyperparameters are SymPy expressions and stay symbolic unless fixed. Floats
given by the user are converted to the exact decimal they denote (0.1 -> 1/10),
so the engine's arithmetic stays exact. A hyperparameter may be tied to the
step size (SAM with rho = c*h) by using the symbol `bea.h`.
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
from typing import Any, ClassVar

import sympy as sp

from ..series._jet import STEP_SIZE

__all__ = ["Rule", "exact"]


def exact(value: Any) -> sp.Expr:
    """Convert a hyperparameter to an exact SymPy expression (floats by their decimal repr)."""
    if isinstance(value, bool):
        raise TypeError(f"a hyperparameter cannot be a boolean ({value!r})")
    if isinstance(value, float):  # also NumPy's float64, whose repr is 'np.float64(...)'
        return sp.Rational(repr(float(value)))
    if isinstance(value, numbers.Number) and not isinstance(value, sp.Basic):
        return sp.nsimplify(value, rational=True)
    expr = sp.sympify(value)
    if expr.has(sp.Float):
        expr = expr.xreplace({f: sp.Rational(str(f)) for f in expr.atoms(sp.Float)})
    # A user's own Symbol("h") means the step size.
    named_h = {s: STEP_SIZE for s in expr.free_symbols if s.name == "h" and s != STEP_SIZE}
    return expr.xreplace(named_h) if named_h else expr


@dataclasses.dataclass(frozen=True)
class Rule:
    """Base class of update rules: subclasses are frozen dataclasses that define `step`."""

    #: How many losses the rule takes (several for SGD steps with batches, two-player games).
    n_losses: ClassVar[int] = 1
    #: The command-line name.
    name: ClassVar[str] = "rule"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.metadata.get("hyper", True) and not field.name.startswith("_"):
                value = getattr(self, field.name)
                if isinstance(value, (numbers.Number, sp.Basic, str)) and not isinstance(value, bool):
                    if isinstance(value, str) and field.metadata.get("choice"):
                        continue
                    object.__setattr__(self, field.name, exact(value))
        self.validate()

    def validate(self) -> None:
        """Check the hyperparameters' invariants (override); raise `ValueError` with advice."""

    def step(self, theta, grad, h):  # pragma: no cover - interface
        """One step theta -> Phi_h(theta)."""
        raise NotImplementedError

    # -- hyperparameters ----------------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The rule's hyperparameters by field name: SymPy expressions, or tuples of them (tableaus)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), (sp.Basic, tuple))
        }

    @property
    def free_symbols(self) -> set[sp.Symbol]:
        """Symbols in the hyperparameters, the step size excluded."""
        out: set[sp.Symbol] = set()
        for value in self.hyperparameters.values():
            _walk(value, lambda e: out.update(e.free_symbols))
        return out - {STEP_SIZE}

    def bind(self, values: dict | None = None, /, **named) -> Rule:
        """A copy with symbols in the hyperparameters replaced by values (keys: symbols or names)."""
        mapping = _symbol_map(self.free_symbols | {STEP_SIZE}, {**(values or {}), **named})
        return dataclasses.replace(
            self, **{k: _walk(v, lambda e: e.xreplace(mapping)) for k, v in self.hyperparameters.items()}
        )

    def numeric(self, h: float, values: dict | None = None) -> Rule:
        """A copy with float hyperparameters, whose `step` runs on arrays at step size h.

        The copy bypasses the exact conversion of `__post_init__` on purpose: it is
        for the numerical iteration only and is never given to the engine.
        """
        bound = self.bind({**(values or {}), STEP_SIZE: exact(h)})
        numeric = copy.copy(bound)
        for name, value in bound.hyperparameters.items():

            def to_float(e, name=name):
                if e.free_symbols:
                    missing = ", ".join(sorted(map(str, e.free_symbols)))
                    raise ValueError(f"hyperparameter {name} has no value for {missing}; pass it in values")
                return float(e)

            object.__setattr__(numeric, name, _walk(value, to_float))
        return numeric


def _walk(value, fn):
    """Apply fn to every SymPy expression in a value or nested tuple of values."""
    if isinstance(value, tuple):
        return tuple(_walk(v, fn) for v in value)
    return fn(value) if isinstance(value, sp.Basic) else value


def _symbol_map(symbols: set[sp.Symbol], values: dict) -> dict:
    by_name = {s.name: s for s in symbols}
    mapping = {}
    for key, value in values.items():
        if isinstance(key, sp.Symbol):
            if key.name == "h":
                key = STEP_SIZE
            mapping[key] = exact(value)
        elif key in by_name:
            mapping[by_name[key]] = exact(value)
        elif key == "h":
            mapping[STEP_SIZE] = exact(value)
        else:
            raise ValueError(f"no hyperparameter symbol named {key!r}; the rule has {sorted(by_name)}")
    return mapping
