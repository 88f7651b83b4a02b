"""Cost of the lowered coordinate-free field of GD on a tanh MLP, in gradient evaluations.

    python benchmarks/lowering.py [--hidden 32] [--repeats 30]

Trains nothing: evaluates, jitted, median of repeats, on scikit-learn's digits
(64 inputs, 10 classes, 1797 samples; shipped with the package, no download):
(a) one gradient, the unit; the field through order 1, 2, 3 from
`bea.modified_equation(GD(), p).to_jax(loss=...)`; (c) order 1 by the
stop-gradient trick of the literature, grad of g . stop_gradient(g) = H g;
(b) order 2 from a dense `jax.hessian` and third-derivative tensor on a model
small enough for them (16 pixels, 200 samples). Ratios are against (a) measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import bea

jax.config.update("jax_enable_x64", True)


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    X = jnp.asarray(data.data / 16.0)
    Y = jax.nn.one_hot(jnp.asarray(data.target), 10)
    return X, Y


def init(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)} for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def mlp_loss(params, X, Y):
    z = X
    for layer in params[:-1]:
        z = jnp.tanh(z @ layer["w"] + layer["b"])
    logits = z @ params[-1]["w"] + params[-1]["b"]
    return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(logits), axis=1))


def median_seconds(fn, repeats):
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    X, Y = digits()
    params = init(jax.random.PRNGKey(0), [64, args.hidden, 10])
    n_params = ravel_pytree(params)[0].size

    def loss(p):
        return mlp_loss(p, X, Y)

    grad = jax.jit(jax.grad(loss))
    unit = median_seconds(lambda: grad(params), args.repeats)
    print(f"tanh MLP 64-{args.hidden}-10 on digits ({X.shape[0]} samples), {n_params} parameters")
    print(f"{'evaluation':44s} {'ms':>9s} {'gradients':>10s}")
    print(f"{'(a) one gradient':44s} {1e3 * unit:9.2f} {1.0:10.2f}")
    for order in (1, 2, 3):
        field = bea.modified_equation(bea.rules.GD(), order).to_jax(loss=loss)
        seconds = median_seconds(lambda field=field: field(params, 0.1), args.repeats)
        print(f"{f'bea field through order {order}':44s} {1e3 * seconds:9.2f} {seconds / unit:10.2f}")

    @jax.jit
    def stop_gradient_trick(p):
        g = jax.grad(loss)(p)
        hg = jax.grad(lambda q: sum(jnp.vdot(a, jax.lax.stop_gradient(b)) for a, b in
                                    zip(jax.tree_util.tree_leaves(jax.grad(loss)(q)), jax.tree_util.tree_leaves(g))))(p)
        return jax.tree_util.tree_map(lambda a, b: -a - 0.05 * b, g, hg)

    seconds = median_seconds(lambda: stop_gradient_trick(params), args.repeats)
    print(f"{'(c) order 1 by the stop-gradient trick':44s} {1e3 * seconds:9.2f} {seconds / unit:10.2f}")

    Xs, Ys = X[:200, ::4], Y[:200]  # 16 pixels, 200 samples: the dense tensors must fit in memory
    small = init(jax.random.PRNGKey(1), [16, 4, 10])
    flat, unravel = ravel_pytree(small)

    def small_loss(z):
        return mlp_loss(unravel(z), Xs, Ys)

    @jax.jit
    def dense(z):
        g = jax.grad(small_loss)(z)
        H = jax.hessian(small_loss)(z)
        T = jax.jacfwd(jax.hessian(small_loss))(z)
        return -g - 0.05 * H @ g + 0.01 * (-jnp.einsum("ijk,j,k->i", T, g, g) / 12 - H @ (H @ g) / 3)

    small_grad = jax.jit(jax.grad(small_loss))
    small_unit = median_seconds(lambda: small_grad(flat), args.repeats)
    small_field = bea.modified_equation(bea.rules.GD(), 2).to_jax(loss=lambda p: mlp_loss(p, Xs, Ys))
    seconds_dense = median_seconds(lambda: dense(flat), max(3, args.repeats // 10))
    seconds_bea = median_seconds(lambda: small_field(small, 0.1), args.repeats)
    print(f"16-4-10 model on 200 samples ({flat.size} parameters):")
    print(f"{'(b) order 2 from dense Hessian and 3-tensor':44s} {1e3 * seconds_dense:9.2f} {seconds_dense / small_unit:10.2f}")
    print(f"{'bea field through order 2':44s} {1e3 * seconds_bea:9.2f} {seconds_bea / small_unit:10.2f}")
    print(f"dense / bea: {seconds_dense / seconds_bea:.1f}x")


if __name__ == "__main__":
    main()
