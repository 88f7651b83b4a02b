"""Coloured rooted trees: elementary differentials of several fields.

A rule with several losses (n SGD steps with their batches, a two-player game)
is a method in several fields f_k = -P_p grad E_k, where P_p keeps one player's
block of parameters (p = None: all of them). Its step and its modified field are
B-series over trees whose nodes carry a label (k, p) (the P-series / NB-series of
Hairer, Lubich & Wanner, Geometric Numerical Integration, Sec. III.2,
doi:10.1007/3-540-30666-8; Araujo, Murua & Sanz-Serna, SIAM J. Numer. Anal. 34,
doi:10.1137/S0036142995292128):

    F(.^(k,p)) = f_{k,p},    F([t_1..t_m]^(k,p)) = f_{k,p}^{(m)}(F(t_1), ..., F(t_m)),

with the symmetry sigma(t) counting the automorphisms that keep labels. The cut
recursion of `_trees` (Lie derivatives as sums over edges) holds unchanged.
With one label everywhere these are the plain trees of `_trees`, to which
results are converted back.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from itertools import combinations_with_replacement, product
from math import factorial
from typing import NamedTuple

from ._trees import _sort

__all__ = ["Colored", "Label", "colored_order", "colored_trees_up_to", "colored_symmetry", "to_plain"]


class Label(NamedTuple):
    """The field of a node: loss index k and the block (start, stop) it is projected on (None: all)."""

    loss: int
    block: tuple | None = None


class Colored(NamedTuple):
    """A labelled rooted tree: the root's label and the sorted tuple of child subtrees."""

    label: Label
    children: tuple = ()


def make(label: Label, children) -> Colored:
    """The canonical tree with this root label and these children (in any order)."""
    return Colored(label, tuple(sorted(children, key=colored_key)))


def _label_key(label: Label):
    return (label.loss, label.block or ())


@lru_cache(maxsize=None)
def colored_key(t: Colored):
    return (colored_order(t), _label_key(t.label), tuple(colored_key(c) for c in t.children))


@lru_cache(maxsize=None)
def colored_order(t: Colored) -> int:
    """|t|, the number of nodes."""
    return 1 + sum(colored_order(c) for c in t.children)


@lru_cache(maxsize=None)
def colored_symmetry(t: Colored) -> int:
    """sigma(t) = prod m_i! sigma(t_i)^{m_i} over the groups of equal (label-preserving) children."""
    out = 1
    for child, m in Counter(t.children).items():
        out *= factorial(m) * colored_symmetry(child) ** m
    return out


@lru_cache(maxsize=None)
def colored_cuts(t: Colored) -> tuple:
    """(root part, cut-off part) for every edge of t (edges to equal children counted separately)."""
    out = []
    children = t.children
    for i, child in enumerate(children):
        rest = children[:i] + children[i + 1 :]
        out.append((make(t.label, rest), child))
        for root_part, cut_off in colored_cuts(child):
            out.append((make(t.label, rest + (root_part,)), cut_off))
    return tuple(out)


@lru_cache(maxsize=None)
def admissible_cuts(t: Colored) -> tuple:
    """((root part, forest), count) for every subtree of t that contains the root.

    Subtrees are vertex sets closed towards the root, so equal branches count separately
    (the count); the forest holds the trees hanging off the removed edges, sorted. These
    are the terms of the composition of B-series (Hairer, Lubich & Wanner, Thm III.1.10;
    the Connes-Kreimer coproduct): B(b, B(a, y)) has coefficient
    sum_cuts count * b(root part) * prod_{u in forest} a(u) on F(t)/sigma(t).
    """
    per_child = [[(None, (child,), 1)] + [(root, forest, count) for (root, forest), count in admissible_cuts(child)]
                 for child in t.children]
    counts: Counter = Counter()
    for choice in product(*per_child):
        root = make(t.label, [r for r, _, _ in choice if r is not None])
        forest = tuple(sorted((u for _, f, _ in choice for u in f), key=colored_key))
        weight = 1
        for _, _, count in choice:
            weight *= count
        counts[(root, forest)] += weight
    return tuple(counts.items())


@lru_cache(maxsize=None)
def attachments(t: Colored, u: Colored) -> frozenset:
    """Every tree obtained from t by attaching u as a new child of one of t's vertices."""
    out = {make(t.label, t.children + (u,))}
    for i, child in enumerate(t.children):
        if child in t.children[:i]:
            continue  # equal children give the same trees
        rest = t.children[:i] + t.children[i + 1 :]
        out |= {make(t.label, rest + (grown,)) for grown in attachments(child, u)}
    return frozenset(out)


def labels_of(t: Colored) -> set:
    out = {t.label}
    for c in t.children:
        out |= labels_of(c)
    return out


@lru_cache(maxsize=None)
def _colorings(plain, labels: tuple) -> tuple:
    """Every labelling of a plain tree, each once."""
    groups = Counter(plain)
    per_group = []
    for child, m in sorted(groups.items(), key=lambda kv: _plain_key(kv[0])):
        per_group.append(list(combinations_with_replacement(_colorings(child, labels), m)))
    out = []
    for label in labels:
        for choice in product(*per_group):
            out.append(make(label, [c for group in choice for c in group]))
    return tuple(out)


def _plain_key(t):
    from ._trees import _key

    return _key(t)


def colored_trees_up_to(n: int, labels) -> list[Colored]:
    """All trees with at most n nodes and node labels from `labels`, by order."""
    from ._trees import trees_up_to

    labels = tuple(sorted(set(labels), key=_label_key))
    return [c for t in trees_up_to(n) for c in _colorings(t, labels)]


def to_plain(t: Colored):
    """The plain tree (labels dropped)."""
    return _sort(to_plain(c) for c in t.children)
