"""Operations a step function may use beyond arithmetic, on arrays and on the engine's series alike.

A rule's `step` is run twice: on JAX arrays (`bea.iterate`) and on the engine's exact
series (`bea.modified_equation`). Plain arithmetic works on both; these functions are
the few other operations with a meaning on both sides:

    sqrt(x)     element-wise principal square root,
    dot(u, v)   the inner product <u, v> = sum_i u_i v_i (also `u @ v`),
    norm(u)     the Euclidean norm |u| = sqrt(<u, u>),
    fixed_point(fn, x0)
                the solution x = fn(x) near x0 of an implicit equation (implicit GD,
                implicit midpoint, implicit Runge-Kutta stages).

In the coordinate-free view the parameter vector has no fixed dimension, so a step
may not read components (`len(g)`, `g[i]`, iteration): inner products and norms are
what such code computes, and `dot`/`norm` carry them as scalar invariants
<p, q> of the field (normalized GD, clipping by norm, global-norm adaptive rules).
"""

from __future__ import annotations

import sympy as sp

from .._errors import ImplicitSolveError, InconsistentRuleError

__all__ = ["ImplicitSolveError", "dot", "fixed_point", "norm", "sqrt"]

#: Iterations the numeric solve of `fixed_point` takes at most (the error is linear with rate about h L).
MAX_ITERATIONS = 1000
_traced_solves = [0]  # numeric solves traced so far: `bea.iterate` names the solve when its iterates are NaN


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


def fixed_point(fn, x0, *, max_iterations: int = MAX_ITERATIONS):
    """The solution x of the implicit equation x = fn(x) near x0, on arrays and on the engine's series alike.

    x (and x0, and what fn returns) is a parameter vector or a tuple of them (the stages of an
    implicit Runge-Kutta method). Implicit rules are written with it::

        implicit GD (proximal point):  fixed_point(lambda x: theta - h * grad(x), theta)
        implicit midpoint:             fixed_point(lambda x: theta - h * grad((theta + x) / 2), theta)

    On the engine's series the equation is solved exactly: when fn(x) = theta + h g(x), each
    application of fn fixes one more power of h (Banach's fixed-point theorem in the h-adic
    metric), so at most N + 2 applications settle the truncation at h^N. If the iterates do not
    settle, fn does not contract at h = 0 (the unknown enters fn at O(1), not through O(h)
    terms) and `InconsistentRuleError` is raised: such an equation has no power series in h.

    On arrays the same iteration x_{k+1} = fn(x_k) runs in a `jax.lax.while_loop` until it
    stops moving (|x_{k+1} - x_k| at the round-off level of x, or no longer decreasing once
    below 1e4 machine epsilons), at most `max_iterations` times. It converges linearly with
    rate about h L (L the Lipschitz constant of grad E) when h L < 1. Inside `jax.jit` an error
    cannot be raised: a solve that does not converge returns NaN, and `bea.iterate` then raises
    `ImplicitSolveError` naming the step size (the verification sweeps flag such a step size as
    diverged). References: Hairer, Lubich & Wanner, Geometric Numerical Integration, 2nd ed.,
    Springer 2006, Sec. VIII.6 (doi:10.1007/3-540-30666-8); Rockafellar, SIAM J. Control Optim.
    14 (1976) 877 (the proximal point iteration, doi:10.1137/0314056).
    """
    leaves = list(x0) if isinstance(x0, (tuple, list)) else [x0]
    if not leaves:
        raise InconsistentRuleError("fixed_point needs at least one unknown (x0 is empty)")
    if _is_series(leaves[0]):
        return _series_fixed_point(fn, x0, leaves[0])
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise InconsistentRuleError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    return _array_fixed_point(fn, x0, max_iterations)


def _truncation(x) -> int:
    """The highest power of h the engine's series keeps."""
    return x.n if hasattr(x, "increments") else len(x.coeffs) - 1


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(map(_same, a, b))
    difference = a - b
    if hasattr(difference, "terms"):  # a B-series: zero terms are dropped
        return not difference.terms
    # exact (`vanishes`: also zeros hidden by related atoms, sqrt(v)^2 = v) where the algebra has it
    is_zero = getattr(difference.algebra, "vanishes", difference.algebra.is_zero)
    return all(all(map(is_zero, c)) if isinstance(c, tuple) else is_zero(c) for c in difference.coeffs)


def _series_fixed_point(fn, x0, leaf):
    x = x0
    bound = _truncation(leaf) + 2
    for _ in range(bound):
        new = fn(x)
        if isinstance(x0, (tuple, list)):
            new = type(x0)(new)
            if len(new) != len(x0):
                raise InconsistentRuleError(f"fixed_point: fn returned {len(new)} unknowns for {len(x0)}")
        if _same(new, x):
            return new
        x = new
    raise InconsistentRuleError(
        f"the implicit equation x = fn(x) did not settle on the power series in h after {bound} iterations: fn "
        "does not contract at h = 0, so the equation has no solution that is a power series in h. Write it as "
        "x = theta + h * (...), the unknown x entering only through terms of order h (implicit GD: "
        "fixed_point(lambda x: theta - h * grad(x), theta))"
    )


def _array_fixed_point(fn, x0, max_iterations: int):
    import jax
    import jax.numpy as jnp

    _traced_solves[0] += 1
    leaves, tree = jax.tree_util.tree_flatten(x0)
    leaves = [jnp.asarray(v) for v in leaves]
    dtype = jnp.result_type(*leaves)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    leaves = [v.astype(dtype) for v in leaves]
    eps = float(jnp.finfo(dtype).eps)
    huge = float(jnp.finfo(dtype).max)

    def apply(vs):
        out = fn(jax.tree_util.tree_unflatten(tree, vs))
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        if out_tree != tree:
            raise InconsistentRuleError(f"fixed_point: fn returned {out_tree}, not the shape of x0 ({tree})")
        return [jnp.asarray(v).astype(dtype).reshape(v0.shape) for v, v0 in zip(out_leaves, vs)]

    def size(vs):
        return jnp.max(jnp.stack([jnp.max(jnp.abs(v), initial=0.0) for v in vs]))

    def settled(dx, previous, vs):
        scale = jnp.maximum(1.0, size(vs))
        return (dx <= 16 * eps * scale) | ((dx >= previous) & (dx <= 1e4 * eps * scale))

    def keep_going(state):
        vs, dx, previous, k = state
        return (k < max_iterations) & jnp.isfinite(dx) & ~settled(dx, previous, vs)

    def body(state):
        vs, dx, _, k = state
        new = apply(vs)
        return new, size([a - b for a, b in zip(new, vs)]), dx, k + 1

    start = (leaves, jnp.asarray(huge, dtype), jnp.asarray(huge, dtype), jnp.asarray(0))
    vs, dx, previous, _ = jax.lax.while_loop(keep_going, body, start)
    ok = jnp.isfinite(dx) & settled(dx, previous, vs)
    vs = [jnp.where(ok, v, jnp.nan) for v in vs]
    return jax.tree_util.tree_unflatten(tree, vs)


def traced_solves() -> int:
    """How many numeric solves `fixed_point` has traced in this process (`bea.iterate` compares before and after)."""
    return _traced_solves[0]
