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
(the leaf is ()).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from math import factorial

from sympy import Rational, S, sympify
from sympy.polys.domains import QQ

__all__ = [
    "Tree",
    "TreeTerm",
    "tree_coefficients",
    "elementary_weight",
    "level_sequence",
    "modified_equation_coefficients",
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


@lru_cache(maxsize=None)
def trees_of_order(n: int) -> tuple[Tree, ...]:
    """All rooted trees with n nodes, each once, in a fixed order."""
    if n == 1:
        return ((),)
    found = set()
    for t in trees_of_order(n - 1):  # every tree of order n is a leaf grafted on one of order n - 1
        for grown in _graft_leaf(t):
            found.add(grown)
    return tuple(sorted(found, key=_key))


def _graft_leaf(t: Tree) -> Iterator[Tree]:
    yield _sort(t + ((),))
    for i, child in enumerate(t):
        for grown in _graft_leaf(child):
            yield _sort(t[:i] + (grown,) + t[i + 1 :])


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


@lru_cache(maxsize=None)
def _cuts(t: Tree) -> tuple[tuple[Tree, Tree], ...]:
    """(root part, cut-off part) for every edge of t (edges of equal children counted separately)."""
    out = []
    for i, child in enumerate(t):
        rest = t[:i] + t[i + 1 :]
        out.append((_sort(rest), child))
        for root_part, cut_off in _cuts(child):
            out.append((_sort(rest + (root_part,)), cut_off))
    return tuple(out)


def level_sequence(t: Tree) -> list[int]:
    """The canonical level sequence (root at level 1; subtrees in decreasing lexicographic order),
    as used by RootedTrees.jl and BSeries.jl."""

    def walk(node, level):
        subsequences = sorted((walk(c, level + 1) for c in node), reverse=True)
        return [level] + [x for s in subsequences for x in s]

    return walk(t, 1)


def elementary_weight(A, b) -> Callable[[Tree], object]:
    """Phi(t) = sum_i b_i Phi_i(t) of an explicit Runge-Kutta tableau (Butcher 2016, Sec. 31):
    the numerical step is B(Phi), and the method has order q iff Phi(t) = 1/gamma(t) for |t| <= q."""
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


def modified_equation_coefficients(method_coefficient: Callable[[Tree], object], max_order: int) -> dict:
    """b(t) for all trees with |t| <= max_order, from the method's B-series coefficients a(t)."""
    # QQ (gmpy2 mpq when installed): exact, and much faster than SymPy numbers in this inner loop.
    trees = trees_up_to(max_order)
    b: dict[Tree, object] = {}
    lie: dict[tuple[int, Tree], object] = {}  # (n, t) -> L_n(t)
    for t in trees:
        size = order(t)
        total = QQ(0)
        for n in range(2, size + 1):
            value = QQ(0)
            for root_part, cut_off in _cuts(t):
                previous = b[root_part] if n == 2 else lie.get((n - 1, root_part), 0)
                if previous != 0 and b[cut_off] != 0:
                    value += previous * b[cut_off]
            if value != 0:
                lie[(n, t)] = value
                total += value / _FACTORIALS[n]
        b[t] = _fraction(method_coefficient(t)) - total
    return {t: QQ.to_sympy(v) for t, v in b.items()}


def _fraction(value) -> object:
    value = sympify(value)
    if not value.is_Rational:
        raise TypeError(f"tree coefficients need exact rational method coefficients, got {value}")
    return QQ(int(value.p), int(value.q))


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
    f = -grad E (or of any field). GD is explicit Euler. Raises for rules that
    are not Runge-Kutta maps of a single field.
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
    if rule.free_symbols:
        raise UnknownSymbolError("the tableau has symbols; give it numbers to get exact coefficients")
    b = modified_equation_coefficients(elementary_weight(rule.A, rule.b), order + 1)
    return [TreeTerm(t, b[t]) for t in trees_up_to(order + 1)]
