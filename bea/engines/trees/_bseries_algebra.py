"""The algebra of B-series coefficient maps: composition, substitution, exp and log, and the
coefficient conditions for order, symplecticity, symmetry and energy preservation.

A B-series is B(a) = a(0) id + sum_t h^{|t|} a(t)/sigma(t) F(t) over the rooted trees t of `_trees`
(nested sorted tuples; the single node is `()`), with the elementary differentials F(t) of a field f
and the symmetry sigma(t): the normalisation of Hairer, Lubich & Wanner, Geometric Numerical
Integration, 2nd ed., Sec. III.1 (doi:10.1007/3-540-30666-8), of BSeries.jl and of kauri. A map
near the identity (an integrator) has a(0) = 1; a vector field h f~ = B(b) has b(0) = 0. Here a map
is a dict {tree: value} over the trees up to some order, the empty tree's coefficient (the
"constant") passed beside it.

- **Composition** (HLW Thm III.1.10): B(b, B(a, y)) = B(a.b, y) for a(0) = 1, with
  (a.b)(t) = b(0) a(t) + sum over the subtrees s of t that contain the root of
  b(s) prod_{u in t minus s} a(u)  (the Connes-Kreimer coproduct; `admissible_cuts`).
- **Substitution** (Chartier, Hairer & Vilmart, "Algebraic structures of B-series", Found. Comput.
  Math. 10 (2010), doi:10.1007/s10208-010-9065-1; Calaque, Ebrahimi-Fard & Manchon,
  doi:10.1016/j.aam.2009.08.003): replacing h f in B(a) by the field B(b) gives B(b * a) with
  (b * a)(t) = sum over the partitions p of t into subtrees (a subset of edges removed)
  of a(skeleton of p) prod_{parts d of p} b(d); the skeleton contracts each part to a node.
- **exp and log**: the exact flow over h of h f is B(e), e(t) = 1/gamma(t), so the time-h flow of the
  field B(b) is exp(b) = b * e, and the modified equation of a method B(a) is the field
  log(a) = b solving b * e = a (recursively in |t|: the partition into one part gives b(t)).
- **Modifying integrator** (Chartier, Hairer & Vilmart, Math. Comp. 76 (2007),
  doi:10.1090/S0025-5718-07-01967-9; BSeries.jl `modifying_integrator`, kauri
  `preprocessed_integrator`): the field b with b * a = target (default e), so that the method run on
  the field B(b) follows the target flow.

Coefficients are exact: rational inputs are computed in `fractions.Fraction`, anything else (SymPy
expressions in parameters) in SymPy with a targeted `expand`; results are SymPy numbers/expressions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from fractions import Fraction
from functools import lru_cache

import sympy as sp

from ._colored_trees import Colored, Label, admissible_cuts, to_plain
from ._trees import Tree, _key, _sort, gamma, order, symmetry, trees_of_order, trees_up_to

__all__ = [
    "butcher_product",
    "compose",
    "energy_preservation_defects",
    "exact_flow",
    "exp",
    "log",
    "modifying_field",
    "order_of_accuracy",
    "substitute",
    "symmetry_defects",
    "symplecticity_defects",
    "tree_from_level_sequence",
]


# ---------------------------------------------------------------- exact arithmetic on coefficients


class _Domain:
    """Fractions when every input is rational (fast, exact), SymPy with `expand` otherwise."""

    def __init__(self, *maps):
        values = [v for m in maps for v in (m.values() if isinstance(m, Mapping) else [m])]
        self.rational = all(sp.sympify(v).is_Rational for v in values)

    def __call__(self, value):
        value = sp.sympify(value)
        if self.rational:
            return Fraction(int(value.p), int(value.q))
        return value

    def normal(self, value):
        return value if self.rational or isinstance(value, int) else sp.expand(value)

    def out(self, value):
        if self.rational:
            return sp.Rational(value.numerator, value.denominator)
        return sp.expand(value)

    def is_zero(self, value) -> bool:
        return value == 0 if self.rational else vanishes(value)


def vanishes(value) -> bool:
    """Exact zero test of a SymPy coefficient: expand, then cancel (rational functions of hyperparameters,
    e.g. a memory rule's 1/(1 - beta), vanish only after cancelling)."""
    value = sp.expand(sp.sympify(value))
    return value == 0 or sp.cancel(sp.together(value)) == 0


def _convert(domain: _Domain, coefficients: Mapping, max_order: int) -> dict:
    return {t: domain(v) for t, v in coefficients.items() if order(t) <= max_order}


def _result(domain: _Domain, values: dict, max_order: int) -> dict:
    return {t: domain.out(values.get(t, 0)) for t in trees_up_to(max_order)}


# ---------------------------------------------------------------- trees


def tree_from_level_sequence(sequence) -> Tree:
    """The tree of a level sequence (root at level 1 or 0, children after their parent, as RootedTrees.jl
    and BSeries.jl write them: [1, 2, 2] is the cherry [., .], [1, 2, 3] the chain)."""
    sequence = list(sequence)
    if not sequence:
        raise ValueError("the empty level sequence is the empty tree, which has no nested-tuple form")

    def build(start: int) -> tuple[Tree, int]:
        level, children, i = sequence[start], [], start + 1
        while i < len(sequence) and sequence[i] > level:
            if sequence[i] != level + 1:
                raise ValueError(f"{sequence} is not a level sequence: a node skips a level at position {i}")
            child, i = build(i)
            children.append(child)
        return _sort(children), i

    tree, end = build(0)
    if end != len(sequence):
        raise ValueError(f"{sequence} is not a level sequence of one tree (a second root at position {end})")
    return tree


def butcher_product(u: Tree, v: Tree) -> Tree:
    """u o v: v grafted onto the root of u (HLW Sec. III.1.4)."""
    return _sort(u + (v,))


def _colored(t: Tree) -> Colored:
    return Colored(Label(0), tuple(_colored(c) for c in t))


@lru_cache(maxsize=None)
def _cuts(t: Tree) -> tuple:
    """((root part, forest), count) for the subtrees of t containing the root (`admissible_cuts`, plain)."""
    out: Counter = Counter()
    for (root, forest), count in admissible_cuts(_colored(t)):
        out[(to_plain(root), tuple(sorted((to_plain(u) for u in forest), key=_key)))] += count
    return tuple(out.items())


@lru_cache(maxsize=None)
def _rooted_partitions(t: Tree) -> tuple:
    """((root part, skeleton children, other parts), count) over the partitions of t into subtrees.

    The edge to each child is kept (the child's root part joins t's, its skeleton children become the
    skeleton root's) or cut (the child's skeleton hangs off the skeleton root, its root part is a part)."""
    states: Counter = Counter({((), (), ()): 1})
    for child in t:
        grown: Counter = Counter()
        for (root_kids, skeleton_kids, parts), k in states.items():
            for (child_root, child_skeleton, child_parts), m in _rooted_partitions(child):
                kept = (root_kids + (child_root,), skeleton_kids + child_skeleton, parts + child_parts)
                cut = (root_kids, skeleton_kids + (_sort(child_skeleton),), parts + child_parts + (child_root,))
                for key in (kept, cut):
                    grown[tuple(_sort(x) for x in key)] += k * m
        states = grown
    return tuple(((_sort(root), skeleton, parts), k) for (root, skeleton, parts), k in states.items())


@lru_cache(maxsize=None)
def _partitions(t: Tree) -> tuple:
    """((skeleton, parts), count) over the partitions of t into subtrees (the substitution law's terms)."""
    out: Counter = Counter()
    for (root, skeleton_kids, parts), k in _rooted_partitions(t):
        out[(_sort(skeleton_kids), _sort(parts + (root,)))] += k
    return tuple(out.items())


def _product(values: Mapping, trees, one):
    out = one
    for u in trees:
        value = values.get(u, 0)
        if value == 0:
            return 0
        out = out * value
    return out


# ---------------------------------------------------------------- composition and substitution


def compose(first: Mapping, second: Mapping, max_order: int, second_constant=1) -> dict:
    """(first . second)(t): one step of B(first) (with first(0) = 1), then one of B(second) (HLW Thm III.1.10).

    (a.b)(t) = b(0) a(t) + sum over the subtrees s of t containing the root of b(s) prod_{u in t - s} a(u).
    The result's constant is b(0) = `second_constant`."""
    domain = _Domain(first, second, second_constant)
    a, b = _convert(domain, first, max_order), _convert(domain, second, max_order)
    b0, one = domain(second_constant), domain(1)
    out = {}
    for t in trees_up_to(max_order):
        total = b0 * a.get(t, 0)
        for (root, forest), count in _cuts(t):
            weight = b.get(root, 0)
            if weight != 0:
                total = total + count * weight * _product(a, forest, one)
        out[t] = domain.normal(total)
    return _result(domain, out, max_order)


def substitute(field: Mapping, method: Mapping, max_order: int) -> dict:
    """(b * a)(t): B(a) with h f replaced by the field B(b) (b(0) = 0; Chartier-Hairer-Vilmart 2010).

    (b * a)(t) = sum over the partitions p of t into subtrees of a(skeleton(p)) prod_{d in p} b(d);
    the constant is a(0), unchanged."""
    domain = _Domain(field, method)
    b, a = _convert(domain, field, max_order), _convert(domain, method, max_order)
    one = domain(1)
    out = {}
    for t in trees_up_to(max_order):
        total = 0
        for (skeleton, parts), count in _partitions(t):
            weight = a.get(skeleton, 0)
            if weight != 0:
                total = total + count * weight * _product(b, parts, one)
        out[t] = domain.normal(total)
    return _result(domain, out, max_order)


def exact_flow(max_order: int) -> dict:
    """e(t) = 1/gamma(t): the exact flow over h of y' = f (HLW Thm III.1.3)."""
    return {t: sp.Rational(1, gamma(t)) for t in trees_up_to(max_order)}


def exp(field: Mapping, max_order: int) -> dict:
    """The time-h flow of the field h f~ = B(b): exp(b) = b * e. exp({.: 1}) = e."""
    return substitute(field, exact_flow(max_order), max_order)


def _solve_substitution(known: Mapping, target: Mapping, max_order: int) -> dict:
    """b with (b * known)(t) = target(t) for |t| <= max_order, tree by tree: the partition of t into one
    part contributes known(.) b(t); every other partition has smaller parts."""
    domain = _Domain(target, known)
    a = _convert(domain, known, max_order)
    goal = _convert(domain, target, max_order)
    lead = a.get((), 0)
    if domain.is_zero(lead):
        raise ZeroDivisionError("the method's coefficient of the single node is zero: it is not consistent")
    one = domain(1)
    b: dict = {}
    for t in trees_up_to(max_order):
        rest = 0
        for (skeleton, parts), count in _partitions(t):
            if skeleton == () or a.get(skeleton, 0) == 0:
                continue
            rest = rest + count * a[skeleton] * _product(b, parts, one)
        value = goal.get(t, 0) - rest
        value = value / lead if domain.rational else sp.cancel(value / lead) if lead != 1 else value
        b[t] = domain.normal(value)
    return _result(domain, b, max_order)


def log(method: Mapping, max_order: int) -> dict:
    """The modified field of the method B(a) (a(0) = 1): the b with b * e = a (HLW Sec. IX.9.1;
    Chartier-Hairer-Vilmart 2010, Sec. 4.2; kauri `Map.log`)."""
    return _solve_substitution(exact_flow(max_order), method, max_order)


def modifying_field(method: Mapping, max_order: int, target: Mapping | None = None) -> dict:
    """The field b with b * a = target (default e): the method B(a) run on the field B(b) in place of h f
    follows the target through |t| <= max_order (BSeries.jl `modifying_integrator`)."""
    return _solve_substitution(dict(method), exact_flow(max_order) if target is None else target, max_order)


# ---------------------------------------------------------------- conditions on coefficients


def order_of_accuracy(method: Mapping, max_order: int) -> int:
    """The largest p <= max_order with a(t) = 1/gamma(t) for every |t| <= p (Butcher's order conditions)."""
    for n in range(1, max_order + 1):
        for t in trees_of_order(n):
            if not vanishes(sp.sympify(method.get(t, 0)) - sp.Rational(1, gamma(t))):
                return n - 1
    return max_order


def symplecticity_defects(method: Mapping, max_order: int) -> dict:
    """{(u, v): a(u o v) + a(v o u) - a(u) a(v)} where nonzero, |u| + |v| <= max_order, u <= v.

    A B-series integrator is symplectic (for every Hamiltonian f) iff all vanish (HLW Thm VI.7.6;
    Calvo & Sanz-Serna 1994)."""
    trees = trees_up_to(max_order - 1)
    out = {}
    for i, u in enumerate(trees):
        for v in trees[i:]:
            if order(u) + order(v) > max_order:
                continue
            a = [sp.sympify(method.get(x, 0)) for x in (butcher_product(u, v), butcher_product(v, u), u, v)]
            defect = sp.expand(a[0] + a[1] - a[2] * a[3])
            if not vanishes(defect):
                out[(u, v)] = defect
    return out


def symmetry_defects(method: Mapping, max_order: int) -> dict:
    """{t: c(t)} where nonzero, c = a followed by its reflection a(t)(-1)^{|t|} (the step with -h).

    The method is symmetric, Phi_{-h} o Phi_h = id, iff c vanishes on every tree (HLW Sec. V.1)."""
    reflected = {t: (-1) ** order(t) * sp.sympify(method.get(t, 0)) for t in trees_up_to(max_order)}
    composed = compose(method, reflected, max_order)
    return {t: v for t, v in composed.items() if not vanishes(v)}


def _trunks(t: Tree):
    """For each path from the root to a leaf (equal siblings once): the forests F_1..F_m hanging off its
    first m nodes (the path's next node excluded)."""
    if not t:
        yield ()
        return
    for i, child in enumerate(t):
        if child in t[:i]:
            continue
        rest = t[:i] + t[i + 1 :]
        for tail in _trunks(child):
            yield (rest,) + tail


@lru_cache(maxsize=None)
def energy_partners(t: Tree) -> tuple:
    """(partner, sign) for each root-to-leaf path of t: the tree with the path reversed (its forests
    reattached in reverse order and the old root a leaf) and (-1)^m, m the path's number of edges
    (Celledoni, McLachlan, Owren & Quispel, Found. Comput. Math. 10 (2010), doi:10.1007/s10208-010-9073-1,
    Thm 2: the elementary Hamiltonians of t and of its partner agree up to that sign)."""
    out = set()
    for forests in _trunks(t):
        node: Tree = ()
        for forest in forests:
            node = _sort(forest + (node,))
        out.add((node, (-1) ** len(forests)))
    return tuple(sorted(out, key=lambda x: (_key(x[0]), x[1])))


def energy_preservation_defects(field: Mapping, max_order: int) -> dict:
    """{trees of one class: defect} where nonzero, for the modified field h f~ = B(b) of a method.

    The method preserves every Hamiltonian H (f = J grad H, J skew) iff the coefficients c(t) = b(t)/sigma(t)
    lie in the span of e_t + s e_t' over the pairs (t, t', s) of `energy_partners` (Celledoni et al. 2010,
    Thm 2; the criterion of BSeries.jl `is_energy_preserving`). Checked exactly, class by class: the pairs
    link trees into classes; a class either spans all its trees (a cycle or a self-pair with s = +1), or
    has one functional phi (phi(t') = -s phi(t)) and needs sum_t phi(t) c(t) = 0. A tree of no nonzero pair
    (the bushes of >= 2 nodes) needs c(t) = 0."""
    out = {}
    for n in range(1, max_order + 1):
        trees = trees_of_order(n)
        edges: dict = {t: [] for t in trees}
        for t in trees:
            for partner, sign in energy_partners(t):
                if partner == t and sign == -1:
                    continue  # the zero vector
                edges[t].append((partner, sign))
                edges[partner].append((t, sign))
        seen: dict = {}
        for start in trees:
            if start in seen:
                continue
            phi, stack, free = {start: 1}, [start], False
            while stack:
                t = stack.pop()
                for partner, sign in edges[t]:
                    value = -sign * phi[t]
                    if partner not in phi:
                        phi[partner] = value
                        stack.append(partner)
                    elif phi[partner] != value:
                        free = True  # inconsistent signs: the class spans every direction
            seen.update(phi)
            if free:
                continue
            defect = sp.expand(sum((phi[t] * sp.sympify(field.get(t, 0)) / symmetry(t) for t in phi), sp.S.Zero))
            if not vanishes(defect):
                out[tuple(sorted(phi, key=_key))] = defect
    return out
