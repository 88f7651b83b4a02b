"""Any gradient rule as a B-series: the coordinate-free view beyond Runge-Kutta maps.

A rule built from gradient evaluations and Hessian-vector products at points
theta + (increments) is a B-series method in f = -grad E whose coefficients are
polynomials in h and the hyperparameters (EGR's mu, SAM's c in rho = c h):

    Phi_h(theta) = theta + sum_t a_t(h) F(t)/sigma(t).

With several losses (SGD steps over batches, games) the trees are coloured by
the field of each node, f_{k,p} = -P_p grad E_k (`_colored_trees`). The step is
run on `TreeVector`s, using (Hairer, Lubich & Wanner, Lemma III.1.9)

    f(theta + sum_t k_t F(t)/sigma(t)) = sum_{u = [t_1..t_m]} (prod_i k_{t_i}) F(u)/sigma(u),

and the modified field h f~ = sum_t b_t(h) F(t)/sigma(t) follows from the same
cut recursion as `_trees.modified_equation_coefficients`, with coefficients in
truncated polynomials of h.
"""

from __future__ import annotations

import numbers
from collections import Counter
from math import factorial

import sympy as sp

from ..._errors import InconsistentRuleError, UnknownSymbolError, UnsupportedError
from ..series._fractions import rational_function_field
from ..series._jet import ScalarSeries, branch_error, components_error, numpy_ufunc
from ..slow_manifold._slow_manifold import Truncations, settle
from ._colored_trees import (
    Colored,
    Label,
    admissible_cuts,
    attachments,
    colored_cuts,
    colored_order,
    colored_symmetry,
    colored_trees_up_to,
    labels_of,
    make,
    to_plain,
)

__all__ = ["NotABSeries", "bseries_modified_field"]

_IDENTITY = None  # key of theta itself in a TreeVector


class NotABSeries(UnsupportedError, TypeError):
    """The step used an operation with no B-series form (element-wise products, roots, inner products):
    the coordinate-free dispatch then runs the element-wise engine (`bea._derive`)."""


class _RationalFunctions:
    """Coefficients: elements of QQ(hyperparameters) (sympy's sparse fraction field), canonical,
    so zero tests are exact and fast (the slow manifold of momentum divides by 1 - beta)."""

    params = ()

    def __init__(self, symbols=()):
        self.field = rational_function_field(symbols)
        self._converted: dict = {}

    def from_expr(self, expr):
        if self.field.of_type(expr):
            return expr
        if expr not in self._converted:  # the rule's scalars (1 - beta, ...) come back every step
            self._converted[expr] = self.field.from_sympy(sp.sympify(expr))
        return self._converted[expr]

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


def _scaled(series: ScalarSeries, q) -> ScalarSeries:
    """series * q for a rational number q, in the coefficient field (no SymPy round trip)."""
    if q == 1:
        return series
    q = _SCALARS.field.convert(sp.Rational(q))
    return ScalarSeries(_SCALARS, [c * q for c in series.coeffs], series.valid)


def _valuation(series: ScalarSeries) -> int:
    """The lowest power of h with a nonzero coefficient (len(coeffs) if none)."""
    return next((i for i, c in enumerate(series.coeffs) if c), len(series.coeffs))


def _is_zero(series: ScalarSeries) -> bool:
    return all(not c for c in series.coeffs)


class TreeVector:
    """theta * c_theta + sum_t k_t(h) F(t)/sigma(t), keyed by coloured tree (None for theta)."""

    __array_priority__ = 1000

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return numpy_ufunc(ufunc, method, inputs, kwargs)
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
            raise NotABSeries("a constant added to a vector (element-wise broadcast) has no B-series form")
        out = dict(self.terms)
        for k, v in other.terms.items():
            out[k] = out[k] + v if k in out else v
        return TreeVector(out, self.n)

    __radd__ = __add__

    def __neg__(self):
        return TreeVector({k: -v for k, v in self.terms.items()}, self.n)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, TreeVector):
            raise NotABSeries("element-wise products of vectors have no B-series form")
        scalar = ScalarSeries.coerce(other, _SCALARS, self.n)
        return TreeVector({k: v * scalar for k, v in self.terms.items()}, self.n)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, TreeVector):
            raise NotABSeries("element-wise quotients of vectors have no B-series form")
        scalar = ScalarSeries.coerce(other, _SCALARS, self.n)
        return TreeVector({k: v / scalar for k, v in self.terms.items()}, self.n)

    # What a B-series cannot express raises NotABSeries, and `bea._derive` hands the rule to the
    # element-wise engine, which has element-wise operations, roots and inner products <p, q>.
    def __rtruediv__(self, other):
        raise NotABSeries("element-wise reciprocals of vectors have no B-series form")

    def __pow__(self, exponent):
        raise NotABSeries("element-wise powers of vectors have no B-series form")

    def sqrt(self):
        raise NotABSeries("element-wise roots of vectors have no B-series form")

    def __matmul__(self, other):
        raise NotABSeries("inner products are scalar invariants, not B-series")

    __rmatmul__ = __matmul__

    def __bool__(self):
        raise branch_error()

    def _compare(self, other):
        raise branch_error()

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    @property
    def shape(self):
        raise components_error("shape")

    def __len__(self):
        raise components_error("len")

    def __getitem__(self, i):
        raise components_error("indexing")

    def __iter__(self):
        raise components_error("iteration")

    def block(self, start: int, stop: int) -> TreeVector:
        """P F(t) for the projection P on parameters [start, stop): relabels the root of every tree."""
        out = {}
        for t, v in self.terms.items():
            if t is _IDENTITY:
                raise UnsupportedError(
                    "a projection of theta itself (not of a gradient) has no coordinate-free form here; "
                    "derive on concrete losses"
                )
            block = t.label.block
            if block is None or block == (start, stop):
                out[make(Label(t.label.loss, (start, stop)), t.children)] = v
            elif block[1] <= start or stop <= block[0]:
                continue  # P_q P_p = 0 for disjoint blocks
            else:
                raise UnsupportedError(f"overlapping parameter blocks {block} and {(start, stop)}")
        return TreeVector(out, self.n)

    def increments(self):
        base = self.terms.get(_IDENTITY)
        if base is None or base.coeffs[0] != 1 or any(x for x in base.coeffs[1:]):
            raise UnknownSymbolError(
                "the coordinate-free view needs every evaluation point to be theta plus increments"
            )
        return {k: v for k, v in self.terms.items() if k is not _IDENTITY}


class TreeOracle:
    """grad(x) = -f(x) and grad.hvp(x, v) = -f'(x) v on tree vectors, f = -grad E_k."""

    def __init__(self, n: int, n_losses: int = 1, label: Label = Label(0)):
        self.n = n
        self.n_losses = n_losses
        self.label = label

    def derivative(self, x: TreeVector, vectors=(), label: Label | None = None) -> TreeVector:
        """f^{(m)}(x)[v_1, ..., v_m] for x = theta + increments, f = f_label.

        With x - theta = sum_d k_d F(d)/sigma(d) and v_i = sum_u w_iu F(u)/sigma(u),
        f^{(m)}(x)[v..] = sum_j f^{(m+j)}(theta)[(x - theta)^j, v..]/j!, and
        f^{(r)}(theta)[F(u_1)/sigma(u_1), ...] = F(U)/sigma(U) prod_u mult_U(u)!
        for the tree U = [u_1, ...] (Hairer, Lubich & Wanner, Lemma III.1.9).
        Products whose coefficients start beyond h^n are never formed.
        """
        label = self.label if label is None else label
        inc = self._increments(x)
        for v in vectors:
            if _IDENTITY in v.terms:
                raise UnknownSymbolError("a derivative applied to theta itself has no B-series form")
        n = self.n
        # Prune by powers of h: a product of coefficients of valuations v_i starts at h^{sum v_i}.
        support = sorted(inc, key=lambda t: _valuation(inc[t]))
        lows = [_valuation(inc[t]) for t in support]
        columns = [sorted(v.terms.items(), key=lambda kv: _valuation(kv[1])) for v in vectors]
        smallest = [min((_valuation(w) for _, w in c), default=n + 1) for c in columns]
        still_needed = [sum(smallest[i:]) for i in range(len(columns) + 1)]
        out: dict = {}

        def vector_choices(i, low, trees, weight):
            if i == len(columns):
                yield trees, weight, low
                return
            for u, w in columns[i]:
                grown = low + _valuation(w)
                if grown + still_needed[i + 1] > n:
                    break
                yield from vector_choices(i + 1, grown, trees + [u], w if weight is None else weight * w)

        def child_choices(start, low, trees, weight):
            yield trees, weight, low
            for j in range(start, len(support)):
                grown = low + lows[j]
                if grown > n:
                    break
                w = inc[support[j]] if weight is None else weight * inc[support[j]]
                if not _is_zero(w):
                    yield from child_choices(j, grown, trees + [support[j]], w)

        for v_trees, v_weight, v_low in vector_choices(0, 0, [], None):
            for c_trees, c_weight, _ in child_choices(0, v_low, [], None):
                everything = c_trees + v_trees
                weight = v_weight if c_weight is None else (c_weight if v_weight is None else c_weight * v_weight)
                if weight is None:
                    weight = _hpoly([1] + [0] * n)
                q = sp.Rational(_multiplicity_factorials(everything), _multiplicity_factorials(c_trees))
                term = _scaled(weight, q)
                u = make(label, everything)
                out[u] = out[u] + term if u in out else term
        return TreeVector(out, n)

    def elementary(self, tree: Colored, x: TreeVector, cache: dict) -> TreeVector:
        """F(tree)(x) as a tree vector (x = theta + increments)."""
        if tree not in cache:
            children = [self.elementary(c, x, cache) for c in tree.children]
            cache[tree] = self.derivative(x, children, tree.label)
        return cache[tree]

    def compose(self, s: TreeVector, x: TreeVector) -> TreeVector:
        """s(x) for s = c theta + sum_t k_t F(t)/sigma(t) and a point x = theta + sum_u a_u F(u)/sigma(u).

        By the composition of B-series (`admissible_cuts`), tree by tree:
        s(x) = c x + sum_t (sum_{cuts of t} count k_{root part} prod_{u in forest} a_u) F(t)/sigma(t).
        The trees t that can occur are grown from those of s by attaching increments of x, in order
        of the power of h their coefficients start at; none beyond h^n is formed.
        """
        n = self.n
        inc = self._increments(x)
        lows = {u: _valuation(a) for u, a in inc.items()}
        roots = {t: k for t, k in s.terms.items() if t is not _IDENTITY}
        # Candidate trees by the lowest power of h they can start at (buckets: attachments cost >= h^1).
        start: dict = {}
        buckets: list[list] = [[] for _ in range(n + 1)]
        for t, k in roots.items():
            v = _valuation(k)
            if v <= n:
                start[t] = v
                buckets[v].append(t)
        for v in range(n + 1):
            for t in buckets[v]:
                if start[t] != v:
                    continue
                for u, low in lows.items():
                    if v + low > n:
                        continue
                    for grown in attachments(t, u):
                        if grown not in start or start[grown] > v + low:
                            start[grown] = v + low
                            buckets[v + low].append(grown)
        out: dict = {}
        for t in start:
            total = None
            for (root, forest), count in admissible_cuts(t):
                k = roots.get(root)
                if k is None or any(u not in inc for u in forest):
                    continue
                low = _valuation(k) + sum(lows[u] for u in forest)
                if low > n:
                    continue
                term = k
                for u in forest:
                    term = term * inc[u]
                term = _scaled(term, count)
                total = term if total is None else total + term
            if total is not None:
                out[t] = total
        result = TreeVector(out, n)
        identity = s.terms.get(_IDENTITY)
        return result if identity is None else result + x * identity

    def _increments(self, x: TreeVector) -> dict:
        inc = x.increments()
        for v in inc.values():  # increments must be O(h) for the Taylor series to be finite at each order
            if v.coeffs[0]:
                raise UnknownSymbolError(
                    "an evaluation point moves by O(1) (e.g. SAM with an independent radius rho); "
                    "the coordinate-free view needs increments of order h: tie it to the step (rho = c*h), "
                    "or expand in h and rho jointly with small=['rho'] (CLI: --small rho)"
                )
        return inc

    def compose_by_derivatives(self, s: TreeVector, x: TreeVector) -> TreeVector:
        """s(x) by elementary differentials at x (Lemma III.1.9 node by node): the slow, independent route
        that `compose` is tested against."""
        cache: dict = {}
        total = TreeVector({}, self.n)
        for t, k in s.terms.items():
            total = total + (x * k if t is _IDENTITY else self.elementary(t, x, cache) * (k / colored_symmetry(t)))
        return total

    def __call__(self, x):
        return -self.derivative(x)  # grad E = -f

    def hvp(self, x, v):
        return -self.derivative(x, [v])  # H(x) v = -f'(x) v

    def value(self, x):
        raise UnknownSymbolError("loss values have no B-series form; the coordinate-free view needs grad and hvp only")

    def __getitem__(self, k):
        if not 0 <= k < self.n_losses:
            raise IndexError(f"the rule asked for loss {k}, but it declares {self.n_losses} loss(es)")
        return TreeOracle(self.n, self.n_losses, Label(k))


def _multiplicity_factorials(trees) -> int:
    out = 1
    for count in Counter(trees).values():
        out *= factorial(count)
    return out


def _memory_step(rule, theta: TreeVector, oracle: TreeOracle, h, states: list | None = None) -> TreeVector:
    """theta' on the slow manifold of a rule with memory, as a B-series (see `_slow_manifold.settle`);
    the states on the manifold are appended to `states`."""
    moved, manifold = settle(rule, _TreeTruncations(oracle.n_losses), order=theta.n)
    if states is not None:
        states[:] = manifold
    return moved


class _TreeTruncations(Truncations):
    """B-series with coefficients truncated after h^k, for `settle`."""

    def __init__(self, n_losses: int):
        self.n_losses = n_losses

    def at(self, k):
        theta = TreeVector({_IDENTITY: _hpoly([1] + [0] * k)}, k)
        return theta, TreeOracle(k, self.n_losses), _hpoly([0, 1, *[0] * k][: k + 1])

    def zero_state(self, k):
        return TreeVector({}, k)

    def resize(self, state, k):
        zero = _SCALARS.zero
        exact = {t: k + 1 if v.valid >= len(v.coeffs) else min(v.valid, k + 1) for t, v in state.terms.items()}
        return TreeVector({t: ScalarSeries(_SCALARS, (v.coeffs + [zero] * k)[: k + 1], exact[t])
                           for t, v in state.terms.items()}, k)

    def compose(self, state, point):
        return TreeOracle(point.n, self.n_losses).compose(state, point)

    def lowest(self, residual, start):
        return min((_valuation(v) for v in residual.terms.values()), default=None)  # canonical: no tests to skip


def bseries_modified_field(rule, order_: int, manifold: list | None = None) -> dict:
    """{tree: [coefficient of h^1, ..., h^{order+1}] of f~ h} for a gradient rule (SymPy coefficients).

    Trees are plain (`_trees`) when the rule has one field, `Colored` otherwise. For rules
    with memory, `manifold` receives each state on the slow manifold as {tree: [h^0, ..., h^order]}.
    """
    global _SCALARS
    previous, _SCALARS = _SCALARS, _RationalFunctions(rule.free_symbols)
    try:
        states: list = []
        field = _bseries_modified_field(rule, order_, states)
        if manifold is not None:
            manifold[:] = [{to_plain(t): [_SCALARS.to_expr(c) for c in v.coeffs[: order_ + 1]] for t, v in s.terms.items()}
                           for s in states]
        labels = set().union(*(labels_of(t) for t in field)) if field else set()
        if labels <= {Label(0)}:
            return {to_plain(t): [_SCALARS.to_expr(c) for c in v] for t, v in field.items()}
        # Blocks (start, stop) become player indices 0, 1, ...: the result holds for any block sizes.
        players = {b: i for i, b in enumerate(sorted({label.block for label in labels} - {None}))}
        return {_relabel(t, players): [_SCALARS.to_expr(c) for c in v] for t, v in field.items()}
    finally:
        _SCALARS = previous


def _relabel(t: Colored, players: dict) -> Colored:
    label = Label(t.label.loss, None if t.label.block is None else players[t.label.block])
    return make(label, [_relabel(c, players) for c in t.children])


def _bseries_modified_field(rule, order_: int, states: list) -> dict:
    n = order_ + 1
    for guard in range(0, 4):
        m = n + guard
        theta = TreeVector({_IDENTITY: _hpoly([1] + [0] * m)}, m)
        h = _hpoly([0, 1] + [0] * (m - 1))
        oracle = TreeOracle(m, rule.n_losses)
        phi = _memory_step(rule, theta, oracle, h, states) if hasattr(rule, "decays") else rule.step(theta, oracle, h)
        if not isinstance(phi, TreeVector):
            raise InconsistentRuleError(f"the step of {rule.name} did not return the parameter vector")
        if phi.valid > n:
            break
    base = phi.terms.get(_IDENTITY)
    if base is None or base.coeffs[0] != 1 or any(x for x in base.coeffs[1:]):
        raise InconsistentRuleError(f"the step of {rule.name} is not theta + O(h)")
    a = {t: _hpoly(v.coeffs[: n + 1]) for t, v in phi.terms.items() if t is not _IDENTITY}
    labels = set().union(*(labels_of(t) for t in a)) if a else set()
    # val(b(t)) >= |t|/r with r = max |t|/val(a(t)) (by induction over the cuts), so trees with more than
    # r n nodes vanish; r = 1 when every increment is O(h) and hyperparameters are tied to h.
    ratio = max((sp.Rational(colored_order(t), max(_valuation(v), 1)) for t, v in a.items()), default=1)
    b: dict = {}
    lie: dict = {}
    zero = _hpoly([0] * (n + 1))
    for t in colored_trees_up_to(int(ratio * n), labels):
        total = zero
        for k in range(2, colored_order(t) + 1):  # L_k(t) needs k - 1 cuts
            value = zero
            for root_part, cut_off in colored_cuts(t):
                prev = b.get(root_part) if k == 2 else lie.get((k - 1, root_part))
                if prev is not None and cut_off in b:
                    value = value + prev * b[cut_off]
            if not _is_zero(value):
                lie[(k, t)] = value
                total = total + _scaled(value, sp.Rational(1, factorial(k)))
        coefficient = a.get(t, zero) - total
        if not _is_zero(coefficient):
            b[t] = coefficient
    duration = sp.sympify(getattr(rule, "duration", 1))  # one step follows the flow over duration * h
    return {t: [c / _SCALARS.from_expr(duration) for c in v.coeffs[1:]] for t, v in b.items()}
