"""Implicit rules: tree coefficients and derivations, each against a baseline measured in the same run.

    python benchmarks/implicit.py [--repeat 3]

Rows (best of --repeat runs, cold caches for the tree rows):

- gauss2 (implicit midpoint) tree coefficients through 9 nodes (486 trees), bea against the mechanism bea
  used before the integer matching (`benchmarks/trees.py: previous_mechanism`, which takes any A);
  the issue's bound is 0.5 s;
- gauss4 (sqrt(3) entries, the SymPy path) through 7 nodes against explicit midpoint through 7 nodes (bea);
- the coordinate-free implicit midpoint rule derived by running its step on B-series (fixed point on tree
  vectors) against the same method as a tableau (elementary weights), order 6;
- the concrete engine on the two-parameter model, order 4: implicit GD (a fixed point on power series)
  against GD.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import sympy as sp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from trees import previous_mechanism  # noqa: E402

import bea  # noqa: E402
from bea.engines.trees import _trees  # noqa: E402
from bea.rules import GAUSS2, GAUSS4, GD, MIDPOINT, ImplicitGD, ImplicitMidpoint  # noqa: E402


def best(function, repeat: int, cold=lambda: None):
    times, out = [], None
    for _ in range(repeat):
        cold()
        start = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - start)
    return out, min(times)


def cold_trees():
    _trees._FOREST = _trees._Forest()  # the tree tables are built inside the timing


def cold_derivations():
    bea.modified_equation.cache_clear()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    r = args.repeat
    a, b = sp.symbols("a b")
    loss = (sp.Rational(3, 5) - a * b) ** 2 / 2
    print(f"{'row':52s} {'new [s]':>9s} {'baseline [s]':>13s} {'ratio':>7s}")

    def row(name, new, baseline):
        print(f"{name:52s} {new:9.4f} {baseline:13.4f} {baseline / new:6.3g}x")

    terms, new = best(lambda: bea.tree_coefficients(GAUSS2, 8), r, cold_trees)
    reference, old = best(lambda: previous_mechanism(GAUSS2.A, GAUSS2.b, 9), r)
    assert [t.coefficient for t in terms] == reference, "the mechanisms disagree"
    row("gauss2 trees, 9 nodes (vs previous mechanism)", new, old)

    _, new = best(lambda: bea.tree_coefficients(GAUSS4, 6), r, cold_trees)
    _, old = best(lambda: bea.tree_coefficients(MIDPOINT, 6), r, cold_trees)
    row("gauss4 trees, 7 nodes (vs explicit midpoint)", new, old)

    stepped, new = best(lambda: bea.modified_equation(ImplicitMidpoint(), 6), r, cold_derivations)
    tableau, old = best(lambda: bea.modified_equation(GAUSS2, 6), r, cold_derivations)
    assert stepped.terms == tableau.terms, "the two routes disagree"
    row("implicit midpoint coordinate-free, order 6 (vs gauss2)", new, old)

    _, new = best(lambda: bea.modified_equation(ImplicitGD(), 4, loss=loss, params=[a, b]), r, cold_derivations)
    _, old = best(lambda: bea.modified_equation(GD(), 4, loss=loss, params=[a, b]), r, cold_derivations)
    row("implicit GD concrete, two-param, order 4 (vs GD)", new, old)


if __name__ == "__main__":
    main()
