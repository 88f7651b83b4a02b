"""Operations a step function may use beyond arithmetic, on arrays and on the engine's series alike.

A rule's `step` is run twice: on JAX arrays (`bea.iterate`) and on the engine's exact
series (`bea.modified_equation`). Plain arithmetic works on both; these functions are
the few other operations with a meaning on both sides:

    sqrt(x)     element-wise principal square root,
    dot(u, v)   the inner product <u, v> = sum_i u_i v_i (also `u @ v`),
    norm(u)     the Euclidean norm |u| = sqrt(<u, u>).

In the coordinate-free view the parameter vector has no fixed dimension, so a step
may not read components (`len(g)`, `g[i]`, iteration): inner products and norms are
what such code computes, and `dot`/`norm` carry them as scalar invariants
<p, q> of the field (normalized GD, clipping by norm, global-norm adaptive rules).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["dot", "norm", "sqrt"]


def _is_series(x) -> bool:
    return hasattr(x, "algebra") or hasattr(x, "increments")  # jet series, or a B-series tree vector


def sqrt(x):
    """Element-wise principal square root on arrays and on the engine's series alike."""
    if _is_series(x):
        return x.sqrt()
    if isinstance(x, sp.Basic):  # an exact scalar in a step (sqrt(2 h T)): stays exact
        return sp.sqrt(x)
    import jax.numpy as jnp

    return jnp.sqrt(x)


def dot(u, v):
    """The inner product <u, v> = sum_i u_i v_i of two parameter vectors (a scalar); `u @ v` is the same.

    Coordinate-free, <p, q> is a scalar invariant of the field (|grad E|^2 for p = q = grad E);
    its derivative along w is <Dp[w], q> + <p, Dq[w]>.
    """
    if _is_series(u) or _is_series(v):
        return u @ v
    import jax.numpy as jnp

    return jnp.sum(jnp.asarray(u) * jnp.asarray(v))


def norm(u):
    """The Euclidean norm |u| = sqrt(<u, u>); smooth only where u != 0 (the engine refuses |u| = 0 at h = 0)."""
    return sqrt(dot(u, u))
