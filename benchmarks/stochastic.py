"""Stochastic modified equations: engine speed against brute-force moment matching, measured in the same run.

    python benchmarks/stochastic.py [--repeats 3]

(a) Concrete: SGD with batch size 1 on the 2-parameter model E_i = (y_i - a b x_i)^2 / 2 with N = 4
    data points, order 1 (issue 14's target: under 1 s). Brute force: for the test monomials
    phi in {a, b, a^2, a b, b^2}, the exact series of E[phi(theta - h g_I)] (sympy.series, averaged
    over the 4 examples) is matched order by order with exp(h L) phi, L = b~ . grad + 1/2 D~ : hess,
    b~ and D~ unknown, by sympy.solve; the result is checked against the engine's.
(b) Coordinate-free: SGD (batch 1 and 2) and Langevin at order 2, the generator beyond the SDE
    included (target: under 2 s). Caches are cleared before each run, so every run starts cold.
Prints seconds and the ratio brute force / engine.
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import bea
from bea.engines.stochastic import _tensor_networks

a, b = sp.symbols("a b")
PARAMS = [a, b]
DATA = [(1, 1), (2, -1), (-1, 2), (3, sp.Rational(1, 2))]  # (x_i, y_i)
LOSSES = [(y - a * b * x) ** 2 / 2 for x, y in DATA]


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        _tensor_networks._canonical.cache_clear()
        _tensor_networks._compose_cached.cache_clear()
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def brute_force_sme(losses, params, order=1):
    """b_0..b_order, D_0..D_order by matching E[phi(theta + Delta)] with exp(h L) phi for monomials phi."""
    h = sp.Symbol("h")
    n = len(params)
    test_functions = [*params] + [params[i] * params[k] for i in range(n) for k in range(i, n)]
    known_b, known_D = [], []
    for l in range(order + 1):
        b_l = sp.symbols(f"b{l}_0:{n}")
        D_l = sp.Matrix(n, n, lambda i, k: sp.Symbol(f"D{l}_{min(i, k)}{max(i, k)}"))
        drift = [sum(h**j * known_b[j][i] for j in range(l)) + h**l * b_l[i] for i in range(n)]
        diffusion = sum((h**j * known_D[j] for j in range(l)), sp.zeros(n)) + h**l * D_l

        def L(f, drift=drift, diffusion=diffusion):
            return (sum(drift[i] * sp.diff(f, params[i]) for i in range(n))
                    + sum(diffusion[i, k] * sp.diff(f, params[i], params[k]) for i in range(n) for k in range(n)) / 2)

        equations = []
        for phi in test_functions:
            step = sum(phi.subs({p: p - h * sp.diff(E, p) for p in params}, simultaneous=True) for E in losses)
            step_series = sp.series(step / len(losses), h, 0, l + 2).removeO()
            flow, term = sp.Integer(0), phi
            for k in range(l + 2):
                flow += h**k * term / sp.factorial(k)
                term = sp.expand(L(term))
            equations.append(sp.expand(step_series - flow).coeff(h, l + 1))
        unknowns = list(b_l) + sorted(D_l.free_symbols, key=str)
        solution = sp.solve(equations, unknowns, dict=True)[0]
        known_b.append([sp.expand(solution[s]) for s in b_l])
        known_D.append(D_l.xreplace(solution).applyfunc(sp.expand))
    return known_b, known_D


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print("(a) concrete: SGD batch 1, E_i = (y_i - a b x_i)^2/2, N = 4, order 1 (target < 1 s)")
    engine, sme = best_of(
        lambda: bea.stochastic_modified_equation(bea.rules.SGD(), 1, losses=LOSSES, params=PARAMS), args.repeats)
    baseline, (drift, diffusion) = best_of(lambda: brute_force_sme(LOSSES, PARAMS, 1), 1)
    for l in range(2):
        assert all(sp.expand(sme.drift[l][i] - drift[l][i]) == 0 for i in range(2)), "drift differs"
        assert sp.expand(sme.diffusion[l] - diffusion[l]) == sp.zeros(2), "diffusion differs"
    print(f"    engine {engine:.3f} s, brute force {baseline:.3f} s, ratio {baseline / engine:.0f}x (results agree)")

    print("(b) coordinate-free, order 2 with the generator beyond the SDE (target < 2 s)")
    free_rules = {"sgd (batch 1)": bea.rules.SGD(), "sgd (batch 2)": bea.rules.SGD(batch_size=2),
                  "langevin": bea.rules.Langevin()}
    for name, rule in free_rules.items():
        seconds, _ = best_of(lambda: bea.stochastic_modified_equation(rule, 2, allow_generator=True), args.repeats)
        print(f"    {name:14s} {seconds:.4f} s")
    seconds, _ = best_of(lambda: bea.stochastic_modified_equation(bea.rules.SGD(), 3, allow_generator=True),
                         args.repeats)
    print(f"    {'sgd order 3':14s} {seconds:.4f} s")


if __name__ == "__main__":
    main()
