"""Any gradient rule as a B-series: the coordinate-free view beyond Runge-Kutta maps.

A rule built from gradient evaluations and Hessian-vector products at points
theta + (increments) is a B-series method in f = -grad E whose coefficients are
polynomials in h and the hyperparameters (EGR's mu, SAM's c in rho = c h):

    Phi_h(theta) = theta + sum_t a_t(h) F(t)/sigma(t).

The step is run on `TreeVector`s, using (Hairer, Lubich & Wanner, Lemma III.1.9)

    f(theta + sum_t k_t F(t)/sigma(t)) = sum_{u = [t_1..t_m]} (prod_i k_{t_i}) F(u)/sigma(u),

and the modified field h f~ = sum_t b_t(h) F(t)/sigma(t) follows from the same
cut recursion as `_trees.modified_equation_coefficients`, with coefficients in
truncated polynomials of h.
"""

from __future__ import annotations

import numbers
from collections import Counter
from itertools import combinations_with_replacement
from math import factorial

import sympy as sp

from .._errors import InconsistentRuleError, UnknownSymbolError
from ._jet import STEP_SIZE
from ._trees import _cuts, _sort, order, trees_up_to

__all__ = ["bseries_modified_field"]

_IDENTITY = None  # key of theta itself in a TreeVector


class HPoly:
    """c_0 + c_1 h + ... + c_N h^N with SymPy coefficients (hyperparameters allowed)."""

    __slots__ = ("c", "valid")

    def __init__(self, c, valid=None):
        self.c = list(c)
        self.valid = len(self.c) if valid is None else valid

    @classmethod
    def coerce(cls, value, n):
        if isinstance(value, HPoly):
            return value
        if isinstance(value, float):
            raise TypeError("floats cannot enter the exact engine")
        expr = sp.expand(sp.sympify(value))
        if not expr.is_polynomial(STEP_SIZE):
            raise TypeError(f"{expr} is not a polynomial in h")
        poly = sp.Poly(expr, STEP_SIZE)
        out = [sp.S.Zero] * (n + 1)
        for (k,), coeff in poly.terms():
            if k <= n:
                out[k] = coeff
        return cls(out)

    def __add__(self, other):
        other = HPoly.coerce(other, len(self.c) - 1)
        return HPoly([sp.expand(x + y) for x, y in zip(self.c, other.c)], min(self.valid, other.valid))

    __radd__ = __add__

    def __neg__(self):
        return HPoly([-x for x in self.c], self.valid)

    def __sub__(self, other):
        return self + (-HPoly.coerce(other, len(self.c) - 1))

    def __rsub__(self, other):
        return HPoly.coerce(other, len(self.c) - 1) - self

    def __mul__(self, other):
        if isinstance(other, TreeVector):
            return other * self
        other = HPoly.coerce(other, len(self.c) - 1)
        n = len(self.c)
        out = [sp.S.Zero] * n
        for i, x in enumerate(self.c):
            if x != 0:
                for j in range(n - i):
                    if other.c[j] != 0:
                        out[i + j] += x * other.c[j]
        return HPoly([sp.expand(v) for v in out], min(self.valid, other.valid))

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = HPoly.coerce(other, len(self.c) - 1)
        shift = next((k for k, x in enumerate(other.c) if x != 0), None)
        if shift is None:
            raise ZeroDivisionError("division by zero")
        if any(x != 0 for x in self.c[:shift]):
            raise ZeroDivisionError("division by a quantity that vanishes at h = 0")
        num = self.c[shift:] + [sp.S.Zero] * shift
        den = other.c[shift:] + [sp.S.Zero] * shift
        q = []
        for k in range(len(num)):
            acc = num[k] - sum((q[j] * den[k - j] for j in range(k)), sp.S.Zero)
            q.append(sp.expand(sp.cancel(acc / den[0])))
        return HPoly(q, min(self.valid, other.valid) - shift)

    def is_zero(self):
        return all(x == 0 for x in self.c)


class TreeVector:
    """theta * c_theta + sum_t k_t(h) F(t)/sigma(t), keyed by tree (None for theta)."""

    __array_priority__ = 1000

    def __init__(self, terms: dict, n: int):
        self.terms = {k: v for k, v in terms.items() if not v.is_zero()}
        self.n = n

    @property
    def valid(self):
        return min((v.valid for v in self.terms.values()), default=self.n + 1)

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:
            return self
        if not isinstance(other, TreeVector):
            return NotImplemented
        out = dict(self.terms)
        for k, v in other.terms.items():
            out[k] = out[k] + v if k in out else v
        return TreeVector(out, self.n)

    __radd__ = __add__

    def __neg__(self):
        return TreeVector({k: -v for k, v in self.terms.items()}, self.n)

    def __sub__(self, other):
        return self + (-other)

    def __mul__(self, other):
        if isinstance(other, TreeVector):
            raise TypeError("element-wise products of vectors have no coordinate-free (B-series) form")
        scalar = HPoly.coerce(other, self.n)
        return TreeVector({k: v * scalar for k, v in self.terms.items()}, self.n)

    __rmul__ = __mul__

    def __truediv__(self, other):
        scalar = HPoly.coerce(other, self.n)
        return TreeVector({k: v / scalar for k, v in self.terms.items()}, self.n)

    def increments(self):
        base = self.terms.get(_IDENTITY)
        if base is None or base.c[0] != 1 or any(x != 0 for x in base.c[1:]):
            raise UnknownSymbolError(
                "the coordinate-free view needs every evaluation point to be theta plus increments"
            )
        return {k: v for k, v in self.terms.items() if k is not _IDENTITY}


class TreeOracle:
    """grad(x) = -f(x) and grad.hvp(x, v) = -f'(x) v on tree vectors, f = -grad E."""

    def __init__(self, n: int):
        self.n = n

    def _expand(self, x: TreeVector, extra=None) -> TreeVector:
        inc = x.increments()
        # Increments must be O(h) for the Taylor series to be finite at each order.
        for k, v in inc.items():
            if v.c[0] != 0:
                raise UnknownSymbolError(
                    "an evaluation point moves by O(1) (e.g. SAM with an independent radius rho); "
                    "the coordinate-free view needs increments of order h: tie it to the step (rho = c*h)"
                )
        support = list(inc)
        out: dict = {}
        for m in range(self.n + 1):
            for children in combinations_with_replacement(range(len(support)), m):
                weight = HPoly([sp.S.One] + [sp.S.Zero] * self.n)
                for i in children:
                    weight = weight * inc[support[i]]
                    if weight.is_zero():
                        break
                if weight.is_zero():
                    continue
                trees = [support[i] for i in children]
                if extra is None:
                    u = _sort(trees)
                    out[u] = out[u] + weight if u in out else weight
                else:
                    counts = Counter(trees)
                    for s, omega in extra.items():
                        u = _sort(trees + [s])
                        term = weight * omega * (counts[s] + 1)
                        out[u] = out[u] + term if u in out else term
        return TreeVector({k: -v for k, v in out.items()}, self.n)  # grad E = -f

    def __call__(self, x):
        return self._expand(x)

    def hvp(self, x, v):
        if _IDENTITY in v.terms:
            raise UnknownSymbolError("a Hessian applied to theta itself has no B-series form")
        return self._expand(x, extra=dict(v.terms))  # -f'(x) v = H(x) v

    def value(self, x):
        raise UnknownSymbolError("loss values have no B-series form; the coordinate-free view needs grad and hvp only")

    def __getitem__(self, k):
        raise UnknownSymbolError("the coordinate-free view of rules with several losses is not available yet")


def bseries_modified_field(rule, order_: int) -> dict:
    """{tree: [coefficient of h^1, ..., h^{order+1}] of h f~} for a gradient rule."""
    n = order_ + 1
    for guard in range(0, 4):
        m = n + guard
        theta = TreeVector({_IDENTITY: HPoly([sp.S.One] + [sp.S.Zero] * m)}, m)
        h = HPoly([sp.S.Zero, sp.S.One] + [sp.S.Zero] * (m - 1))
        phi = rule.step(theta, TreeOracle(m), h)
        if not isinstance(phi, TreeVector):
            raise InconsistentRuleError(f"the step of {rule.name} did not return the parameter vector")
        if phi.valid > n:
            break
    base = phi.terms.get(_IDENTITY)
    if base is None or base.c[0] != 1 or any(x != 0 for x in base.c[1:]):
        raise InconsistentRuleError(f"the step of {rule.name} is not theta + O(h)")
    a = {t: HPoly(v.c[: n + 1]) for t, v in phi.terms.items() if t is not _IDENTITY}
    largest = max((order(t) for t in a), default=1)
    b: dict = {}
    lie: dict = {}
    zero = HPoly([sp.S.Zero] * (n + 1))
    for t in trees_up_to(largest * n):
        total = zero
        for k in range(2, n + 1):  # each factor of b is O(h): L_k = O(h^k)
            value = zero
            for root_part, cut_off in _cuts(t):
                prev = b.get(root_part) if k == 2 else lie.get((k - 1, root_part))
                if prev is not None and cut_off in b:
                    value = value + prev * b[cut_off]
            if not value.is_zero():
                lie[(k, t)] = value
                total = total + value * sp.Rational(1, factorial(k))
        coefficient = a.get(t, zero) - total
        if not coefficient.is_zero():
            b[t] = coefficient
    return {t: v.c[1:] for t, v in b.items()}
