"""Coordinate-free modified losses: recognising gradients of scalar invariants among tree terms.

A free (unrooted) tree T whose node v carries the symmetric tensor nabla^{deg v} E,
contracted along the edges, is a scalar invariant I(T): one node gives E, an
edge |grad E|^2, a path of three nodes grad E^T H grad E, ... Differentiating
adds a free index at one node, and by symmetry of the tensors that is the
rooted elementary differential of T rooted there:

    grad I(T) = sum over the nodes v of T of G(T rooted at v),

e.g. grad(g^T H g) = nabla^3 E[g, g] + 2 H H g. A coordinate-free term
f_l = sum_t c_t G(t) is a gradient of a combination of invariants iff -f_l lies
in the span of these images, found by exact linear algebra.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from ._trees import _sort, order, trees_of_order

__all__ = ["free_trees", "gradient_of_invariant", "invariant_latex", "invariant_text", "potential_of"]


def _adjacency(t) -> dict[int, list[int]]:
    adjacency: dict[int, list[int]] = {}

    def walk(node, parent):
        me = len(adjacency)
        adjacency[me] = [] if parent is None else [parent]
        if parent is not None:
            adjacency[parent].append(me)
        for child in node:
            walk(child, me)

    walk(t, None)
    return adjacency


def _rooted_at(adjacency, root) -> tuple:
    def build(v, parent):
        return _sort(tuple(build(w, v) for w in adjacency[v] if w != parent))

    return build(root, None)


@lru_cache(maxsize=None)
def _rerootings(t) -> tuple:
    adjacency = _adjacency(t)
    return tuple(_rooted_at(adjacency, v) for v in adjacency)


@lru_cache(maxsize=None)
def free_trees(n: int) -> tuple:
    """Free trees with n nodes, each given by one canonical rooted representative."""
    seen, out = set(), []
    for t in trees_of_order(n):
        key = min(_rerootings(t), key=repr)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return tuple(out)


def gradient_of_invariant(free) -> dict:
    """{rooted tree: multiplicity} with grad I(free) = sum multiplicity * G(tree)."""
    out: dict = {}
    for rooted in _rerootings(free):
        out[rooted] = out.get(rooted, 0) + 1
    return out


def invariant_text(free) -> str:
    """I(T) in words: 'E', '|∇E|²', '∇E·∇²E ∇E', ..."""
    from ._notation import gradient_text

    if order(free) == 1:
        return "E"
    if order(free) == 2:
        return "|∇E|²"
    adjacency = _adjacency(free)
    leaf = next(v for v, ws in adjacency.items() if len(ws) == 1)
    neighbour = adjacency[leaf][0]
    rest = _rooted_at({v: [w for w in ws if w != leaf] for v, ws in adjacency.items() if v != leaf}, neighbour)
    return f"∇E·{gradient_text(rest)}"


def invariant_latex(free) -> str:
    """I(T) in LaTeX: 'E', '\\|\\nabla E\\|^{2}', '\\nabla E \\cdot \\nabla^{2} E\\, \\nabla E', ..."""
    from ._notation import gradient_latex

    if order(free) == 1:
        return "E"
    if order(free) == 2:
        return r"\|\nabla E\|^{2}"
    adjacency = _adjacency(free)
    leaf = next(v for v, ws in adjacency.items() if len(ws) == 1)
    neighbour = adjacency[leaf][0]
    rest = _rooted_at({v: [w for w in ws if w != leaf] for v, ws in adjacency.items() if v != leaf}, neighbour)
    return rf"\nabla E \cdot {gradient_latex(rest)}"


def potential_of(terms, size: int):
    """Coefficients {free tree: c} with -sum(terms) = grad sum c I(free), or None if there are none.

    `terms` are (coefficient, rooted tree) pairs, all trees of `size` nodes.
    """
    candidates = free_trees(size)
    rooted = list(trees_of_order(size))
    unknowns = sp.symbols(f"u0:{len(candidates)}")
    target = {t: sp.S.Zero for t in rooted}
    for c, t in terms:
        target[t] -= c
    equations = []
    for t in rooted:
        lhs = sum((u * gradient_of_invariant(f).get(t, 0) for u, f in zip(unknowns, candidates)), sp.S.Zero)
        equations.append(sp.expand(lhs - target[t]))
    solution = sp.linsolve(equations, unknowns)
    if not solution:
        return None
    (values,) = solution
    # Any particular solution will do: invariants with equal gradients differ by a constant.
    values = [v.xreplace({u: 0 for u in unknowns}) for v in values]
    return {f: sp.factor_terms(v) for f, v in zip(candidates, values) if v != 0}
