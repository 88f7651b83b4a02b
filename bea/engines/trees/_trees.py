"""Rooted trees and the B-series of modified equations.

A B-series is B(a) = sum_t h^{|t|} a(t)/sigma(t) F(t) over rooted trees t, with
F(t) the elementary differentials of the field f (F(.) = f,
F([t_1..t_m]) = f^{(m)}(F(t_1), ..., F(t_m))) and sigma(t) the symmetry
factor: the normalisation of Hairer, Lubich & Wanner, Geometric Numerical
Integration, Ch. III and IX (doi:10.1007/3-540-30666-8), and of BSeries.jl
(Ketcheson & Ranocha, "Computing with B-series", arXiv:2111.11680).

For a method whose step is B(a) (a(empty) = 1), the modified field h f~ = B(b)
follows from the same matching as the engine's correction formula, done on
coefficients: the Lie derivative of B(c) along B(b) is B(d_b c) with

    (d_b c)(t) = sum over the edges e of t of c(root part of t cut at e) * b(part cut off),

so with L_1 = b and L_n = d_b L_{n-1}, the time-1 flow of B(b) is
id + sum_n L_n / n!, and

    b(t) = a(t) - sum_{n >= 2} L_n(t) / n!        (recursively in |t|).

Trees are canonical nested tuples: a node is the sorted tuple of its children
(the leaf is ()). Internally each tree also has an integer id (`_Forest`): ids
follow the order of `trees_up_to`, a tree is its sorted tuple of child ids, and
its cuts (merged, with multiplicities) come from those of its largest child and
of the rest, once per tree.

The coefficients of a rational tableau are computed in integers, exactly: with
d the common denominator of the tableau and R the product of the primes <= N
(N the largest tree size), e(t) = d (d R)^{|t|-1} b(t) is an integer, and so is
M_n(t) = R^{|t|-n} d^{|t|} L_n(t) = sum over cuts of e(cut-off) M_{n-1}(root part)
(M_1 = e); the matching reads

    e(t) = R^{|t|-1} d^{|t|} a(t) - sum_{n >= 2} (R^{n-1}/n!) M_n(t),

and R^{n-1}/n! is an integer for n <= N (Legendre: v_p(n!) <= (n-1)/(p-1)).
This is the homogeneity of the matching (scaling h by dR scales a(t), b(t) and
L_n(t) by (dR)^{|t|}). SymPy numbers are made only for the result.

A tableau with free symbols (a one-parameter family, A = [[0, 0], [alpha, 0]]) runs the
same recursions in the field QQ(symbols) (`RationalFunctionField`, canonical: zero tests
are exact), and b(t) comes back as a rational function of the symbols; irrational entries
(sqrt(3)) go through expanded SymPy expressions. `order_conditions` gives Butcher's order
conditions Phi(t) - 1/gamma(t) as expressions in the same symbols, for `sympy.solve`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from math import factorial, lcm
from operator import mul, sub

from sympy import Pow, Rational, S, cancel, sympify, together
from sympy import expand as sp_expand
from sympy.polys.polyerrors import CoercionFailed

from ..series._fractions import rational_function_field

__all__ = [
    "Tree",
    "TreeTerm",
    "tree_coefficients",
    "elementary_weight",
    "level_sequence",
    "modified_equation_coefficients",
    "order_conditions",
    "symmetry",
    "trees_of_order",
    "trees_up_to",
]

Tree = tuple  # a node: the sorted tuple of its child subtrees
_FACTORIALS = [factorial(n) for n in range(64)]


def _sort(children) -> Tree:
    return tuple(sorted(children, key=_key))


@lru_cache(maxsize=None)
def _key(t: Tree):
    return (order(t), tuple(_key(c) for c in t))


@lru_cache(maxsize=None)
def order(t: Tree) -> int:
    """|t|, the number of nodes."""
    return 1 + sum(order(c) for c in t)


class _Forest:
    """All rooted trees up to some size as integer ids, grown on demand (one shared instance).

    Ids follow `trees_up_to` (by order, then by the sorted tuple of child ids, which is `_key`'s order);
    tree `t` is `prefix[t]` with the child `last[t]` added, `last[t]` its largest child."""

    def __init__(self):
        self.children: list[tuple[int, ...]] = [()]  # sorted child ids
        self.nested: list[Tree] = [()]
        self.prefix: list[int] = [-1]
        self.last: list[int] = [-1]
        self.bounds: list[int] = [0, 0, 1]  # ids of order n: range(bounds[n], bounds[n + 1])
        self.index: dict[tuple[int, ...], int] = {(): 0}
        self.cuts: list[dict] = [{}]  # {(root part, cut-off part): number of edges}
        self._joined: dict[tuple[int, int], int] = {}
        self._layers: dict[int, tuple] = {}

    @property
    def max_order(self) -> int:
        return len(self.bounds) - 2

    def grow(self, n: int) -> None:
        while self.max_order < n:
            self._add_order(self.max_order + 1)

    def _add_order(self, n: int) -> None:
        # a tree of order n is a tree of order m < n and a new largest child of order n - m: each once
        bounds, children = self.bounds, self.children
        new = []
        for m in range(1, n):
            low, high = bounds[n - m], bounds[n - m + 1]
            for rest in range(bounds[m], bounds[m + 1]):
                kids = children[rest]
                for child in range(max(low, kids[-1]) if kids else low, high):
                    new.append((kids + (child,), rest, child))
        new.sort()
        for kids, rest, child in new:
            self.index[kids] = len(children)
            children.append(kids)
            self.nested.append(self.nested[rest] + (self.nested[child],))
            self.prefix.append(rest)
            self.last.append(child)
        bounds.append(len(children))

    def ids(self, n: int) -> range:
        self.grow(n)
        return range(self.bounds[n], self.bounds[n + 1])

    def _join(self, tree: int, child: int) -> int:
        """The id of `tree` with `child` grafted on its root (memoized in `_joined`)."""
        kids = self.children[tree]
        i = bisect_left(kids, child)
        out = self._joined[(tree, child)] = self.index[kids[:i] + (child,) + kids[i:]]
        return out

    def _cuts_of(self, t: int) -> dict:
        # edges of t = edges of prefix[t] (root parts get last[t] back), the edge to last[t], and the edges
        # inside last[t] (root parts: prefix[t] with the rest of last[t] grafted)
        rest, child = self.prefix[t], self.last[t]
        joined, join = self._joined, self._join  # `or`: a joined id is never 0 (the leaf)
        out = {}
        for (root, cut), k in self.cuts[rest].items():  # distinct root parts stay distinct: no merging
            out[(joined.get((root, child)) or join(root, child), cut)] = k
        out[(rest, child)] = out.get((rest, child), 0) + 1
        for (root, cut), k in self.cuts[child].items():
            key = (joined.get((rest, root)) or join(rest, root), cut)
            out[key] = out.get(key, 0) + k
        return out

    def layer(self, n: int) -> tuple:
        """The cuts of all trees of order n, flattened: root parts, cut-off parts, multiplicities, and one
        slice of these lists per tree."""
        if n not in self._layers:
            ids = self.ids(n)
            for k in range(2, n):
                self.layer(k)  # the cuts of smaller trees first
            roots, cut_offs, counts, slices = [], [], [], []
            for t in ids:
                cuts = self._cuts_of(t)
                self.cuts.append(cuts)
                start = len(roots)
                roots += [root for root, _ in cuts]
                cut_offs += [cut for _, cut in cuts]
                counts += cuts.values()
                slices.append(slice(start, len(roots)))
            self._layers[n] = (roots, cut_offs, counts, slices)
        return self._layers[n]


_FOREST = _Forest()


def trees_of_order(n: int) -> tuple[Tree, ...]:
    """All rooted trees with n nodes, each once, ordered by `_key`."""
    return tuple(_FOREST.nested[t] for t in _FOREST.ids(n))


def trees_up_to(n: int) -> list[Tree]:
    """All rooted trees with at most n nodes, by order."""
    return [t for k in range(1, n + 1) for t in trees_of_order(k)]


@lru_cache(maxsize=None)
def symmetry(t: Tree) -> int:
    """sigma(t) = prod m_i! sigma(t_i)^{m_i} for t = [t_1^{m_1} ... t_k^{m_k}]."""
    out = 1
    for child in set(t):
        m = t.count(child)
        out *= factorial(m) * symmetry(child) ** m
    return out


@lru_cache(maxsize=None)
def gamma(t: Tree) -> int:
    """The density gamma(t); the exact flow has coefficients 1/gamma(t)."""
    out = order(t)
    for child in t:
        out *= gamma(child)
    return out


def level_sequence(t: Tree) -> list[int]:
    """The canonical level sequence (root at level 1; subtrees in decreasing lexicographic order),
    as used by RootedTrees.jl and BSeries.jl."""

    def walk(node, level):
        subsequences = sorted((walk(c, level + 1) for c in node), reverse=True)
        return [level] + [x for s in subsequences for x in s]

    return walk(t, 1)


def elementary_weight(A, b) -> Callable[[Tree], object]:
    """Phi(t) = sum_i b_i Phi_i(t) of a Runge-Kutta tableau, explicit or implicit (Butcher 2016, Sec. 31):
    the numerical step is B(Phi), and the method has order q iff Phi(t) = 1/gamma(t) for |t| <= q.
    The recursion Phi_i(t) = prod over children of sum_j a_ij Phi_j(child) sums over every j, so it holds for
    any A: an implicit method's stages are B-series too, and the fixed point of the stage equations
    k = f(theta + h A k) is reached tree by tree (Hairer, Lubich & Wanner 2006, Sec. III.1.2; Butcher 2016, Sec. 31)."""
    stages = len(b)

    @lru_cache(maxsize=None)
    def stage_derivative(i: int, t: Tree):
        # coefficient of F(t) in h f(Y_i): product over children of the stage value weights
        out = S.One
        for child in t:
            out *= stage_value(i, child)
        return out

    @lru_cache(maxsize=None)
    def stage_value(i: int, t: Tree):
        return sum((A[i][j] * stage_derivative(j, t) for j in range(stages) if A[i][j] != 0), S.Zero)

    def weight(t: Tree):
        return sum((b[i] * stage_derivative(i, t) for i in range(stages) if b[i] != 0), S.Zero)

    return weight


def _primorial(n: int) -> int:
    """The product of the primes <= n."""
    out = 1
    for p in range(2, n + 1):
        if all(p % q for q in range(2, int(p**0.5) + 1)):
            out *= p
    return out


def _integer_matching(scaled: list[int], max_order: int, radix: int) -> list[int]:
    """e(t) = R^{|t|-1} a'(t) - sum_{n>=2} (R^{n-1}/n!) M_n(t) for the trees of `_FOREST` by id (module
    docstring), from the integer method coefficients a'(t) = `scaled`; R = `radix`, a multiple of every
    prime <= max_order. Each order is one layer: its M_n are sums over the flattened cuts of the layer."""
    count = _FOREST.bounds[max_order + 1]
    e = [0] * count
    lie = [[0] * count for _ in range(max_order + 1)]  # lie[n][t] = M_n(t); lie[1] is e
    weights = [0, 0] + [radix ** (n - 1) // factorial(n) for n in range(2, max_order + 1)]
    e[0] = lie[1][0] = scaled[0]
    for size in range(2, max_order + 1):
        ids = _FOREST.ids(size)
        roots, cut_offs, counts, slices = _FOREST.layer(size)
        factors = list(map(mul, counts, map(e.__getitem__, cut_offs)))  # multiplicity * e(cut-off)
        power = radix ** (size - 1)
        total = [power * scaled[t] for t in ids]
        for n in range(2, size + 1):
            products = list(map(mul, factors, map(lie[n - 1].__getitem__, roots)))
            values = list(map(sum, map(products.__getitem__, slices)))
            lie[n][ids.start : ids.stop] = values
            total = list(map(sub, total, map(weights[n].__mul__, values)))
        e[ids.start : ids.stop] = lie[1][ids.start : ids.stop] = total
    return e


def _coefficients_from_integers(scaled: list[int], scale: int, max_order: int) -> list:
    """b(t) (SymPy numbers, by id) from a'(t) = scale^{|t|} a(t) in integers."""
    radix = _primorial(max_order)
    e = _integer_matching(scaled, max_order, radix)
    out = []
    for size in range(1, max_order + 1):
        denominator = scale * (scale * radix) ** (size - 1)  # e(t) = d (d R)^{|t|-1} b(t)
        out.extend(Rational(e[t], denominator) for t in _FOREST.ids(size))
    return out


def _generic_matching(values: list, max_order: int, normal=sp_expand, zero=S.Zero) -> list:
    """b(t) by id for method coefficients of any kind: the same recursion, on SymPy expressions (expanded by
    `normal`) or on elements of an exact field (`normal` the identity, `zero` the field's zero)."""
    count = _FOREST.bounds[max_order + 1]
    b: list = [zero] * count
    lie: list[dict] = [{} for _ in range(count)]  # lie[t][n] = L_n(t), nonzero ones and L_1
    for size in range(1, max_order + 1):
        roots, cut_offs, counts, slices = _FOREST.layer(size) if size > 1 else ([], [], [], [slice(0, 0)])
        for t, part in zip(_FOREST.ids(size), slices):
            total = zero
            for n in range(2, size + 1):
                terms = [k * b[c] * lie[r][n - 1] for r, c, k in zip(roots[part], cut_offs[part], counts[part])
                         if b[c] != 0 and lie[r].get(n - 1, 0) != 0]
                value = normal(sum(terms, zero))
                if value != 0:
                    lie[t][n] = value
                    total = total + value / _FACTORIALS[n]
            b[t] = lie[t][1] = normal(values[t] - total)
    return b


def modified_equation_coefficients(method_coefficient: Callable[[Tree], object], max_order: int) -> dict:
    """b(t) for all trees with |t| <= max_order, from the method's B-series coefficients a(t) (module docstring);
    exact integers inside when every a(t) is rational, expanded SymPy expressions otherwise."""
    if max_order < 1:
        return {}
    _FOREST.grow(max_order)
    nested, count = _FOREST.nested, _FOREST.bounds[max_order + 1]
    values = [sympify(method_coefficient(nested[t])) for t in range(count)]
    if all(v.is_Rational for v in values):
        scale = lcm(*(int(v.q) for v in values))  # scale^{|t|} a(t) is an integer
        sizes = [k for k in range(1, max_order + 1) for _ in _FOREST.ids(k)]
        scaled = [int(v.p) * (scale // int(v.q)) * scale ** (k - 1) for v, k in zip(values, sizes)]
        b = _coefficients_from_integers(scaled, scale, max_order)
    else:
        b = _generic_matching(values, max_order)
    return {nested[t]: b[t] for t in range(count)}


def _tableau_coefficients(A, weights, max_order: int) -> list:
    """b(t) by id for any tableau (explicit or implicit): the elementary weights Phi(t) by Butcher's recursion over ids
    (Phi_i(t) = prod over children of sum_j a_ij Phi_j(child), Phi(t) = sum_i b_i Phi_i(t)) in integers
    after scaling the tableau by its common denominator d (so a'(t) = d^{|t|} Phi(t))."""
    _FOREST.grow(max_order)
    entries = [sympify(x) for row in A for x in row] + [sympify(x) for x in weights]
    symbols = sorted(set().union(*(x.free_symbols for x in entries)), key=str)
    if symbols:  # a family of tableaus: the same recursions in QQ(symbols), if the entries lie there
        found = _symbolic_tableau_coefficients(A, weights, max_order, symbols)
        if found is not None:
            return found
    if not all(x.is_Rational for x in entries):  # irrational numbers: the same recursion on SymPy expressions
        weight = elementary_weight(A, weights)
        count = _FOREST.bounds[max_order + 1]
        return _generic_matching([weight(_FOREST.nested[t]) for t in range(count)], max_order)
    scale = lcm(*(int(x.q) for x in entries))
    rows = [[int(x.p) * (scale // int(x.q)) for x in map(sympify, row)] for row in A]
    b_scaled = [int(x.p) * (scale // int(x.q)) for x in map(sympify, weights)]
    count = _FOREST.bounds[max_order + 1]
    prefix, last = _FOREST.prefix, _FOREST.last
    stage = [[1] * len(b_scaled)]  # Phi_i(t) * scale^{|t|-1}
    value = [[sum(map(mul, row, stage[0])) for row in rows]]  # sum_j a_ij Phi_j(t), scaled
    for t in range(1, count):
        phi = list(map(mul, stage[prefix[t]], value[last[t]]))
        stage.append(phi)
        value.append([sum(map(mul, row, phi)) for row in rows])
    scaled = [sum(map(mul, b_scaled, phi)) for phi in stage]
    return _coefficients_from_integers(scaled, scale, max_order)


def _symbolic_tableau_coefficients(A, weights, max_order: int, symbols) -> list | None:
    """b(t) by id (SymPy rational functions of `symbols`) for a tableau whose entries lie in QQ(symbols), computed
    in that field (exact zero tests, no expression swell); None when an entry does not (sqrt(3) alpha)."""
    field = rational_function_field(symbols)
    try:
        rows = [[field.from_sympy(sympify(x)) for x in row] for row in A]
        b = [field.from_sympy(sympify(x)) for x in weights]
    except (CoercionFailed, ValueError):  # SymPy's fraction field raises ValueError for sqrt(5) alpha
        return None
    count = _FOREST.bounds[max_order + 1]
    prefix, last = _FOREST.prefix, _FOREST.last
    stage = [[field.one] * len(b)]  # Phi_i(t): products over children of the stage values
    value = [[_dot(row, stage[0], field.zero) for row in rows]]  # sum_j a_ij Phi_j(t)
    for t in range(1, count):
        phi = list(map(mul, stage[prefix[t]], value[last[t]]))
        stage.append(phi)
        value.append([_dot(row, phi, field.zero) for row in rows])
    weights_ = [_dot(b, phi, field.zero) for phi in stage]
    return [field.to_sympy(x) for x in _generic_matching(weights_, max_order, normal=lambda x: x, zero=field.zero)]


def _dot(row, vector, zero):
    total = zero
    for a, x in zip(row, vector):
        if a:
            total = total + a * x
    return total


def order_conditions(rule, order: int) -> dict:
    """Butcher's order conditions of a Runge-Kutta tableau through `order`: {tree: Phi(t) - 1/gamma(t)}.

    Phi(t) = sum_i b_i Phi_i(t) is the elementary weight (`elementary_weight`), 1/gamma(t) the exact
    flow's coefficient; the method has order p iff every condition with |t| <= p vanishes (Butcher,
    Numerical Methods for Ordinary Differential Equations, 3rd ed., Wiley 2016, Thm 315A,
    doi:10.1002/9781119121534; Hairer, Lubich & Wanner, Geometric Numerical Integration, Thm III.1.5,
    doi:10.1007/3-540-30666-8). Entries may be free symbols: the conditions are then expressions in them,
    and `sympy.solve(list(conditions.values()), [b1, b2])` finds the tableaus of that order, e.g. the
    2-stage explicit family b_2 = 1/(2 alpha), b_1 = 1 - b_2. Trees are nested tuples, as in `trees_up_to`;
    each condition is expanded, and put over one denominator when the entries are rational functions.
    """
    from ..._errors import InvalidOrderError
    from ...rules import EULER, GD, RungeKutta

    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InvalidOrderError(f"order must be a positive integer, got {order!r}")
    if isinstance(rule, GD):
        rule = EULER
    if not isinstance(rule, RungeKutta):
        from ..._errors import InvalidHyperparameterError

        raise InvalidHyperparameterError(
            f"order conditions are for Runge-Kutta tableaus (bea.rules.RungeKutta(A=..., b=...), gd, rk4, ...), "
            f"got {getattr(rule, 'name', rule)!r}"
        )
    weight = elementary_weight(rule.A, rule.b)
    out = {}
    for t in trees_up_to(order):
        condition = sp_expand(weight(t) - Rational(1, gamma(t)))
        if condition != 0 and any(p.is_Pow and p.exp.is_negative and p.free_symbols for p in condition.atoms(Pow)):
            condition = cancel(together(condition))
        out[t] = condition
    return out


def exact_flow_coefficient(t: Tree):
    """1/gamma(t), the exact flow's B-series coefficients."""
    return Rational(1, gamma(t))


@dataclass(frozen=True)
class TreeTerm:
    """One term h^{|t|-1} coefficient/sigma(t) F(t) of the modified field f~."""

    tree: Tree
    coefficient: object  # exact SymPy number

    @property
    def order(self) -> int:
        return order(self.tree)

    @property
    def symmetry(self) -> int:
        return symmetry(self.tree)

    @property
    def level_sequence(self) -> list[int]:
        return level_sequence(self.tree)


def tree_coefficients(rule, order: int) -> list[TreeTerm]:
    """Modified-equation coefficients b(t) of a Runge-Kutta-type rule for all trees with <= order + 1 nodes.

    f~ = sum_t h^{|t|-1} b(t)/sigma(t) F(t), F the elementary differentials of
    f = -grad E (or of any field). GD is explicit Euler. Implicit tableaus (backward
    Euler, Gauss, Radau IIA, Lobatto: `bea.rules.IMPLICIT_TABLEAUS`) are accepted: their
    elementary weights follow the same recursion, and irrational entries (Gauss's
    sqrt(3)) stay exact. Free symbols in the tableau (a family, A = [[0, 0], [alpha, 0]])
    give coefficients as rational functions of them. Raises for rules that are not
    Runge-Kutta maps of a single field.
    """
    from ..._errors import InvalidOrderError, UnknownSymbolError
    from ...rules import EULER, GD, RungeKutta

    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise InvalidOrderError(f"order must be a non-negative integer, got {order!r}")
    if isinstance(rule, GD):
        rule = EULER
    if not isinstance(rule, RungeKutta):
        raise UnknownSymbolError(
            f"tree coefficients and the coordinate-free view are available for Runge-Kutta-type rules (gd, "
            f"euler, midpoint, heun, rk4, RungeKutta(...)) so far, not for {rule.name}; pass loss= and params= "
            "for the concrete view"
        )
    b = _tableau_coefficients(rule.A, rule.b, order + 1)
    return list(map(TreeTerm, _FOREST.nested[: len(b)], b))
