"""Exact coefficient algebras for the engine.

Every quantity the engine manipulates is a function of the parameters theta
(and of constants: data, hyperparameters). Two exact representations are
offered behind one small interface:

* `PolynomialAlgebra`: sparse multivariate polynomials over QQ
  (`sympy.polys.rings`). Canonical, so zero tests are exact, and an order of
  magnitude faster than `Expr` arithmetic. Used whenever the loss, and every
  scalar the rule uses, is a polynomial.
* `ExpressionAlgebra`: general SymPy expressions kept in expanded form with
  targeted `expand` (never `simplify`). Used for every other smooth loss
  (exp, log, tanh, rational functions, ...).

A `NotPolynomialError` from the polynomial algebra makes the engine retry with
the expression algebra; nothing is ever approximated.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy.polys.polyerrors import CoercionFailed, ExactQuotientFailed
from sympy.polys.rings import PolyRing

__all__ = ["Algebra", "ExpressionAlgebra", "NotPolynomialError", "PolynomialAlgebra"]


class NotPolynomialError(Exception):
    """Internal signal: a value is not a polynomial over QQ in the known generators."""


class Algebra:
    """Interface: exact arithmetic on functions of `params`."""

    params: tuple[sp.Symbol, ...]

    def from_expr(self, expr):  # pragma: no cover - interface
        raise NotImplementedError

    def to_expr(self, value) -> sp.Expr:  # pragma: no cover - interface
        raise NotImplementedError

    def diff(self, value, index: int):  # pragma: no cover - interface
        raise NotImplementedError

    def divide(self, value, divisor):  # pragma: no cover - interface
        raise NotImplementedError

    def substitute(self, value, point: Sequence):  # pragma: no cover - interface
        """value(theta -> point), where point holds one element per parameter."""
        raise NotImplementedError

    def mul(self, a, b):
        return a * b

    @property
    def zero(self):
        return self.from_expr(sp.S.Zero)

    @property
    def identity(self) -> tuple:
        """The parameters themselves, theta, as elements."""
        return tuple(self.from_expr(p) for p in self.params)

    def is_zero(self, value) -> bool:
        return not value


class PolynomialAlgebra(Algebra):
    """Sparse polynomials over QQ in the parameters and every other symbol involved."""

    def __init__(self, params: Sequence[sp.Symbol], constants: Sequence[sp.Symbol] = ()):
        self.params = tuple(params)
        extra = tuple(c for c in constants if c not in self.params)
        self.ring = PolyRing(self.params + extra, sp.QQ)
        self._param_gens = self.ring.gens[: len(self.params)]

    def from_expr(self, expr):
        expr = sp.sympify(expr)
        if isinstance(expr, sp.Float):
            raise NotPolynomialError("floats are not exact")
        try:
            return self.ring.from_expr(expr)
        except (CoercionFailed, ValueError, TypeError) as exc:
            raise NotPolynomialError(str(exc)) from None

    def to_expr(self, value) -> sp.Expr:
        return self.ring.to_sympy(value) if hasattr(self.ring, "to_sympy") else value.as_expr()

    def diff(self, value, index: int):
        return value.diff(self._param_gens[index])

    def divide(self, value, divisor):
        if not divisor:
            raise ZeroDivisionError("division by an identically zero quantity")
        try:
            return value.exquo(divisor)
        except ExactQuotientFailed:
            raise NotPolynomialError("inexact division") from None

    def substitute(self, value, point):
        return value.compose(list(zip(self._param_gens, point)))


class ExpressionAlgebra(Algebra):
    """General SymPy expressions, kept expanded (products and powers only, not inside exp/log)."""

    _EXPAND = dict(deep=True, mul=True, multinomial=True, power_exp=False, power_base=False, log=False)

    def __init__(self, params: Sequence[sp.Symbol], constants: Sequence[sp.Symbol] = ()):
        self.params = tuple(params)

    def _expand(self, expr):
        return sp.expand(expr, **self._EXPAND)

    def from_expr(self, expr):
        return self._expand(sp.sympify(expr))

    def to_expr(self, value) -> sp.Expr:
        return value

    def diff(self, value, index: int):
        return self._expand(sp.diff(value, self.params[index]))

    def mul(self, a, b):
        return self._expand(a * b)

    def divide(self, value, divisor):
        if divisor == 0:
            raise ZeroDivisionError("division by an identically zero quantity")
        return self._expand(value / divisor)

    def substitute(self, value, point):
        return self._expand(value.xreplace(dict(zip(self.params, point))))

    def is_zero(self, value) -> bool:
        return value == 0
