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
from itertools import combinations_with_replacement, product
from math import factorial

import sympy as sp

from .._errors import InconsistentRuleError, UnknownSymbolError, UnsupportedError
from ._jet import ScalarSeries
from ._trees import _cuts, _sort, order, trees_up_to

__all__ = ["bseries_modified_field"]

_IDENTITY = None  # key of theta itself in a TreeVector


class _RationalFunctions:
    """Coefficients: elements of QQ(hyperparameters) (sympy's sparse fraction field), canonical,
    so zero tests are exact and fast (the slow manifold of momentum divides by 1 - beta)."""

    params = ()

    def __init__(self, symbols=()):
        self.field = sp.QQ.frac_field(*sorted(symbols, key=str)) if symbols else sp.QQ

    def from_expr(self, expr):
        if self.field.of_type(expr):
            return expr
        return self.field.from_sympy(sp.sympify(expr))

    def to_expr(self, value) -> sp.Expr:
        return self.field.to_sympy(value)

    def mul(self, a, b):
        return a * b

    def divide(self, value, divisor):
        if not divisor:
            raise ZeroDivisionError("division by an identically zero quantity")
        return value / divisor

    @property
    def zero(self):
        return self.field.zero

    def is_zero(self, value) -> bool:
        return not value


_SCALARS = _RationalFunctions()


def _hpoly(coefficients) -> ScalarSeries:
    return ScalarSeries(_SCALARS, [_SCALARS.from_expr(c) for c in coefficients])


def _is_zero(series: ScalarSeries) -> bool:
    return all(not c for c in series.coeffs)


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
        if base is None or base.coeffs[0] != 1 or any(x for x in base.coeffs[1:]):
            raise UnknownSymbolError(
                "the coordinate-free view needs every evaluation point to be theta plus increments"
            )
        return {k: v for k, v in self.terms.items() if k is not _IDENTITY}


class TreeOracle:
    """grad(x) = -f(x) and grad.hvp(x, v) = -f'(x) v on tree vectors, f = -grad E."""

    def __init__(self, n: int):
        self.n = n

    def derivative(self, x: TreeVector, vectors=()) -> TreeVector:
        """f^{(m)}(x)[v_1, ..., v_m] for x = theta + increments, f = -grad E.

        With x - theta = sum_d k_d F(d)/sigma(d) and v_i = sum_u w_iu F(u)/sigma(u),
        f^{(m)}(x)[v..] = sum_j f^{(m+j)}(theta)[(x - theta)^j, v..]/j!, and
        f^{(r)}(theta)[F(u_1)/sigma(u_1), ...] = F(U)/sigma(U) prod_u mult_U(u)!
        for the tree U = [u_1, ...] (Hairer, Lubich & Wanner, Lemma III.1.9).
        """
        inc = x.increments()
        # Increments must be O(h) for the Taylor series to be finite at each order.
        for k, v in inc.items():
            if v.coeffs[0]:
                raise UnknownSymbolError(
                    "an evaluation point moves by O(1) (e.g. SAM with an independent radius rho); "
                    "the coordinate-free view needs increments of order h: tie it to the step (rho = c*h)"
                )
        for v in vectors:
            if _IDENTITY in v.terms:
                raise UnknownSymbolError("a derivative applied to theta itself has no B-series form")
        support = list(inc)
        sizes = [order(t) for t in support]  # the coefficient of F(t) in an increment is O(h^|t|)
        choices = list(product(*[list(v.terms.items()) for v in vectors]))
        out: dict = {}
        for m in range(self.n + 1):
            for children in combinations_with_replacement(range(len(support)), m):
                if sum(sizes[i] for i in children) > self.n:
                    continue
                weight = _hpoly([1] + [0] * self.n)
                for i in children:
                    weight = weight * inc[support[i]]
                    if _is_zero(weight):
                        break
                if _is_zero(weight):
                    continue
                trees = [support[i] for i in children]
                below = _multiplicity_factorials(trees)
                for choice in choices:
                    everything = trees + [u for u, _ in choice]
                    term = weight * sp.Rational(_multiplicity_factorials(everything), below)
                    for _, w in choice:
                        term = term * w
                    u = _sort(everything)
                    out[u] = out[u] + term if u in out else term
        return TreeVector(out, self.n)

    def elementary(self, tree, x: TreeVector, cache: dict) -> TreeVector:
        """F(tree)(x) as a tree vector (x = theta + increments)."""
        if tree not in cache:
            cache[tree] = self.derivative(x, [self.elementary(c, x, cache) for c in tree])
        return cache[tree]

    def compose(self, s: TreeVector, x: TreeVector) -> TreeVector:
        """s(x) for s = c theta + sum_t k_t F(t)/sigma(t) and a point x = theta + increments."""
        from ._trees import symmetry

        cache: dict = {}
        total = TreeVector({}, self.n)
        for t, k in s.terms.items():
            total = total + (x * k if t is _IDENTITY else self.elementary(t, x, cache) * (k / symmetry(t)))
        return total

    def __call__(self, x):
        return -self.derivative(x)  # grad E = -f

    def hvp(self, x, v):
        return -self.derivative(x, [v])  # H(x) v = -f'(x) v

    def value(self, x):
        raise UnknownSymbolError("loss values have no B-series form; the coordinate-free view needs grad and hvp only")

    def __getitem__(self, k):
        raise UnsupportedError(
            "the coordinate-free view of rules with several losses (colored trees) is not available yet; "
            "derive on concrete losses with losses=[...] and params=[...]"
        )


def _multiplicity_factorials(trees) -> int:
    out = 1
    for count in Counter(trees).values():
        out *= factorial(count)
    return out


def _memory_step(rule, theta: TreeVector, oracle: TreeOracle, h) -> TreeVector:
    """theta' on the slow manifold of a rule with memory, as a B-series (see `_slow_manifold.settle`)."""
    from ._slow_manifold import settle

    moved, _ = settle(rule, theta, oracle, h, zero_state=lambda: TreeVector({}, theta.n), compose=oracle.compose,
                      vanishes=lambda r: not r.terms, order=theta.n)
    return moved


def bseries_modified_field(rule, order_: int) -> dict:
    """{tree: [coefficient of h^1, ..., h^{order+1}] of h f~} for a gradient rule (SymPy coefficients)."""
    global _SCALARS
    previous, _SCALARS = _SCALARS, _RationalFunctions(rule.free_symbols)
    try:
        field = _bseries_modified_field(rule, order_)
        return {t: [_SCALARS.to_expr(c) for c in v] for t, v in field.items()}
    finally:
        _SCALARS = previous


def _bseries_modified_field(rule, order_: int) -> dict:
    n = order_ + 1
    for guard in range(0, 4):
        m = n + guard
        theta = TreeVector({_IDENTITY: _hpoly([1] + [0] * m)}, m)
        h = _hpoly([0, 1] + [0] * (m - 1))
        oracle = TreeOracle(m)
        phi = _memory_step(rule, theta, oracle, h) if hasattr(rule, "decays") else rule.step(theta, oracle, h)
        if not isinstance(phi, TreeVector):
            raise InconsistentRuleError(f"the step of {rule.name} did not return the parameter vector")
        if phi.valid > n:
            break
    base = phi.terms.get(_IDENTITY)
    if base is None or base.coeffs[0] != 1 or any(x for x in base.coeffs[1:]):
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
