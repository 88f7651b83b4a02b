"""Modifying integrator (BSeries.jl `modifying_integrator`, kauri `preprocessed_integrator`) of the explicit
midpoint rule through N nodes: bea's exact substitution-law solver against kauri's antipode formula, measured
in the same run (kauri with exact SymPy rationals, so both compute the same exact numbers).

    python benchmarks/bseries.py [N]      (default N = 7; kauri grows fast beyond)
"""

from __future__ import annotations

import sys
import time

import sympy as sp

from bea.engines.trees import _bseries_algebra as algebra
from bea.engines.trees._trees import elementary_weight, trees_up_to


def best_of(function, repeats: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(n: int) -> None:
    A, b = [[0, 0], [sp.Rational(1, 2), 0]], [0, 1]
    weight = elementary_weight(A, b)
    method = {t: weight(t) for t in trees_up_to(n)}
    algebra._partitions.cache_clear()  # cold: the partitions of every tree are enumerated again
    algebra._rooted_partitions.cache_clear()
    cold_start = time.perf_counter()
    ours = algebra.modifying_field(method, n)
    cold = time.perf_counter() - cold_start
    warm, _ = best_of(lambda: algebra.modifying_field(method, n))
    print(f"bea modifying_field, midpoint, {len(ours)} trees through {n} nodes: {cold:.3f} s cold, {warm:.3f} s warm")
    try:
        import kauri
        from kauri import cem
    except ImportError:
        print("kauri is not installed: no baseline")
        return

    def with_kauri():
        rk = kauri.RK(A, b)
        exact = kauri.Map(lambda t: sp.Rational(1, t.factorial()))
        modifying = exact ^ (rk.elementary_weights_map() & kauri.Map(cem.antipode))
        return [modifying(t) for t in kauri.trees_up_to_order(n)]

    baseline, theirs = best_of(with_kauri, repeats=1)
    total = sum(ours.values())
    assert sp.nsimplify(sum(theirs[1:])) == total, "kauri and bea disagree"
    print(f"kauri preprocessed_integrator, same trees: {baseline:.3f} s")
    print(f"ratio kauri / bea (cold): {baseline / cold:.1f}x; (warm): {baseline / warm:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
