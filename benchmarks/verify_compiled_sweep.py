"""Verification sweeps compile once (issue 15): the rule's iterates with h traced against `bea.iterate`, which
compiles once per step size, over the same 12 step sizes of GD on two-param (one step each, as the local error).

Run: JAX_PLATFORMS=cpu JAX_ENABLE_X64=1 python benchmarks/verify_compiled_sweep.py
"""

import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from bea.lowering import iterate  # noqa: E402
from bea.rules import GD  # noqa: E402
from bea.verify import model  # noqa: E402
from bea.verify._iterates import compiled_iterates  # noqa: E402

STEP_SIZES = 0.02 * 2.0 ** -np.arange(12)


def baseline(m):
    return [np.asarray(iterate(GD(), m.jax_losses[0], m.theta0, h, 1))[-1] for h in STEP_SIZES]


def compiled(m):
    run = compiled_iterates(GD(), m, {}, None, 1)
    return [run(h, 1)[0][-1] for h in STEP_SIZES]


def best(fn, m, repeats=3):
    times = []
    for _ in range(repeats):
        jax.clear_caches()
        from bea.verify import _iterates

        _iterates._COMPILED.clear()
        start = time.perf_counter()
        out = fn(m)
        times.append(time.perf_counter() - start)
    return min(times), out


if __name__ == "__main__":
    m = model("two-param")
    old, a = best(baseline, m)
    new, b = best(compiled, m)
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-13)
    print(f"{len(STEP_SIZES)} step sizes, cold: bea.iterate per h {old:.3f} s, compiled once {new:.3f} s, "
          f"ratio {old / new:.1f}x")
