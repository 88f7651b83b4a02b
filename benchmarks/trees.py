"""Modified-equation tree coefficients: bea against kauri (when installed), in the same run.

    python benchmarks/trees.py [--order 9] [--methods midpoint,euler]

Computes b(t) for all trees with at most ORDER nodes (486 trees for 9) and prints the
seconds and the ratio kauri / bea. BSeries.jl publishes about 0.05 s for the same task.
"""

from __future__ import annotations

import argparse
import time

import bea
from bea.rules import TABLEAUS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", type=int, default=9, help="largest tree size (nodes)")
    parser.add_argument("--methods", default="midpoint,euler")
    parser.add_argument("--no-kauri", action="store_true", help="skip the kauri baseline")
    args = parser.parse_args()
    try:
        import kauri
    except ImportError:
        kauri = None
    print(f"{'method':10s} {'trees':>6s} {'bea [s]':>9s} {'kauri [s]':>10s} {'ratio':>8s}")
    for name in args.methods.split(","):
        rule = TABLEAUS[name]
        start = time.perf_counter()
        terms = bea.tree_coefficients(rule, args.order - 1)
        ours = time.perf_counter() - start
        if kauri is None or args.no_kauri:
            print(f"{name:10s} {len(terms):6d} {ours:9.3f} {'-':>10s} {'-':>8s}")
            continue
        start = time.perf_counter()
        method = kauri.RK([list(row) for row in rule.A], list(rule.b))
        modified = method.modified_equation_map()
        for tree in kauri.trees_up_to_order(args.order):
            modified(tree)
        theirs = time.perf_counter() - start
        print(f"{name:10s} {len(terms):6d} {ours:9.3f} {theirs:10.2f} {theirs / ours:7.0f}x")


if __name__ == "__main__":
    main()
