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

from ._fractions import rational_function_field
from ._relations import AtomRelations

__all__ = ["Algebra", "DifferentialAlgebra", "ExpressionAlgebra", "NotPolynomialError", "PolynomialAlgebra"]


class NotPolynomialError(Exception):
    """Internal signal: a value is not a polynomial over QQ in the known generators.

    `seeds` names expressions whose atoms, added up front, would make it one.
    """

    def __init__(self, message: str = "", seeds=(), rational: bool = False):
        super().__init__(message)
        self.seeds = tuple(seeds)
        # True when a division by a constant (1 - beta, eps) failed: retry over QQ(constants).
        self.rational = rational


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

    def from_expr_or_seed(self, expr):
        """from_expr, but a failure names expr as a seed so the engine retries with its atoms."""
        try:
            return self.from_expr(expr)
        except NotPolynomialError as exc:
            raise NotPolynomialError(str(exc), seeds=[expr], rational=exc.rational) from None

    @property
    def zero(self):
        return self.from_expr(sp.S.Zero)

    @property
    def identity(self) -> tuple:
        """The parameters themselves, theta, as elements."""
        return tuple(self.from_expr(p) for p in self.params)

    def is_zero(self, value) -> bool:
        """A fast test: True only for zero; a value whose atoms cancel only through their relations may read
        as nonzero (see `vanishes`)."""
        return not value

    def vanishes(self, value) -> bool:
        """Exact zero test, relations between atoms included (sqrt(v)^2 = v)."""
        return self.is_zero(value) or sp.expand(self.to_expr(value)) == 0


class PolynomialAlgebra(Algebra):
    """Sparse polynomials in the parameters (and `atoms`) over QQ[constants], or over the
    field QQ(constants) when `rational` is set (rules that divide by 1 - beta, sqrt(eps), ...)."""

    def __init__(self, params: Sequence[sp.Symbol], constants: Sequence[sp.Symbol] = (), *, atoms=(), rational=False):
        self.params = tuple(params)
        extra = tuple(c for c in constants if c not in self.params)
        self.rational = rational
        if rational and extra:
            self.ring = PolyRing(self.params + tuple(atoms), rational_function_field(extra))
        else:
            self.ring = PolyRing(self.params + extra + tuple(atoms), sp.QQ)
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
            constant = all(divisor.degree(g) == 0 for g in self._param_gens) and not self._atom_degree(divisor)
            raise NotPolynomialError("inexact division", rational=constant and not self.rational) from None

    def _atom_degree(self, value) -> bool:
        return False

    def vanishes(self, value) -> bool:
        return not value  # canonical: sparse polynomials without atoms

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


class DifferentialAlgebra(PolynomialAlgebra):
    """Polynomials in the parameters and in transcendental atoms closed under differentiation.

    A smooth loss such as log(1 + exp(-a b)) or tanh(w x) is written as a
    polynomial in its parameters and in atoms g_k (exp(u), tanh(u), 1/v, v^r,
    log(v), sin(u), cos(u), ...); the derivative of a polynomial p(theta, g) is

        d p / d theta_i = dp/dtheta_i + sum_k dp/dg_k * D_i g_k,

    with D_i g_k (the derivative of atom k, again a polynomial in the atoms)
    computed once. This keeps the speed of sparse polynomial arithmetic for the
    usual losses of machine learning. Fractional powers are normalised to an
    exponent in (0, 1) times a power of 1/v so the set of atoms stays finite.
    """

    _MAX_ATOMS = 48

    def __init__(self, params, constants=(), seeds=(), rational=False):
        self.params = tuple(params)
        self._atom_of: dict[sp.Expr, sp.Dummy] = {}
        queue = [a for e in seeds for a in self._atoms(sp.sympify(e))]
        while queue:
            atom = queue.pop()
            if atom in self._atom_of:
                continue
            if len(self._atom_of) >= self._MAX_ATOMS:
                raise NotPolynomialError("too many transcendental atoms")
            self._atom_of[atom] = sp.Dummy(f"g{len(self._atom_of)}")
            for p in self.params:
                queue.extend(a for a in self._atoms(sp.diff(atom, p)) if a not in self._atom_of)
        atoms = list(self._atom_of.items())
        super().__init__(self.params, constants, atoms=tuple(d for _, d in atoms), rational=rational)
        self._atom_exprs = {d: e for e, d in atoms}
        self._relations = None  # built on the first exact zero test
        gens = self.ring.gens
        self._atom_gens = [(gens[self.ring.symbols.index(d)], e) for e, d in atoms]
        # D_i g_k as ring elements: the derivative of every atom, once.
        self._atom_derivs = [
            [self.from_expr(sp.diff(e, p)) for p in self.params] for _, e in self._atom_gens
        ]

    # -- atoms ---------------------------------------------------------------------------------
    def _atoms(self, expr) -> list:
        """Non-polynomial building blocks of expr, normalised (see class docstring)."""
        out = []
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.Function) or (isinstance(node, sp.Pow) and not _is_poly_power(node)):
                out.extend(self._normal_atoms(node))
        return out

    @staticmethod
    def _normal_atoms(node) -> list:
        if isinstance(node, sp.Pow):
            base, exp = node.args
            if exp.is_Integer:  # negative integer power
                return [sp.Pow(base, -1, evaluate=False)]
            if exp.is_Rational:
                frac = exp - sp.floor(exp)
                atoms = [sp.Pow(base, frac)] if frac else []
                if sp.floor(exp) < 0:
                    atoms.append(sp.Pow(base, -1, evaluate=False))
                return atoms
            return [node]
        return [node]

    def _convert(self, expr):
        ring = self.ring
        if self.rational and not expr.is_Number and not (expr.free_symbols & set(self.params)):
            try:  # a function of the constants only: an element of the coefficient field
                return ring.ground_new(ring.domain.from_sympy(expr))
            except (CoercionFailed, ValueError, TypeError):
                pass
        if expr.is_Number:
            if not expr.is_Rational:
                raise NotPolynomialError("floats are not exact")
            return ring.ground_new(ring.domain.from_sympy(expr))
        if expr.is_Symbol:
            if expr in ring.symbols:
                return ring.gens[ring.symbols.index(expr)]
            try:
                return ring.ground_new(ring.domain.from_sympy(expr))
            except (CoercionFailed, ValueError, TypeError):
                raise NotPolynomialError(f"unknown symbol {expr}") from None
        if expr.is_Add:
            return sum((self._convert(a) for a in expr.args), ring.zero)
        if expr.is_Mul:
            out = ring.one
            for a in expr.args:
                out = out * self._convert(a)
            return out
        if isinstance(expr, sp.Pow):
            base, exp = expr.args
            if exp.is_Integer and exp >= 0:
                return self._convert(base) ** int(exp)
            if exp.is_Integer:
                return self._atom(sp.Pow(base, -1, evaluate=False)) ** int(-exp)
            if exp.is_Rational:
                whole, frac = sp.floor(exp), exp - sp.floor(exp)
                out = self._atom(sp.Pow(base, frac)) if frac else ring.one
                if whole > 0:
                    out = out * self._convert(base) ** int(whole)
                elif whole < 0:
                    out = out * self._atom(sp.Pow(base, -1, evaluate=False)) ** int(-whole)
                return out
        return self._atom(expr)

    def _atom_degree(self, value) -> bool:
        return any(value.degree(gen) for gen, _ in self._atom_gens)

    def _atom(self, expr):
        if expr not in self._atom_of:
            raise NotPolynomialError(f"{expr} is outside the closed set of atoms")
        return self.ring.gens[self.ring.symbols.index(self._atom_of[expr])]

    # -- Algebra interface ---------------------------------------------------------------------
    def from_expr(self, expr):
        expr = sp.sympify(expr)
        if not self._atom_of:
            return super().from_expr(expr)
        return self._convert(expr)

    def to_expr(self, value) -> sp.Expr:
        return value.as_expr().xreplace(self._atom_exprs)

    def vanishes(self, value) -> bool:
        """Exact zero test: the canonical form modulo sqrt(w)^2 = w and (1/v) v = 1 (`_relations`), else
        expanded expressions."""
        if not value:
            return True
        if not self._atom_of:
            return False
        if self.relations.certainly_nonzero(value):
            return False
        reduced = self.relations.reduce(value)
        if reduced is None:
            return sp.expand(self.to_expr(value)) == 0
        return not reduced

    @property
    def relations(self) -> AtomRelations:
        """The atoms' relations (sqrt(w)^2 = w, (1/v) v = 1), built on first use."""
        if self._relations is None:
            self._relations = AtomRelations(self.ring, self._atom_gens, self._convert_base)
        return self._relations

    def _convert_base(self, expr):
        return PolynomialAlgebra.from_expr(self, expr)

    def diff(self, value, index: int):
        out = value.diff(self._param_gens[index])
        for (gen, _), derivs in zip(self._atom_gens, self._atom_derivs):
            if derivs[index]:
                partial = value.diff(gen)
                if partial:
                    out = out + partial * derivs[index]
        return out

    def substitute(self, value, point):
        if not self._atom_of:
            return super().substitute(value, point)
        moved = self.to_expr(value).xreplace(dict(zip(self.params, [self.to_expr(p) for p in point])))
        try:
            return self.from_expr(moved)
        except NotPolynomialError as exc:
            raise NotPolynomialError(str(exc), seeds=[moved]) from None


def _is_poly_power(node: sp.Pow) -> bool:
    return node.exp.is_Integer and node.exp >= 0
