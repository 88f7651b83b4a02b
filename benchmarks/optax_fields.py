"""Cost of the numeric engine's modified field (`bea.from_optax`) on networks, in gradient evaluations.

    python benchmarks/optax_fields.py [--models mlp-digits,cnn-digits,transformer-sequence]
        [--orders 0,1,2] [--repeats 20] [--mode jvp,jet] [--optimizers gd,heavy-ball,adam] [--all-threads]

For each network model of `bea.verify.network_model` and each optimizer (optax.sgd, optax.sgd with
momentum 0.9, optax.adam(b1=0.9, b2=0.999, eps=1e-8)), `field.terms` = [f_0, ..., f_order] is jitted
(compiled once, outside the timing) and timed as the median of `--repeats` calls (block_until_ready);
the unit is the median of jitted `jax.grad(loss)` on the same model, timed again alternately with each
row (so that load from other processes shifts both alike). XLA runs on one thread unless --all-threads:
gradient-equivalents on one core, steadier on a shared machine. Columns:

    cpu s     median CPU seconds of one jitted `field.terms(params)` (this process, all its threads)
    grads     cpu s / that of one gradient (the issue's "gradient-equivalents")
    wall      the same ratio in elapsed time (noisy on a shared machine)
    flops     XLA's flop count of the compiled terms / that of the compiled gradient (deterministic:
              a machine-independent check of `grads`, from `Compiled.cost_analysis()`)
    target    the issue's bound at order 2 (GD and heavy ball 10 gradients, Adam 12); "-" elsewhere
    temp/P    the compiled program's temporary memory (`Compiled.memory_analysis().temp_size_in_bytes`)
              over the parameters' bytes: a constant independent of P means memory O(parameters)
              (no Hessian, no per-example Jacobian); the gradient's own ratio is printed as the unit

The slow manifold's rates (the contraction) are found once per optimizer before timing: they are
constants of the compiled program, as in `TaylorModifiedField.terms`. optax.adam with eps outside the
root has an infinite f_1 where a gradient component vanishes identically (the digits' blank pixels):
the row is timed all the same (the program is the same) and says so; `adam-eps-root` (eps inside the
root) is finite everywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

OPTIMIZERS = {  # factory(learning_rate) -> optax.GradientTransformation, built lazily (optax imported in main)
    "gd": lambda optax, lr: optax.sgd(lr),
    "heavy-ball": lambda optax, lr: optax.sgd(lr, momentum=0.9),
    "adam": lambda optax, lr: optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8),
    "adam-eps-root": lambda optax, lr: optax.adam(lr, b1=0.9, b2=0.999, eps=0.0, eps_root=1e-8),
}
#: The issue's targets for the order-2 field, in gradient-equivalents.
TARGETS = {("gd", 2): 10.0, ("heavy-ball", 2): 10.0, ("adam", 2): 12.0, ("adam-eps-root", 2): 12.0}


def paired_medians(first, second, args, repeats: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall, cpu) of first, (wall, cpu) of second): medians of `repeats` calls made alternately, so that a
    change of load from other processes falls on both alike. cpu is this process's CPU time (all its threads),
    which other processes' load barely changes; wall is elapsed time."""
    import jax

    jax.block_until_ready(first(*args))  # compile (and warm caches) outside the timing
    jax.block_until_ready(second(*args))
    samples = ([], [])
    for _ in range(repeats):
        for fn, out in zip((first, second), samples):
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return tuple((statistics.median(w for w, _ in out), statistics.median(c for _, c in out)) for out in samples)


def compiled_stats(fn, params) -> tuple[float, int]:
    """(XLA flop count, temporary bytes) of the compiled fn(params)."""
    import jax

    compiled = jax.jit(fn).lower(params).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older jaxlibs return one dict per program
    return float(cost.get("flops", float("nan"))), int(compiled.memory_analysis().temp_size_in_bytes)


def parameter_bytes(params) -> int:
    import jax
    import numpy as np

    return sum(int(np.size(x)) * np.asarray(x).dtype.itemsize for x in jax.tree_util.tree_leaves(params))


def run(models, orders, optimizers, modes, repeats):
    import jax
    import optax

    import bea
    from bea._errors import BeaError
    from bea.results._taylor import NonFiniteFieldError
    from bea.verify import network_model

    jax.config.update("jax_enable_x64", True)
    header = (f"{'model':22s} {'params':>8s} {'optimizer':13s} {'mode':4s} {'order':>5s} {'cpu s':>10s} {'grads':>7s} "
              f"{'wall':>7s} {'flops':>7s} {'target':>6s} {'':4s} {'temp/P':>7s}")
    threads = "one XLA thread" if "--xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "") else "all threads"
    print(f"jax {jax.__version__}, optax {optax.__version__}, {jax.devices()[0].platform}, {threads}; median of "
          f"{repeats} repeats")
    print(header)
    print("-" * len(header))
    failures = []
    for name in models:
        model = network_model(name)
        params = model.params0
        grad = jax.jit(jax.grad(model.loss))
        (unit_wall, unit), _ = paired_medians(grad, grad, (params,), repeats)
        unit_flops, unit_temp = compiled_stats(jax.grad(model.loss), params)
        pbytes = parameter_bytes(params)
        print(f"{name:22s} {model.n_parameters:8d} {'gradient':13s} {'':4s} {'':>5s} {unit:10.3e} {1.0:7.2f} "
              f"{1.0:7.2f} {1.0:7.2f} {'':>6s} {'':4s} {unit_temp / pbytes:7.2f}")
        for optimizer in optimizers:
            for mode in modes:
                for order in orders:
                    factory = lambda lr, optimizer=optimizer: OPTIMIZERS[optimizer](optax, lr)  # noqa: E731
                    field = bea.from_optax(factory, order, loss=model.loss, mode=mode, name=optimizer)
                    note = ""
                    try:  # the checks and the slow manifold's rates, once, on concrete params
                        field.terms(params)
                    except NonFiniteFieldError as exc:  # the cost is that of a finite field: time it, say so
                        note = f" (field not finite here: {str(exc).split(':')[1].strip()[:60]}...)"
                    except BeaError as exc:  # e.g. mode="jet" on a primitive without a jet rule
                        print(f"{name:22s} {model.n_parameters:8d} {optimizer:13s} {mode:4s} {order:5d} "
                              f"n/a: {type(exc).__name__}: {str(exc)[:90]}", flush=True)
                        continue
                    terms = jax.jit(field.terms)
                    (unit_wall, unit), (wall, seconds) = paired_medians(grad, terms, (params,), repeats)
                    flops, temp = compiled_stats(field.terms, params)
                    target = TARGETS.get((optimizer, order))
                    ratio = seconds / unit
                    verdict = "" if target is None else ("pass" if ratio <= target else "FAIL")
                    if verdict == "FAIL":
                        failures.append((name, optimizer, mode, order, ratio, target))
                    bound = "-" if target is None else f"{target:g}"
                    print(f"{name:22s} {model.n_parameters:8d} {optimizer:13s} {mode:4s} {order:5d} {seconds:10.3e} "
                          f"{ratio:7.2f} {wall / unit_wall:7.2f} {flops / unit_flops:7.2f} {bound:>6s} "
                          f"{verdict:4s} {temp / pbytes:7.2f}{note}", flush=True)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp-digits,cnn-digits,transformer-sequence")
    parser.add_argument("--orders", default="0,1,2")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--mode", default="jvp,jet", help="comma-separated engine modes: auto, jvp, jet")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--all-threads", action="store_true", help="let XLA use every core (default: one thread)")
    args = parser.parse_args(argv)
    if not args.all_threads:  # before jax is imported: XLA reads its flags once
        # the XLA flag; the bare token is the setting JAX's FAQ pairs with it (XLA itself ignores it)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    failures = run(args.models.split(","), [int(k) for k in args.orders.split(",")], args.optimizers.split(","),
                   args.mode.split(","), args.repeats)
    for name, optimizer, mode, order, ratio, target in failures:
        print(f"missed: {name} {optimizer} mode={mode} order {order}: {ratio:.2f} gradients > {target:g}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
