"""Truncated power series in the step size h, with exact coefficients.

An update rule's step function is written once, with ordinary arithmetic
(`theta - h * grad(theta)`). The engine runs it on these objects instead of
arrays: `theta` becomes the `VectorSeries` (theta, 0, 0, ...), `h` the
`ScalarSeries` (0, 1, 0, ...), and every operation is carried out on the
coefficients of h^0, ..., h^N (N = order + 1), discarding higher powers. The
result is the step expansion Phi_h(theta) = theta + h d_1 + ... + h^N d_N.

Scalars that are SymPy expressions may contain the step-size symbol h
(e.g. SAM's ascent radius rho = c h); they are converted to series exactly.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import sympy as sp

from ._algebra import Algebra, NotPolynomialError

__all__ = ["ScalarSeries", "VectorSeries", "STEP_SIZE"]

#: The step-size symbol h used by every rule and every result.
STEP_SIZE = sp.Symbol("h", positive=True)


class _Series:
    __slots__ = ("algebra", "coeffs", "valid")
    __array_priority__ = 1000  # win against NumPy scalars in mixed arithmetic

    def __init__(self, algebra: Algebra, coeffs: Sequence, valid: int | None = None):
        self.algebra = algebra
        self.coeffs = list(coeffs)
        # How many leading coefficients are exact. Dividing by a series that vanishes at
        # h = 0 (a finite difference with step c h) loses the top ones; the engine then
        # re-expands with more orders instead of returning a wrong coefficient.
        self.valid = len(self.coeffs) if valid is None else valid

    @property
    def order(self) -> int:
        """Highest power of h kept."""
        return len(self.coeffs) - 1


class ScalarSeries(_Series):
    """c_0 + c_1 h + ... + c_N h^N with exact scalar coefficients (functions of theta)."""

    @classmethod
    def coerce(cls, value, algebra: Algebra, order: int) -> ScalarSeries:
        """Convert a number or SymPy expression (polynomial in h) to a series."""
        if isinstance(value, ScalarSeries):
            return value
        if isinstance(value, VectorSeries):
            raise TypeError("expected a scalar, got a vector series")
        if isinstance(value, float):
            raise TypeError(
                f"the float {value!r} reached the exact engine; use sympy.Rational or an integer "
                "(bea converts floats given as hyperparameters to exact decimals for you)"
            )
        expr = sp.sympify(value)
        zero = algebra.zero
        if STEP_SIZE not in expr.free_symbols:
            return cls(algebra, [algebra.from_expr(expr)] + [zero] * order)
        expr = sp.expand(expr)
        if not expr.is_polynomial(STEP_SIZE):
            raise TypeError(f"a scalar of the rule, {expr}, is not a polynomial in the step size h")
        poly = sp.Poly(expr, STEP_SIZE)
        coeffs = [zero] * (order + 1)
        for (power,), coeff in poly.terms():
            if power <= order:
                coeffs[power] = algebra.from_expr(coeff)
        return cls(algebra, coeffs)

    def _coerce(self, other) -> ScalarSeries:
        return ScalarSeries.coerce(other, self.algebra, self.order)

    def __add__(self, other):
        if isinstance(other, VectorSeries):
            return NotImplemented
        other = self._coerce(other)
        return ScalarSeries(
            self.algebra, [a + b for a, b in zip(self.coeffs, other.coeffs)], min(self.valid, other.valid)
        )

    __radd__ = __add__

    def __neg__(self):
        return ScalarSeries(self.algebra, [-a for a in self.coeffs], self.valid)

    def __sub__(self, other):
        if isinstance(other, VectorSeries):
            return NotImplemented
        return self + (-self._coerce(other))

    def __rsub__(self, other):
        return self._coerce(other) - self

    def __mul__(self, other):
        if getattr(other, "is_vector", False):
            return other * self
        other = self._coerce(other)
        return ScalarSeries(
            self.algebra, _cauchy(self.algebra, self.coeffs, other.coeffs), min(self.valid, other.valid)
        )

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, VectorSeries):
            return NotImplemented
        other = self._coerce(other)
        try:
            quotient, lost = _divide(self.algebra, self.coeffs, other.coeffs)
        except NotPolynomialError as exc:
            if exc.rational or self.algebra.is_zero(other.coeffs[0]):
                raise
            return self * other._real_power(sp.Integer(-1))  # 1/head as an atom of the algebra
        return ScalarSeries(self.algebra, quotient, min(self.valid, other.valid) - lost)

    def __rtruediv__(self, other):
        return self._coerce(other) / self

    def __pow__(self, exponent):
        exponent = _exact_exponent(exponent)
        if exponent.is_Integer and exponent >= 0:
            result = self._coerce(1)
            for _ in range(int(exponent)):
                result = result * self
            return result
        return self._real_power(exponent)

    def sqrt(self) -> ScalarSeries:
        """The principal square root, c_0 > 0 (used by RMSProp and Adam)."""
        return self._real_power(sp.Rational(1, 2))

    def _real_power(self, exponent: sp.Rational) -> ScalarSeries:
        """a^r = a_0^r (1 + u)^r with u = (a - a_0)/a_0 = O(h): the binomial series, exactly."""
        algebra = self.algebra
        head = self.coeffs[0]
        if algebra.is_zero(head):
            raise ZeroDivisionError(
                f"the power {exponent} of a quantity that vanishes at h = 0 has no power series in h "
                "(a square root or division by a moment that is zero on the flow, e.g. eps = 0)"
            )
        head_expr = algebra.to_expr(head)
        base_power = algebra.from_expr_or_seed(head_expr**exponent)
        inverse = algebra.from_expr_or_seed(1 / head_expr)
        tail = ScalarSeries(algebra, [algebra.zero] + self.coeffs[1:], self.valid)
        u = tail * ScalarSeries.coerce(0, algebra, self.order)._with_head(inverse)
        total = self._coerce(1)
        power = self._coerce(1)
        for k in range(1, self.order + 1):
            power = power * u
            total = total + power * sp.binomial(exponent, k)
        return total * ScalarSeries.coerce(0, algebra, self.order)._with_head(base_power)

    def _with_head(self, head) -> ScalarSeries:
        return ScalarSeries(self.algebra, [head] + self.coeffs[1:], self.valid)


class VectorSeries(_Series):
    """v_0 + v_1 h + ... + v_N h^N, each v_k a tuple with one exact element per parameter."""

    @classmethod
    def constant(cls, algebra: Algebra, vector: Sequence, order: int) -> VectorSeries:
        zero = tuple(algebra.zero for _ in vector)
        return cls(algebra, [tuple(vector)] + [zero] * order)

    @property
    def dim(self) -> int:
        return len(self.coeffs[0])

    @property
    def shape(self) -> tuple[int]:
        return (self.dim,)

    def __len__(self) -> int:
        return self.dim

    def component(self, i: int) -> ScalarSeries:
        return ScalarSeries(self.algebra, [c[i] for c in self.coeffs], self.valid)

    def __getitem__(self, i: int) -> ScalarSeries:
        return self.component(i)

    @classmethod
    def stack(cls, components: Sequence[ScalarSeries]) -> VectorSeries:
        """Build a vector from scalar series (one per parameter)."""
        algebra = components[0].algebra
        return cls(
            algebra,
            [tuple(c.coeffs[k] for c in components) for k in range(len(components[0].coeffs))],
            min(c.valid for c in components),
        )

    is_vector = True  # scalars defer to vectors in products

    def _check(self, other: VectorSeries):
        if other.dim != self.dim or other.order != self.order:
            raise ValueError(f"vector series of dimension {other.dim} does not match dimension {self.dim}")

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:  # lets sum() start from 0
            return self
        if isinstance(other, (numbers.Number, sp.Expr, ScalarSeries)):  # broadcast, as NumPy does
            scalar = ScalarSeries.coerce(other, self.algebra, self.order)
            return VectorSeries.stack([self.component(i) + scalar for i in range(self.dim)])
        if not isinstance(other, VectorSeries):
            return NotImplemented
        self._check(other)
        return VectorSeries(
            self.algebra,
            [tuple(x + y for x, y in zip(a, b)) for a, b in zip(self.coeffs, other.coeffs)],
            min(self.valid, other.valid),
        )

    __radd__ = __add__

    def __neg__(self):
        return VectorSeries(self.algebra, [tuple(-x for x in a) for a in self.coeffs], self.valid)

    def __sub__(self, other):
        if not isinstance(other, (VectorSeries, numbers.Number, sp.Expr, ScalarSeries)):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        algebra = self.algebra
        if isinstance(other, VectorSeries):  # Hadamard product, as NumPy would do
            self._check(other)
            return VectorSeries.stack([self.component(i) * other.component(i) for i in range(self.dim)])
        scalar = ScalarSeries.coerce(other, algebra, self.order)
        nonzero = [k for k, c in enumerate(scalar.coeffs) if not algebra.is_zero(c)]
        zero = algebra.zero
        out = [[zero] * self.dim for _ in self.coeffs]
        for k in nonzero:  # scalars are usually sparse (h, c h, a constant): skip empty products
            c = scalar.coeffs[k]
            for j in range(len(self.coeffs) - k):
                row = out[j + k]
                for i, x in enumerate(self.coeffs[j]):
                    if not algebra.is_zero(x):
                        row[i] = row[i] + algebra.mul(c, x)
        return VectorSeries(algebra, [tuple(r) for r in out], min(self.valid, scalar.valid))

    __rmul__ = __mul__

    def __pow__(self, exponent):
        return VectorSeries.stack([self.component(i) ** exponent for i in range(self.dim)])

    def sqrt(self) -> VectorSeries:
        """Element-wise principal square root."""
        return VectorSeries.stack([self.component(i).sqrt() for i in range(self.dim)])

    def __rtruediv__(self, other):
        scalar = ScalarSeries.coerce(other, self.algebra, self.order)
        return VectorSeries.stack([scalar / self.component(i) for i in range(self.dim)])

    def __truediv__(self, other):
        if isinstance(other, VectorSeries):
            self._check(other)
            return VectorSeries.stack([self.component(i) / other.component(i) for i in range(self.dim)])
        scalar = ScalarSeries.coerce(other, self.algebra, self.order)
        return VectorSeries.stack([self.component(i) / scalar for i in range(self.dim)])


def _exact_exponent(exponent) -> sp.Rational:
    if isinstance(exponent, float):
        exponent = sp.Rational(repr(float(exponent)))
    exponent = sp.sympify(exponent)
    if not exponent.is_Rational:
        raise TypeError(f"series powers must be rational numbers, got {exponent}")
    return exponent


def _cauchy(algebra: Algebra, a: Sequence, b: Sequence) -> list:
    """Truncated product of two coefficient lists of equal length."""
    n = len(a)
    zero = algebra.zero
    out = [zero] * n
    nz_a = [i for i in range(n) if not algebra.is_zero(a[i])]
    nz_b = [j for j in range(n) if not algebra.is_zero(b[j])]
    for i in nz_a:
        for j in nz_b:
            if i + j < n:
                out[i + j] = out[i + j] + algebra.mul(a[i], b[j])
    return out


def _divide(algebra: Algebra, num: Sequence, den: Sequence) -> tuple[list, int]:
    """Truncated quotient num/den and the number of top coefficients it could not determine.

    den may start with s zeros if num starts with at least as many; the top s
    coefficients of the quotient are then unknown (reported, never guessed).
    """
    n = len(num)
    shift = next((k for k, c in enumerate(den) if not algebra.is_zero(c)), None)
    if shift is None:
        raise ZeroDivisionError("division by a series that is identically zero")
    if any(not algebra.is_zero(c) for c in num[:shift]):
        raise ZeroDivisionError("division by a series that vanishes at h = 0, with a numerator that does not")
    num = list(num[shift:]) + [algebra.zero] * shift
    den = list(den[shift:]) + [algebra.zero] * shift
    quotient = []
    for k in range(n):
        acc = num[k]
        for j in range(k):
            if not algebra.is_zero(den[k - j]) and not algebra.is_zero(quotient[j]):
                acc = acc - algebra.mul(quotient[j], den[k - j])
        quotient.append(algebra.divide(acc, den[0]))
    return quotient, shift
