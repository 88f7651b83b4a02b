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

from .._errors import InconsistentRuleError, UnknownSymbolError, UnsupportedError
from ._algebra import ExpressionAlgebra
from ._jet import ScalarSeries
from ._trees import _cuts, _sort, order, trees_up_to

__all__ = ["bseries_modified_field"]

_IDENTITY = None  # key of theta itself in a TreeVector


_SCALARS = ExpressionAlgebra(())  # coefficients: SymPy expressions in the hyperparameters


def _hpoly(coefficients) -> ScalarSeries:
    return ScalarSeries(_SCALARS, [sp.sympify(c) for c in coefficients])


def _is_zero(series: ScalarSeries) -> bool:
    return all(c == 0 for c in series.coeffs)


class TreeVector:
    """theta * c_theta + sum_t k_t(h) F(t)/sigma(t), keyed by tree (None for theta)."""

    __array_priority__ = 1000
    is_vector = True  # scalars defer to us in products

    def __init__(self, terms: dict, n: int):
        self.terms = {k: v for k, v in terms.items() if not _is_zero(v)}
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
        scalar = ScalarSeries.coerce(other, _SCALARS, self.n)
        return TreeVector({k: v * scalar for k, v in self.terms.items()}, self.n)

    __rmul__ = __mul__

    def __truediv__(self, other):
        scalar = ScalarSeries.coerce(other, _SCALARS, self.n)
        return TreeVector({k: v / scalar for k, v in self.terms.items()}, self.n)

    def increments(self):
        base = self.terms.get(_IDENTITY)
        if base is None or base.coeffs[0] != 1 or any(x != 0 for x in base.coeffs[1:]):
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
            if v.coeffs[0] != 0:
                raise UnknownSymbolError(
                    "an evaluation point moves by O(1) (e.g. SAM with an independent radius rho); "
                    "the coordinate-free view needs increments of order h: tie it to the step (rho = c*h)"
                )
        support = list(inc)
        out: dict = {}
        for m in range(self.n + 1):
            for children in combinations_with_replacement(range(len(support)), m):
                weight = _hpoly([1] + [0] * self.n)
                for i in children:
                    weight = weight * inc[support[i]]
                    if _is_zero(weight):
                        break
                if _is_zero(weight):
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
        raise UnsupportedError(
            "the coordinate-free view of rules with several losses (colored trees) is not available yet; "
            "derive on concrete losses with losses=[...] and params=[...]"
        )


def bseries_modified_field(rule, order_: int) -> dict:
    """{tree: [coefficient of h^1, ..., h^{order+1}] of h f~} for a gradient rule."""
    n = order_ + 1
    for guard in range(0, 4):
        m = n + guard
        theta = TreeVector({_IDENTITY: _hpoly([1] + [0] * m)}, m)
        h = _hpoly([0, 1] + [0] * (m - 1))
        phi = rule.step(theta, TreeOracle(m), h)
        if not isinstance(phi, TreeVector):
            raise InconsistentRuleError(f"the step of {rule.name} did not return the parameter vector")
        if phi.valid > n:
            break
    base = phi.terms.get(_IDENTITY)
    if base is None or base.coeffs[0] != 1 or any(x != 0 for x in base.coeffs[1:]):
        raise InconsistentRuleError(f"the step of {rule.name} is not theta + O(h)")
    a = {t: _hpoly(v.coeffs[: n + 1]) for t, v in phi.terms.items() if t is not _IDENTITY}
    largest = max((order(t) for t in a), default=1)
    b: dict = {}
    lie: dict = {}
    zero = _hpoly([0] * (n + 1))
    for t in trees_up_to(largest * n):
        total = zero
        for k in range(2, n + 1):  # each factor of b is O(h): L_k = O(h^k)
            value = zero
            for root_part, cut_off in _cuts(t):
                prev = b.get(root_part) if k == 2 else lie.get((k - 1, root_part))
                if prev is not None and cut_off in b:
                    value = value + prev * b[cut_off]
            if not _is_zero(value):
                lie[(k, t)] = value
                total = total + value * sp.Rational(1, factorial(k))
        coefficient = a.get(t, zero) - total
        if not _is_zero(coefficient):
            b[t] = coefficient
    return {t: v.coeffs[1:] for t, v in b.items()}
