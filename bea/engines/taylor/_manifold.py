"""The state of an optimizer on its slow manifold, solved numerically on functions of the parameters.

A step (theta, s) -> (Phi(theta, s, h), T(theta, s, h)) with Phi = theta + O(h) has, when the
state's own update contracts at h = 0 (every eigenvalue of A = dT/ds inside the unit disc), an
invariant graph s = S_h(theta) = s_0(theta) + h s_1(theta) + ... (Kovachki & Stuart, "Continuous
time analysis of momentum methods", JMLR 22, 2021, arXiv:1906.04285; Fenichel theory). On it the
parameters follow a one-step map whose modified field is the optimizer's.

S_h solves S(Phi(theta, S(theta))) = T(theta, S(theta)). Newton's method on functions,

    S_{k+1}(theta) = S_k(theta) + (I - A)^{-1} [T(theta, S_k(theta), h) - S_k(Phi(theta, S_k(theta), h))],

gains one power of h per iteration (every point it visits is theta + O(h), where A is the one
at theta_0, h = 0), starting from S_0, the h = 0 fixed point s = T(theta, s, 0). (I - A)^{-1} is
the polynomial p(A) of the minimal polynomial prod_j (A - lambda_j) found by Arnoldi at theta_0:
p(A) = sum_k prod_{j<=k} (1 - lambda_j)^-1 prod_{j<k} (A - lambda_j) (Newton's interpolation
of 1/(1 - lambda), whose divided differences are these products). For optimizers the lambda_j are
the decay rates (beta, rho: a handful), so p(A) costs a few jvps and no Hessian.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..._errors import BeaError
from ._step import Step

__all__ = ["Contraction", "NoSlowManifoldError", "contraction", "rates_depend_on_point", "resolvent", "settle"]

MAX_RATES = 12  # distinct eigenvalues of A at most (optimizers have one per moment estimate)
_BREAKDOWN = 1e-12  # relative size of the Arnoldi residual that ends the Krylov space
_SETTLED = 1e-12  # contraction factors at or above 1 - _SETTLED do not settle


class NoSlowManifoldError(BeaError):
    """The optimizer's state does not contract at h = 0, so it has no slow manifold to describe it on."""


@dataclasses.dataclass(frozen=True)
class Contraction:
    """The linear part A = dT/ds of the state's update at h = 0 and the h = 0 fixed point.

    eigenvalues: the roots of A's minimal polynomial (the decay rates); factor: max |lambda|. T is
    affine in s (checked), so one Newton step from any state reaches the h = 0 fixed point.
    """

    eigenvalues: tuple[complex, ...]
    factor: float

    def describe(self) -> str:
        rates = ", ".join(f"{z.real:.6g}" if abs(z.imag) < 1e-12 else f"{z:.6g}" for z in self.eigenvalues)
        return f"state contracts at h = 0 with rates {rates} (factor {self.factor:.6g})"


def _vector_functions(step: Step, params, h):
    """(s0 vector, unravel, F) with F(theta, svec, h) -> (theta', svec') on the state's float leaves."""
    from jax.flatten_util import ravel_pytree

    template = step.template(params, h)
    s0, unravel = ravel_pytree(step.state_leaves(template))

    def state_of(svec):
        return step.with_state_leaves(template, unravel(svec))

    def F(theta, svec, h):
        new_theta, new_state = step.apply(theta, state_of(svec), h)
        return new_theta, ravel_pytree(step.state_leaves(new_state))[0]

    return s0, state_of, F


def contraction(step: Step, params) -> Contraction | None:
    """The state's contraction at concrete `params`, h = 0 (Arnoldi on A = dT/ds at the h = 0 fixed point),
    None for a step without float state; raises `NoSlowManifoldError` naming the state leaves that do not
    contract."""
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, jnp.float64)
    s0, state_of, F = _vector_functions(step, params, zero)
    if s0.size == 0:
        return None
    rng = np.random.default_rng(0)
    A = _linear_part(F, params, s0)
    eigenvalues = _rates(A, s0.size, rng, step, params)
    _check_affine(step, F, params, s0, A, rng)
    _check_minimal_polynomial(A, eigenvalues, s0.size, rng)
    return Contraction(eigenvalues, max(abs(z) for z in eigenvalues))


def _linear_part(F, params, s):
    """v -> dT/ds v at (params, s, h = 0), jitted."""
    import jax
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, jnp.float64)
    return jax.jit(jax.linearize(lambda x: F(params, x, zero)[1], s)[1])


def _rates(A, n, rng, step, params) -> tuple[complex, ...]:
    """The roots of A's minimal polynomial by Arnoldi from a random vector (exact once the Krylov space is
    invariant); raises where one of them is on or outside the unit circle."""
    import jax.numpy as jnp

    r = rng.normal(size=n)
    V, H = [r / np.linalg.norm(r)], np.zeros((MAX_RATES + 1, MAX_RATES))
    scale, m = 1.0, None
    for k in range(min(MAX_RATES, n)):
        w = np.asarray(A(jnp.asarray(V[k])))
        scale = max(scale, float(np.linalg.norm(w)))
        for j in range(k + 1):
            H[j, k] = V[j] @ w
            w = w - H[j, k] * V[j]
        H[k + 1, k] = np.linalg.norm(w)
        if H[k + 1, k] <= _BREAKDOWN * scale:
            m = k + 1
            break
        V.append(w / H[k + 1, k])
    if m is None and n <= MAX_RATES:
        m = n
    if m is None:
        if _leaves_not_contracting(step, params, A):  # a rate 1 next to rates near 1 defeats Arnoldi: say which
            raise NoSlowManifoldError(_unsettled_message(step, params, A, (1.0 + 0j,)))
        raise NoSlowManifoldError(
            f"the state's update at h = 0 has more than {MAX_RATES} distinct rates (Arnoldi found no invariant "
            "space): bea expects a handful of decay rates (one per moment estimate); is the state's update linear "
            "in the state with rates shared across the parameters?")
    eigenvalues = tuple(complex(z) for z in np.linalg.eigvals(H[:m, :m]))
    if max(abs(z) for z in eigenvalues) >= 1.0 - _SETTLED:
        raise NoSlowManifoldError(_unsettled_message(step, params, A, eigenvalues))
    return eigenvalues


def _check_minimal_polynomial(A, eigenvalues, n, rng):
    """prod_j (A - lambda_j) must annihilate every vector (checked on a fresh random one)."""
    import jax.numpy as jnp

    v = rng.normal(size=n)
    w = v.astype(complex)
    for lam in eigenvalues:
        w = np.asarray(A(jnp.asarray(w.real))) + 1j * np.asarray(A(jnp.asarray(w.imag))) - lam * w
    if np.linalg.norm(w) > 1e-8 * np.linalg.norm(v) * max(1.0, max(abs(z) for z in eigenvalues)) ** len(eigenvalues):
        raise NoSlowManifoldError(
            "the state's linear update at h = 0 is not diagonalizable over a few rates found by Arnoldi (its "
            f"minimal polynomial with roots {eigenvalues} leaves a residual {np.linalg.norm(w):.3g}); bea cannot solve "
            "its slow manifold. Rates that differ by less than 1e-12 merge: make the decays distinct")


def _check_affine(step, F, params, s0, A, rng) -> None:
    """T(theta, s, 0) must be affine in s: T(s1) - T(s2) = A (s1 - s2) for random states (else the Jacobian
    at the h = 0 fixed point differs from A, and Newton on functions would gain no powers of h)."""
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, jnp.float64)
    scale = max(1.0, float(jnp.max(jnp.abs(F(params, s0, zero)[1]))))
    d1, d2 = (jnp.asarray(scale * rng.normal(size=s0.size)) for _ in range(2))
    difference = F(params, s0 + d1, zero)[1] - F(params, s0 + d2, zero)[1]
    linear = A(d1 - d2)
    gap = float(jnp.linalg.norm(difference - linear))
    if not gap <= 1e-9 * max(float(jnp.linalg.norm(linear)), float(jnp.linalg.norm(d1 - d2))):
        raise NoSlowManifoldError(
            f"{step.name}: its state's update is not affine in the state at h = 0 (T(s1) - T(s2) differs from "
            f"dT/ds (s1 - s2) by {gap:.3g}), and bea's numeric slow manifold needs it to be: moving averages of "
            "functions of the gradient (momentum, Adam's moments, Adafactor's factored moments) are. Write the update "
            "so that the state enters its own update linearly, or use the symbolic engine (bea.rules.memory_rule)")


def _leaves_not_contracting(step, params, A) -> list[str]:
    """Paths of the state's float leaves that A maps to themselves undiminished (rate 1: accumulators,
    counts that are float)."""
    import jax.numpy as jnp

    template = step.template(params, jnp.asarray(0.0, jnp.float64))
    paths = step.state_paths(template)
    sizes = [int(np.size(leaf)) for leaf in step.state_leaves(template)]
    names, start = [], 0
    for path, size in zip(paths, sizes):
        e = np.zeros(sum(sizes))
        e[start:start + size] = 1.0
        kept = np.asarray(A(jnp.asarray(e)))[start:start + size]
        if np.linalg.norm(kept) >= (1 - _SETTLED) * np.sqrt(size):
            names.append(path)
        start += size
    return names


def _unsettled_message(step, params, A, eigenvalues) -> str:
    factor = max(abs(z) for z in eigenvalues)
    names = _leaves_not_contracting(step, params, A)
    where = f" (state leaves {', '.join(names[:6])}{' ...' if len(names) > 6 else ''})" if names else ""
    return (f"{step.name}: its state does not settle on a slow manifold: at h = 0 the state's update has contraction "
            f"factor {factor:.6g} >= 1{where}. BEA on a slow manifold needs every state component to forget its past "
            "(a moving average with decay < 1). Accumulators (sums of gradients, float step counts, schedule-free's "
            "averaging weights), hyperparameters kept in the state as functions of the learning rate "
            "(optax.inject_hyperparams: build the optimizer without it) and states anchored at the initial point "
            "are not fast variables: hold them fixed, or write the optimizer as a plain update with them as "
            "parameters (bea.from_update). Constants that init makes from neither the parameters nor the learning "
            "rate and the update passes through (optax.contrib.muon's Newton-Schulz coefficients) are held already")


def rates_depend_on_point(step: Step, params_a, params_b) -> bool:
    """Whether A = dT/ds at h = 0 differs between two parameter points (it does not for moving averages,
    whose rates are constants: then one Arnoldi run serves every point, under jit too)."""
    import jax
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, jnp.float64)
    images = []
    for params in (params_a, params_b):
        s0, _, F = _vector_functions(step, params, zero)
        v = jnp.asarray(np.random.default_rng(1).normal(size=s0.size))
        images.append(np.asarray(jax.jvp(lambda s, params=params, F=F: F(params, s, zero)[1], (s0,), (v,))[1]))
    return bool(np.linalg.norm(images[0] - images[1]) > 1e-12 * max(1.0, np.linalg.norm(images[0])))


def resolvent(A, eigenvalues):
    """v -> (I - A)^{-1} v as Newton's interpolation polynomial of 1/(1 - lambda) in A (module docstring)."""
    import jax.numpy as jnp

    complex_rates = any(abs(z.imag) > 0 for z in eigenvalues)

    def apply(v):
        if not complex_rates:
            term, total, weight = v, jnp.zeros_like(v), 1.0
            for lam in eigenvalues:
                weight /= 1.0 - lam.real
                total = total + weight * term
                term = A(term) - lam.real * term
            return total
        term_re, term_im = v, jnp.zeros_like(v)
        total_re, weight = jnp.zeros_like(v), 1.0 + 0j
        for lam in eigenvalues:
            weight /= 1.0 - lam
            total_re = total_re + weight.real * term_re - weight.imag * term_im
            term_re, term_im = (A(term_re) - lam.real * term_re + lam.imag * term_im,
                                A(term_im) - lam.real * term_im - lam.imag * term_re)
        return total_re

    return apply


def settle(step: Step, params0, contraction_: Contraction, iterations: int):
    """S(theta, h) -> the state on the slow manifold, exact through h^iterations.

    `iterations` Newton steps on functions after the h = 0 fixed point, each exact one power of h
    further (module docstring); the evaluation costs 2^iterations steps. `params0` fixes A (and so
    p(A)); every evaluation point must be within O(h) of it, as all points of the modified field's
    computation at params0 are.
    """
    import jax
    import jax.numpy as jnp

    zero = jnp.asarray(0.0, jnp.float64)
    s0, state_of, F = _vector_functions(step, params0, zero)
    _, A = jax.linearize(lambda s: F(params0, s, zero)[1], s0)  # T is affine in s (checked by `contraction`)
    P = resolvent(A, contraction_.eigenvalues)

    def fixed_point(theta):  # one Newton step is exact: T is affine in s
        return s0 + P(F(theta, s0, zero)[1] - s0)

    def S(k, theta, h):
        if k == 0:
            return fixed_point(theta)
        s = S(k - 1, theta, h)
        theta1, s1 = F(theta, s, h)
        return s + P(s1 - S(k - 1, theta1, h))

    def on_manifold(theta, h):
        template = step.template(theta, h)
        from jax.flatten_util import ravel_pytree

        unravel = ravel_pytree(step.state_leaves(template))[1]
        return step.with_state_leaves(template, unravel(S(iterations, theta, h)))

    return on_manifold
