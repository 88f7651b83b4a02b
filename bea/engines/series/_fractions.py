"""QQ(hyperparameters): exact rational functions on FLINT's multivariate polynomials.

The engines' coefficients are rational functions of the hyperparameters (beta, rho, eps, ...):
the slow manifold of a rule with memory divides by 1 - beta, Adam's preconditioner by eps.
SymPy's sparse fraction field keeps them canonical by a gcd after every operation, in pure
Python (heuristic gcd); profiles of heavy ball and Adam spent 60-80 % of their time there.
`RationalFunctionField` is the same field, canonical in the same way, with numerators and
denominators in FLINT's ``fmpz_mpoly`` (python-flint; Hart et al., FLINT,
https://flintlib.org) and the classic reduced-form formulas that keep the gcds small
(Henrici 1956, "A subroutine for computations with rational numbers", J. ACM 3(1),
doi:10.1145/320815.320818; Knuth, TAOCP vol. 2, 4.5.1):

    a/b + c/d = (a (d/g) + c (b/g)) / g2  over  (b/g) (d/g2)   with g = gcd(b, d),
                g2 = gcd(numerator, g),
    (a/b) (c/d) = (a/g1)(c/g2) / ((b/g2)(d/g1))  with g1 = gcd(a, d), g2 = gcd(c, b).

An element is n/d with gcd(n, d) = 1 (integer content included) and the leading coefficient
of d positive, so equal elements have equal (n, d) and zero tests are exact. The field is a
SymPy `Field` domain, so `PolyRing(params, field)` (the concrete engine's polynomials in the
parameters over QQ(constants)) works on it unchanged; SymPy expressions meet it only at the
boundary (`from_sympy`, `to_sympy`).
"""

from __future__ import annotations

from fractions import Fraction
from numbers import Rational as _RationalNumber

import flint
import sympy as sp
from sympy.polys.domains.field import Field
from sympy.polys.domains.simpledomain import SimpleDomain

__all__ = ["RationalFunction", "RationalFunctionField", "rational_function_field"]


class RationalFunction:
    """n/d in lowest terms, n and d `flint.fmpz_mpoly` of one context, lc(d) > 0."""

    __slots__ = ("field", "numer", "denom")

    def __init__(self, field: RationalFunctionField, numer, denom):
        self.field = field
        self.numer = numer
        self.denom = denom

    # -- construction -------------------------------------------------------------------
    @classmethod
    def _reduced(cls, field, numer, denom):
        if numer.is_zero():
            return field.zero
        if not denom.is_one():
            g = numer.gcd(denom)
            if not g.is_one():
                numer, denom = numer / g, denom / g
            if denom.leading_coefficient() < 0:
                numer, denom = -numer, -denom
        return cls(field, numer, denom)

    def _coerce(self, other):
        if isinstance(other, RationalFunction):
            if other.field is not self.field:
                raise TypeError("rational functions of different fields")
            return other
        if not isinstance(other, (int, Fraction, _RationalNumber, sp.Rational)) and not (
                hasattr(other, "numerator") and hasattr(other, "denominator")):
            return None  # a polynomial over this field, or anything else: its own operators decide
        return self.field.convert(other)

    # -- arithmetic ---------------------------------------------------------------------
    def __add__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        a, b, c, d = self.numer, self.denom, other.numer, other.denom
        if b.is_one() and d.is_one():
            n = a + c
            return self.field.zero if n.is_zero() else RationalFunction(self.field, n, b)
        if b == d:
            return RationalFunction._reduced(self.field, a + c, b)
        g = b.gcd(d)
        bg, dg = (b, d) if g.is_one() else (b / g, d / g)
        n = a * dg + c * bg
        if n.is_zero():
            return self.field.zero
        if not g.is_one():
            g2 = n.gcd(g)
            if not g2.is_one():
                n, g = n / g2, g / g2
        return RationalFunction(self.field, n, bg * dg * g)  # (b/g)(d/g2) = (b/g)(d/g)(g/g2)

    __radd__ = __add__

    def __neg__(self):
        return RationalFunction(self.field, -self.numer, self.denom)

    def __pos__(self):
        return self

    def __sub__(self, other):
        other = self._coerce(other)
        return NotImplemented if other is None else self + (-other)

    def __rsub__(self, other):
        other = self._coerce(other)
        return NotImplemented if other is None else other + (-self)

    def __mul__(self, other):
        other = self._coerce(other)
        if other is None:
            return NotImplemented
        a, b, c, d = self.numer, self.denom, other.numer, other.denom
        if a.is_zero() or c.is_zero():
            return self.field.zero
        if b.is_one() and d.is_one():
            return RationalFunction(self.field, a * c, b)
        if not d.is_one():
            g1 = a.gcd(d)
            if not g1.is_one():
                a, d = a / g1, d / g1
        if not b.is_one():
            g2 = c.gcd(b)
            if not g2.is_one():
                c, b = c / g2, b / g2
        return RationalFunction(self.field, a * c, b * d)

    __rmul__ = __mul__

    def inverse(self):
        if self.numer.is_zero():
            raise ZeroDivisionError("division by an identically zero rational function")
        numer, denom = self.denom, self.numer
        if denom.leading_coefficient() < 0:
            numer, denom = -numer, -denom
        return RationalFunction(self.field, numer, denom)

    def __truediv__(self, other):
        other = self._coerce(other)
        return NotImplemented if other is None else self * other.inverse()

    def __rtruediv__(self, other):
        other = self._coerce(other)
        return NotImplemented if other is None else other * self.inverse()

    def __pow__(self, exponent: int):
        if not isinstance(exponent, int):
            raise TypeError("rational functions take integer powers only")
        if exponent < 0:
            return self.inverse() ** (-exponent)
        return RationalFunction(self.field, self.numer**exponent, self.denom**exponent)

    # -- comparison ---------------------------------------------------------------------
    def __bool__(self):
        return not self.numer.is_zero()

    def __eq__(self, other):
        if not isinstance(other, RationalFunction):
            try:
                other = self._coerce(other)
            except (TypeError, ValueError, sp.polys.polyerrors.CoercionFailed):
                return NotImplemented
            if other is None:
                return NotImplemented
        return self.numer == other.numer and self.denom == other.denom

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self):
        constant = self.constant()
        if constant is not None:  # equal to a number: hash like it (F(1) == 1, so hash(F(1)) == hash(1))
            return hash(constant)
        return hash((tuple(self.numer.to_dict().items()), tuple(self.denom.to_dict().items())))

    def constant(self) -> Fraction | None:
        """The value as a Fraction when the element is a number, else None."""
        if self.numer.is_constant() and self.denom.is_constant():
            return Fraction(int(self.numer.leading_coefficient()) if not self.numer.is_zero() else 0,
                            int(self.denom.leading_coefficient()))
        return None

    def __repr__(self):
        return f"({self.numer})/({self.denom})" if not self.denom.is_one() else f"{self.numer}"


class RationalFunctionField(Field, SimpleDomain):
    """QQ(symbols) on FLINT, a SymPy domain (see the module docstring). Use `rational_function_field`."""

    dtype = RationalFunction
    is_Exact = True
    is_Numerical = False
    has_assoc_Ring = False
    has_assoc_Field = True
    is_FractionField = is_Frac = False  # not SymPy's FracField: its methods would expect PolyElements

    def __init__(self, symbols):
        self.symbols = tuple(symbols)
        self.gens = self.symbols
        self.ctx = flint.fmpz_mpoly_ctx.get(tuple(str(s) for s in self.symbols), "lex")
        self._sympy_field = sp.QQ.frac_field(*self.symbols)  # for conversions at the boundary only
        self._one_poly = self.ctx.from_dict({(0,) * len(self.symbols): 1})
        self.zero = RationalFunction(self, self.ctx.from_dict({}), self._one_poly)
        self.one = RationalFunction(self, self._one_poly, self._one_poly)
        self._converted: dict = {}
        self.domain = sp.QQ

    def __eq__(self, other):
        return isinstance(other, RationalFunctionField) and self.symbols == other.symbols

    def __hash__(self):
        return hash((type(self).__name__, self.symbols))

    def __str__(self):
        return "QQ(" + ", ".join(map(str, self.symbols)) + ") [flint]"

    __repr__ = __str__

    def new(self, element):
        return self.convert(element)

    def of_type(self, element) -> bool:
        return isinstance(element, RationalFunction) and element.field is self

    # -- numbers ------------------------------------------------------------------------
    def _from_fraction(self, p: int, q: int) -> RationalFunction:
        if p == 0:
            return self.zero
        if q < 0:
            p, q = -p, -q
        from math import gcd

        g = gcd(p, q)
        p, q = p // g, q // g
        return RationalFunction(self, self._one_poly * p, self._one_poly * q)

    def convert(self, element, base=None):
        if isinstance(element, RationalFunction):
            if element.field is self:
                return element
            return self.from_sympy(element.field.to_sympy(element))
        if isinstance(element, bool):
            element = int(element)
        if isinstance(element, int):
            return self._from_fraction(element, 1)
        if isinstance(element, (Fraction, _RationalNumber)) and not isinstance(element, sp.Basic):
            return self._from_fraction(int(element.numerator), int(element.denominator))
        if isinstance(element, sp.Rational):
            return self._from_fraction(int(element.p), int(element.q))
        if isinstance(element, sp.Basic):
            return self.from_sympy(element)
        if hasattr(element, "numerator") and hasattr(element, "denominator"):  # QQ's dtype (PythonMPQ, fmpq)
            return self._from_fraction(int(element.numerator), int(element.denominator))
        try:
            return self.from_sympy(sp.sympify(element))
        except (sp.SympifyError, TypeError) as exc:
            raise sp.polys.polyerrors.CoercionFailed(f"cannot convert {element!r} to {self}") from exc

    def from_sympy(self, expr) -> RationalFunction:
        expr = sp.sympify(expr)
        if expr.is_Rational:
            return self._from_fraction(int(expr.p), int(expr.q))
        cached = self._converted.get(expr)
        if cached is None:
            value = self._sympy_field.from_sympy(expr)  # raises CoercionFailed outside QQ(symbols)
            cached = RationalFunction._reduced(self, *self._to_flint(value.numer, value.denom))
            self._converted[expr] = cached
        return cached

    def _to_flint(self, numer, denom):
        """Two PolyElements over QQ -> fmpz_mpoly numerator and denominator (denominators cleared)."""
        scale_n, numer = numer.clear_denoms()
        scale_d, denom = denom.clear_denoms()
        n = self.ctx.from_dict({m: int(c) for m, c in numer.terms()}) * int(scale_d)
        d = self.ctx.from_dict({m: int(c) for m, c in denom.terms()}) * int(scale_n)
        return n, d

    def to_sympy(self, element: RationalFunction) -> sp.Expr:
        field = self._sympy_field.field
        ground = field.ring.domain
        numer = field.ring.from_dict({m: ground(int(c)) for m, c in element.numer.to_dict().items()})
        denom = field.ring.from_dict({m: ground(int(c)) for m, c in element.denom.to_dict().items()})
        return self._sympy_field.to_sympy(field.new(numer, denom))

    def from_QQ(self, element, base=None):
        return self._from_fraction(int(element.numerator), int(element.denominator))

    from_QQ_python = from_QQ_gmpy = from_ZZ = from_ZZ_python = from_ZZ_gmpy = from_QQ

    # -- the Field interface SymPy's polynomial rings use ---------------------------------
    def is_zero(self, element) -> bool:
        return not element

    def is_one(self, element) -> bool:
        return element == self.one

    # Signs (SymPy's printers ask): known for numbers only; a rational function of symbols has none.
    def is_negative(self, element) -> bool:
        constant = element.constant()
        return constant is not None and constant < 0

    def is_positive(self, element) -> bool:
        constant = element.constant()
        return constant is not None and constant > 0

    def is_nonnegative(self, element) -> bool:
        constant = element.constant()
        return constant is not None and constant >= 0

    def is_nonpositive(self, element) -> bool:
        constant = element.constant()
        return constant is not None and constant <= 0

    def quo(self, a, b):
        return a / b

    exquo = quo

    def rem(self, a, b):
        return self.zero

    def div(self, a, b):
        return a / b, self.zero

    def numer(self, element):
        return element

    def denom(self, element):
        return self.one

    def get_field(self):
        return self

    def characteristic(self):
        return 0


def rational_function_field(symbols):
    """QQ(symbols) for the engines' coefficients: FLINT-backed, or SymPy's QQ when there are no symbols."""
    symbols = tuple(sorted(symbols, key=str))
    return RationalFunctionField(symbols) if symbols else sp.QQ
