"""Engine speed against brute-force series matching, measured in the same run.

    python benchmarks/derive.py [--max-order 6] [--baseline-max-order 4]

Brute force (tests/reference.py): Picard iteration of the exact flow of a trial
field in exact polynomial arithmetic, matched to the step order by order.
Prints seconds per order and the ratio baseline / engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import sympy as sp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from reference import brute_force_corrections  # noqa: E402

import bea  # noqa: E402

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-order", type=int, default=6)
    parser.add_argument("--baseline-max-order", type=int, default=4)
    args = parser.parse_args()
    rules = {"gd": bea.rules.GD(), "rk4": bea.rules.RK4, "sam (rho=h)": bea.rules.SAM(rho=bea.h)}
    print(f"{'rule':14s} {'order':>5s} {'engine [s]':>11s} {'brute force [s]':>16s} {'ratio':>8s}")
    for name, rule in rules.items():
        for p in range(1, args.max_order + 1):
            engine = best_of(lambda: bea.modified_equation(rule, p, loss=TWO_PARAM, params=[a, b]))
            if p <= args.baseline_max_order and name == "gd":
                baseline = best_of(lambda: brute_force_corrections(rule, [TWO_PARAM], [a, b], p), repeats=1)
                print(f"{name:14s} {p:5d} {engine:11.4f} {baseline:16.3f} {baseline / engine:8.0f}x")
            else:
                print(f"{name:14s} {p:5d} {engine:11.4f} {'-':>16s} {'-':>8s}")


if __name__ == "__main__":
    main()
