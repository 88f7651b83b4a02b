"""Exceptions raised by `bea`.

Every error says what is wrong and what to do about it. All derive from
`BeaError`, so a caller (the command line among them) can catch one class.
"""

from __future__ import annotations

__all__ = [
    "ImplicitSolveError",
    "BeaError",
    "InconsistentRuleError",
    "InvalidArrayError",
    "InvalidHyperparameterError",
    "InvalidOrderError",
    "InvalidRuleError",
    "NoStochasticModifiedEquationError",
    "NonSmoothLossError",
    "ParseError",
    "SlowDerivationWarning",
    "UnknownSymbolError",
    "StepFunctionError",
    "UnsupportedError",
]


class BeaError(ValueError):
    """Base class of every error `bea` raises on bad input."""


class NonSmoothLossError(BeaError):
    """The loss contains a function that is not differentiable everywhere (Abs, Max, Heaviside, ...)."""


class UnknownSymbolError(BeaError):
    """A symbol or function in the input is not declared, or a declared parameter is unused."""


class InconsistentRuleError(BeaError):
    """The update rule is not theta + O(h), so no flow (and no modified equation) matches it."""


class InvalidHyperparameterError(BeaError):
    """A hyperparameter is out of its range (beta outside [0, 1), eps <= 0, ...), not finite, or not a number."""


class InvalidRuleError(BeaError, TypeError):
    """A rule is malformed: its step is not a callable of the right signature, a building block is of the
    wrong kind, a declared decay is not a hyperparameter. Also a TypeError, as these were before."""


class InvalidArrayError(BeaError, TypeError):
    """An array given to a lowered function or to `bea.iterate` has the wrong shape or dtype.
    Also a TypeError, as JAX raises for mismatched shapes."""


class InvalidOrderError(BeaError):
    """The requested order is not a non-negative integer, or is beyond the safe range."""


class ParseError(BeaError):
    """An expression given as text could not be parsed."""


class UnsupportedError(BeaError):
    """The input is valid but this view or combination is not available; the message names one that is."""


class SlowDerivationWarning(UserWarning):
    """A derivation is estimated to take minutes (from measured timings); it runs anyway."""


class StepFunctionError(UnsupportedError, TypeError):
    """A user's step function failed on the engine's exact series (a NumPy, JAX or math function, a method
    arrays have and series do not). Also a TypeError, so the coordinate-free view can try its next engine."""


class ImplicitSolveError(BeaError):
    """The numeric solve of an implicit step (`bea.rules.fixed_point`) did not converge: h is too large for it."""


class NoStochasticModifiedEquationError(BeaError):
    """No SDE driven by Brownian motion matches a stochastic rule's one-step law at the order asked: the modified
    generator has terms of differential order >= 3 there. The message names the order and the term;
    `allow_generator=True` returns the generator series anyway."""
