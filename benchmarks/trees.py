"""Modified-equation tree coefficients: bea against its previous mechanism and kauri, in the same run.

    python benchmarks/trees.py [--orders 9,12] [--methods midpoint,euler] [--kauri-max-order 7] [--no-kauri]

For each ORDER (largest tree size in nodes: 9 is 486 trees, 12 is 7813) computes b(t) for all trees
and prints the seconds of

- bea: `bea.tree_coefficients` from cold caches (its tree tables are rebuilt for every row);
- previous: the mechanism bea used before (trees as nested tuples, cuts re-sorted per tree, SymPy's QQ
  numbers, L_n(t) for every n and cut in a Python loop), reproduced below as the in-run baseline;
- kauri (when installed, and only up to --kauri-max-order: it takes about 2.6 s for 7 nodes and
  minutes for 9 here; it computes in floats).

Ratios are baseline / bea. BSeries.jl publishes about 0.054 s for midpoint through 9 nodes.
"""

from __future__ import annotations

import argparse
import time
from functools import lru_cache
from math import factorial

import sympy as sp
from sympy.polys.domains import QQ

import bea
from bea.engines.trees import _trees
from bea.rules import TABLEAUS


def previous_mechanism(A, weights, max_order: int) -> list:
    """b(t) for all trees with <= max_order nodes as bea computed them before (fresh caches every call)."""

    @lru_cache(maxsize=None)
    def key(t):
        return (size(t), tuple(key(c) for c in t))

    @lru_cache(maxsize=None)
    def size(t):
        return 1 + sum(size(c) for c in t)

    def canonical(children):
        return tuple(sorted(children, key=key))

    def grafted(t):
        yield canonical(t + ((),))
        for i, child in enumerate(t):
            for grown in grafted(child):
                yield canonical(t[:i] + (grown,) + t[i + 1 :])

    layers = [((),)]
    for _ in range(max_order - 1):
        layers.append(tuple(sorted({g for t in layers[-1] for g in grafted(t)}, key=key)))

    @lru_cache(maxsize=None)
    def cuts(t):
        out = []
        for i, child in enumerate(t):
            rest = t[:i] + t[i + 1 :]
            out.append((canonical(rest), child))
            out += [(canonical(rest + (root,)), cut) for root, cut in cuts(child)]
        return tuple(out)

    stages = len(weights)

    @lru_cache(maxsize=None)
    def stage_derivative(i, t):
        out = sp.S.One
        for child in t:
            out *= stage_value(i, child)
        return out

    @lru_cache(maxsize=None)
    def stage_value(i, t):
        return sum((A[i][j] * stage_derivative(j, t) for j in range(stages) if A[i][j] != 0), sp.S.Zero)

    b, lie = {}, {}
    for t in (t for layer in layers for t in layer):
        total = QQ(0)
        for n in range(2, size(t) + 1):
            value = QQ(0)
            for root, cut in cuts(t):
                previous = b[root] if n == 2 else lie.get((n - 1, root), 0)
                if previous != 0 and b[cut] != 0:
                    value += previous * b[cut]
            if value != 0:
                lie[(n, t)] = value
                total += value / factorial(n)
        phi = sp.sympify(sum((weights[i] * stage_derivative(i, t) for i in range(stages) if weights[i] != 0), sp.S.Zero))
        b[t] = QQ(int(phi.p), int(phi.q)) - total
    return [QQ.to_sympy(v) for v in b.values()]


def timed(function):
    start = time.perf_counter()
    out = function()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", default="9,12", help="largest tree sizes (nodes), comma-separated")
    parser.add_argument("--methods", default="midpoint,euler")
    parser.add_argument("--kauri-max-order", type=int, default=7, help="run kauri only up to this many nodes")
    parser.add_argument("--no-kauri", action="store_true", help="skip the kauri baseline")
    args = parser.parse_args()
    try:
        import kauri
    except ImportError:
        kauri = None
    print(f"{'method':10s} {'nodes':>5s} {'trees':>6s} {'bea [s]':>9s} {'previous [s]':>13s} {'ratio':>7s} "
          f"{'kauri [s]':>10s} {'ratio':>8s}")
    for order in map(int, args.orders.split(",")):
        for name in args.methods.split(","):
            rule = TABLEAUS[name]
            _trees._FOREST = _trees._Forest()  # cold: the tree tables are built inside the timing
            terms, ours = timed(lambda: bea.tree_coefficients(rule, order - 1))
            reference, before = timed(lambda: previous_mechanism(rule.A, rule.b, order))
            assert [t.coefficient for t in terms] == reference, "the mechanisms disagree"
            row = f"{name:10s} {order:5d} {len(terms):6d} {ours:9.4f} {before:13.3f} {before / ours:6.1f}x"
            if kauri is None or args.no_kauri or order > args.kauri_max_order:
                print(f"{row} {'-':>10s} {'-':>8s}")
                continue
            def run_kauri():
                modified = kauri.RK([list(r) for r in rule.A], list(rule.b)).modified_equation_map()
                return [modified(t) for t in kauri.trees_up_to_order(order)]

            _, theirs = timed(run_kauri)
            print(f"{row} {theirs:10.2f} {theirs / ours:7.0f}x")


if __name__ == "__main__":
    main()
