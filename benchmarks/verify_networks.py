"""Local- or global-error slopes of numeric modified fields on networks (issue 17): GD and Adam, orders 0..2, on the
CNN and the transformer of `bea.verify.NETWORK_MODELS` (>= 100k parameters each), against optax's own iterates.

Each sweep batches its step sizes into one program, vmapped over h and sharded over all JAX devices; emulate
devices on a CPU with XLA_FLAGS=--xla_force_host_platform_device_count=N.

Run: JAX_PLATFORMS=cpu JAX_ENABLE_X64=1 python benchmarks/verify_networks.py [--models cnn-digits,...]
     [--optimizers gd,adam] [--orders 0,1,2] [--kind global --time gd=1,adam=1e-5]
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import optax  # noqa: E402

import bea  # noqa: E402

OPTIMIZERS = {
    "gd": lambda lr: optax.sgd(lr),
    # eps inside the root: optax's default eps outside is singular where a gradient component vanishes identically.
    # Adam's stiffness on components with g ~ 0 is 1/sqrt(eps_root), and the expansion's window of step sizes shrinks
    # with it: at eps_root = 1e-8 the transformer's order-1 window closes against round-off (h ~ 1e-8).
    "adam": lambda lr: optax.adam(lr, b1=0.9, b2=0.99, eps=0.0, eps_root=EPS_ROOT),
}
EPS_ROOT = 1e-6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn-digits,transformer-sequence")
    parser.add_argument("--optimizers", default="gd,adam")
    parser.add_argument("--orders", default="0,1,2")
    parser.add_argument("--eps-root", type=float, default=EPS_ROOT, help="Adam's eps inside the root")
    parser.add_argument("--kind", choices=["local", "global"], default="local")
    parser.add_argument("--time", default="gd=1,adam=1e-5",
                        help="global error: the time per optimizer (N = time/h steps)")
    args = parser.parse_args()
    times = {k: float(v) for k, v in (item.split("=") for item in args.time.split(","))}
    globals()["EPS_ROOT"] = args.eps_root
    print(f"devices: {len(jax.devices())} ({jax.devices()[0].platform})")
    print(f"{'model':22} {'params':>8} {'optimizer':9} {'order':>5} {'slope':>6} {'expected':>8} {'window h':>22} "
          f"{'time':>7}  passes")
    for name in args.models.split(","):
        model = bea.verify.network_model(name)
        for optimizer in args.optimizers.split(","):
            for order in map(int, args.orders.split(",")):
                start = time.perf_counter()
                field = bea.from_optax(OPTIMIZERS[optimizer], order, loss=model.loss, name=optimizer)
                if args.kind == "local":
                    result = bea.verify.local_error(field, model, order)
                else:
                    result = bea.verify.global_error(field, model, order, time=times[optimizer])
                elapsed = time.perf_counter() - start
                window = f"{max(result.h):.3g}..{min(result.h):.3g}"
                print(f"{name:22} {model.n_parameters:>8} {optimizer:9} {order:>5} {result.slope:>6.3f} "
                      f"{result.expected:>8} {window:>22} {elapsed:>6.0f}s  {result.passes()}", flush=True)


if __name__ == "__main__":
    main()
