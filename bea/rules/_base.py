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
import math
import numbers
from typing import Any, ClassVar

import sympy as sp

from .._errors import InvalidHyperparameterError, UnknownSymbolError
from ..engines.series._jet import STEP_SIZE

__all__ = ["Rule", "exact"]


def exact(value: Any, what: str = "a hyperparameter") -> sp.Expr:
    """Convert a hyperparameter to an exact SymPy expression (floats by their decimal repr).

    Strings are parsed with every name a symbol (`"beta"` is the symbol beta, not SymPy's beta
    function). Booleans, non-finite or complex numbers and objects that are not numbers or
    expressions raise `InvalidHyperparameterError` (its message starts with `what`).
    """
    if isinstance(value, bool):
        raise InvalidHyperparameterError(f"{what} cannot be a boolean ({value!r}); give a number")
    if isinstance(value, float):  # also NumPy's float64, whose repr is 'np.float64(...)'
        if not math.isfinite(value):
            raise InvalidHyperparameterError(f"{what} must be finite, got {value!r}")
        return sp.Rational(repr(float(value)))
    if isinstance(value, numbers.Number) and not isinstance(value, sp.Basic):
        if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
            raise InvalidHyperparameterError(f"{what} must be real, got {value!r}")
        if not math.isfinite(value):
            raise InvalidHyperparameterError(f"{what} must be finite, got {value!r}")
        return sp.nsimplify(value, rational=True)
    if isinstance(value, str):
        from .._parse import parse_expression

        expr = parse_expression(value)
        # names that mean a non-finite number would otherwise become symbols and skip every range check
        if {str(s) for s in expr.free_symbols} & {"inf", "infinity", "nan", "oo", "zoo"}:
            raise InvalidHyperparameterError(f"{what} must be finite, got {value!r}")
    else:
        try:
            expr = sp.sympify(value, strict=True)
        except (sp.SympifyError, TypeError, ValueError):
            raise InvalidHyperparameterError(
                f"{what} must be a number or a SymPy expression, got {value!r} "
                f"(of type {type(value).__name__})"
            ) from None
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixBase) or expr.is_Boolean:
        raise InvalidHyperparameterError(f"{what} must be a scalar expression, got {value!r}")
    if expr.has(sp.nan, sp.oo, -sp.oo, sp.zoo):
        raise InvalidHyperparameterError(f"{what} must be finite, got {expr}")
    if expr.has(sp.I):
        raise InvalidHyperparameterError(f"{what} must be real, got {expr}")
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
                scalar = isinstance(field.default, (numbers.Number, sp.Basic)) and not isinstance(field.default, bool)
                if isinstance(value, (numbers.Number, sp.Basic, str)) or scalar:
                    if isinstance(value, str) and field.metadata.get("choice"):
                        continue
                    object.__setattr__(self, field.name, exact(value, f"hyperparameter {field.name} of {self.name}"))
        self.validate()

    def validate(self) -> None:
        """Check the hyperparameters' invariants (override); raise `InvalidHyperparameterError` with advice."""

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
                    raise UnknownSymbolError(
                        f"hyperparameter {name} of {self.name} has no value for {missing}; pass it in values "
                        f"(e.g. values={{'{sorted(map(str, e.free_symbols))[0]}': ...}})"
                    )
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
        what = f"the value of {key}"
        if isinstance(key, sp.Symbol):
            if key.name == "h":
                key = STEP_SIZE
            mapping[key] = exact(value, what)
        elif key in by_name:
            mapping[by_name[key]] = exact(value, what)
        elif key == "h":
            mapping[STEP_SIZE] = exact(value, what)
        else:
            raise UnknownSymbolError(f"no hyperparameter symbol named {key!r}; the rule has {sorted(by_name)}")
    return mapping
