"""Coordinate-free derivations against the concrete engine on the 2-parameter model, in the same run.

    python benchmarks/coordinate_free.py

The coordinate-free result holds for every loss and dimension; the baseline derives
the same rule and order on one loss (E = (y - a b x)^2/2, or two batch/player losses).
Prints seconds for each and the ratio baseline / coordinate-free (above 1: faster).
"""

from __future__ import annotations

import time

import sympy as sp

import bea

a, b, x, y = sp.symbols("a b x y")
E1 = (y - a * b * x) ** 2 / 2
E2 = (a - b) ** 2 / 2 + a**2 * b / 3


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


CASES = [
    ("heavy ball", bea.rules.HeavyBall(), 2, [E1], [a, b]),
    ("heavy ball", bea.rules.HeavyBall(), 3, [E1], [a, b]),
    ("nesterov", bea.rules.Nesterov(), 2, [E1], [a, b]),
    ("rmsprop (element-wise)", bea.rules.RMSProp(), 1, [E1], [a, b]),
    ("adam (element-wise)", bea.rules.Adam(), 1, [E1], [a, b]),
    ("sgd, 3 batches (coloured)", bea.rules.SGDSteps(3), 3, [E1, E2, E1 + E2], [a, b]),
    ("simultaneous gd (coloured)", bea.rules.SimultaneousGD(), 3, [E1, E2], [[a], [b]]),
    ("sam, rho jointly small", bea.rules.SAM(), 3, [E1], [a, b]),
]


def main():
    print(f"{'rule':28s} {'order':>5s} {'coordinate-free':>16s} {'concrete (baseline)':>20s} {'ratio':>7s}")
    for name, rule, order, losses, params in CASES:
        small = ["rho"] if "jointly" in name else []
        free = seconds(lambda: bea.modified_equation(rule, order, small=small))
        concrete = seconds(lambda: bea.modified_equation(rule, order, losses=losses, params=params))
        print(f"{name:28s} {order:5d} {free:15.2f}s {concrete:19.2f}s {concrete / free:7.2f}")


if __name__ == "__main__":
    main()
