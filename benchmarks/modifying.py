"""Modifying field (inverse BEA) of GD on the two-parameter model, against deriving GD's modified equation to the
same order, measured cold in the same run (memoized derivations cleared before each timing).

    python benchmarks/modifying.py [P]      (default P = 4)
"""

from __future__ import annotations

import sys
import time

import sympy as sp

import bea
from bea._modifying import modifying_equation

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def cold(function) -> float:
    best = float("inf")
    for _ in range(3):
        bea.modified_equation.cache_clear()
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(p: int) -> None:
    rule = bea.rules.GD()
    modifying = cold(lambda: modifying_equation(rule, p, loss=TWO_PARAM, params=[a, b]))
    forward = cold(lambda: bea.modified_equation(rule, p, loss=TWO_PARAM, params=[a, b]))
    print(f"GD, two-parameter model, order {p}: modifying field {modifying:.4f} s, modified equation {forward:.4f} s "
          f"(ratio {modifying / forward:.1f}x: one derivation per order on the corrected field)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
