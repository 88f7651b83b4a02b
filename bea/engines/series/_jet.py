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
import operator
from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..._errors import UnsupportedError
from ._algebra import Algebra, NotPolynomialError

__all__ = ["STEP_SIZE", "ScalarSeries", "VectorSeries", "array_library_error", "branch_error", "components_error", "numpy_ufunc"]

#: The step-size symbol h used by every rule and every result.
STEP_SIZE = sp.Symbol("h", positive=True)


_NUMPY_ARITHMETIC = {
    np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul, np.true_divide: operator.truediv,
    np.negative: operator.neg, np.power: operator.pow, np.matmul: operator.matmul,
}

_STEP_OPERATIONS = (
    "a step may use arithmetic (+, -, *, /, ** with rational exponents), grad(x), grad.hvp(x, v), "
    "bea.rules.sqrt, bea.rules.dot and bea.rules.norm"
)


class _SympyMisuse(UnsupportedError, sp.SympifyError):
    """A series given to SymPy: a `SympifyError`, so that SymPy's operators return NotImplemented and Python
    falls back to ours (Rational(1, 2) * series), and a `BeaError` that teaches where it surfaces (sympy.sqrt)."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.expr, self.base_exc = None, None

    def __str__(self) -> str:
        return self.args[0]


def numpy_ufunc(ufunc, method, inputs, kwargs):
    """NumPy meeting a quantity of the step: NumPy scalars in arithmetic (np.float64(0.5) * theta) go to the
    plain operators; NumPy functions (np.sqrt) are refused with what a step may use."""
    arithmetic = _NUMPY_ARITHMETIC.get(ufunc)
    if method == "__call__" and arithmetic is not None and not kwargs:
        return arithmetic(*(x.item() if isinstance(x, np.generic) else x for x in inputs))
    raise array_library_error(f"NumPy (numpy.{ufunc.__name__})")


def branch_error() -> UnsupportedError:
    """A step branched on a value of the iteration (shared by every engine's vector and scalar types)."""
    return UnsupportedError(
        "a step branched on a value (if/while/min/max/abs/comparison on a quantity of the iteration): a branch "
        "on values has no power series in h, so it cannot be expanded. Write the branch-free formula that "
        "holds in the region of interest (e.g. clipping by norm when |g| > c: theta - h*c*g/bea.rules.norm(g)); "
        + _STEP_OPERATIONS
    )


def array_library_error(library: str) -> UnsupportedError:
    """A step called a NumPy or JAX function on a quantity of the iteration (shared by every engine)."""
    return UnsupportedError(
        f"a {library} function was applied inside a step; it cannot run on the engine's exact series. Use "
        f"bea.rules.sqrt, bea.rules.dot and bea.rules.norm, which run on arrays and series alike: {_STEP_OPERATIONS}"
    )


def components_error(what: str) -> UnsupportedError:
    """A step read components of the abstract parameter vector of a coordinate-free derivation."""
    return UnsupportedError(
        f"the step reads components of a vector ({what}); in the coordinate-free view the parameter vector "
        "has no fixed dimension, so components, lengths and sums over them have no meaning there. Write inner "
        "products and norms with bea.rules.dot(u, v) (or u @ v) and bea.rules.norm(u), which have a "
        "coordinate-free form, or derive on a concrete loss (loss=..., params=...)"
    )


class _Series:
    __slots__ = ("algebra", "coeffs", "valid")
    __array_priority__ = 1000  # win against NumPy scalars in mixed arithmetic

    # A step runs on these objects instead of arrays; what has no meaning on a power series says so.
    def __bool__(self):
        raise branch_error()

    def _compare(self, other):
        self.__bool__()

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return numpy_ufunc(ufunc, method, inputs, kwargs)

    def _sympy_(self):
        raise _SympyMisuse(
            "a SymPy function was applied to a quantity of the step (sympy.sqrt(...), sympy.exp(...)); the step "
            f"runs on series and on arrays, so use bea.rules.sqrt: {_STEP_OPERATIONS}"
        )

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
        if isinstance(value, float):  # a constant in the step (0.5 * h): the exact decimal it denotes
            value = sp.Rational(repr(float(value)))
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
            if self.coeffs[1:2] and not algebra.is_zero(self.coeffs[1]) and exponent.q != 1:
                raise UnsupportedError(
                    f"the power {exponent} of a quantity that starts at h^1 (such as sqrt(h)) has no power series "
                    "in h: a deterministic rule must be a power series in h; noise of size sqrt(h) is a stochastic "
                    "rule (a modified SDE), not a modified ODE"
                )
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
        self._concrete("shape")
        return (self.dim,)

    def _concrete(self, what: str) -> None:
        """Refuse to read components of the abstract vector of a coordinate-free derivation."""
        if getattr(self.algebra, "abstract_dimension", False):
            raise components_error(what)

    def __len__(self) -> int:
        self._concrete("len")
        return self.dim

    def __iter__(self):
        self._concrete("iteration")
        return (self.component(i) for i in range(self.dim))

    def component(self, i: int) -> ScalarSeries:
        return ScalarSeries(self.algebra, [c[i] for c in self.coeffs], self.valid)

    def __getitem__(self, i: int) -> ScalarSeries:
        self._concrete("indexing")
        return self.component(i)

    def dot(self, other: VectorSeries) -> ScalarSeries:
        """<self, other> = sum_i self_i other_i, a scalar series (`bea.rules.dot`).

        Coordinate-free algebras (`inner` defined) keep <p, q> as a scalar invariant of the coefficients.
        """
        if not isinstance(other, VectorSeries):
            raise UnsupportedError(f"dot(u, v) takes two parameter vectors, got {type(other).__name__}")
        self._check(other)
        inner = getattr(self.algebra, "inner", None)
        if inner is None:
            return sum((self.component(i) * other.component(i) for i in range(1, self.dim)),
                       self.component(0) * other.component(0))
        n = len(self.coeffs)
        out = [self.algebra.zero] * n
        for i, a in enumerate(self.coeffs):
            if self.algebra.is_zero(a[0]):
                continue
            for j, b in enumerate(other.coeffs[: n - i]):
                if not self.algebra.is_zero(b[0]):
                    out[i + j] = out[i + j] + inner(a[0], b[0])
        return ScalarSeries(self.algebra, out, min(self.valid, other.valid))

    __matmul__ = dot

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
