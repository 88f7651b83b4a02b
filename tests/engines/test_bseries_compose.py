"""Composition of B-series by admissible cuts (`TreeOracle.compose`) against elementary differentials evaluated
node by node (`compose_by_derivatives`, Lemma III.1.9), and the cuts against brute-force vertex subsets."""

import itertools
from collections import Counter

import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bea.engines.trees import _bseries_step as bs
from bea.engines.trees._colored_trees import Label, admissible_cuts, colored_key, colored_order, colored_trees_up_to, make

LABELS = (Label(0), Label(1))


def _vertices(t, path=()):
    """The tree as (vertex path, parent path) pairs: each vertex named by its child indices from the root."""
    out = [(path, path[:-1] if path else None)]
    for i, child in enumerate(t.children):
        out += _vertices(child, path + (i,))
    return out


def _subtree(t, kept, path=()):
    return make(t.label, [_subtree(c, kept, path + (i,)) for i, c in enumerate(t.children) if path + (i,) in kept])


def _brute_force_cuts(t) -> Counter:
    """Every set of vertices containing the root and closed towards it: (root part, sorted forest) counted."""
    vertices = [v for v, _ in _vertices(t)]
    out: Counter = Counter()
    for size in range(len(vertices)):
        for chosen in itertools.combinations(vertices[1:], size):
            kept = {()} | set(chosen)
            if any(v[:-1] not in kept for v in kept if v):
                continue
            forest = []
            for v in vertices:
                if v not in kept and v[:-1] in kept:
                    node = t
                    for i in v:
                        node = node.children[i]
                    forest.append(node)
            out[(_subtree(t, kept), tuple(sorted(forest, key=colored_key)))] += 1
    return out


def test_admissible_cuts_are_the_root_subtrees():
    for t in colored_trees_up_to(6, LABELS):
        cuts = dict(admissible_cuts(t))
        assert cuts == _brute_force_cuts(t)
        for (root, forest), _ in admissible_cuts(t):
            assert colored_order(root) + sum(colored_order(u) for u in forest) == colored_order(t)


@st.composite
def series_pairs(draw):
    """(s, x): a random state s = sum_t k_t F(t)/sigma(t) and a point x = theta + increments, truncated after h^n."""
    n = draw(st.integers(2, 3))  # the reference route grows fast with the truncation
    labels = LABELS[: draw(st.integers(1, 2))]
    trees = colored_trees_up_to(3, labels)

    def poly(low):
        coeffs = [0] * (n + 1)
        for k in range(low, n + 1):
            coeffs[k] = sp.Rational(draw(st.integers(-3, 3)), draw(st.integers(1, 3)))
        return bs._hpoly(coeffs)

    s = {t: poly(draw(st.integers(0, 1))) for t in draw(st.lists(st.sampled_from(trees), min_size=1, max_size=4))}
    x = {t: poly(draw(st.integers(1, 2))) for t in draw(st.lists(st.sampled_from(trees), min_size=1, max_size=4))}
    x[bs._IDENTITY] = bs._hpoly([1] + [0] * n)
    if draw(st.booleans()):
        s[bs._IDENTITY] = poly(0)
    return n, len(labels), bs.TreeVector(s, n), bs.TreeVector(x, n)


@settings(max_examples=40, deadline=None)
@given(series_pairs())
def test_compose_by_cuts_equals_compose_by_derivatives(case):
    n, n_labels, s, x = case
    oracle = bs.TreeOracle(n, n_labels)
    fast, slow = oracle.compose(s, x), oracle.compose_by_derivatives(s, x)
    assert set(fast.terms) == set(slow.terms)
    for t in fast.terms:
        assert fast.terms[t].coeffs == slow.terms[t].coeffs
