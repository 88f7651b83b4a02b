"""The global weak error of a stochastic modified equation on linear regression, without Monte Carlo.

On a finite data set, E_i(theta) = (x_i . theta - y_i)^2 / 2, one step of SGD on batch I is affine,
theta' = A_I theta + c_I (A_I = 1 - (h/B) sum_{i in I} x_i x_i^T, c_I = (h/B) sum_{i in I} y_i x_i), and
one Langevin step is theta' = A theta + c + sqrt(2hT) xi. So the mean m and the second moment
M = E[theta theta^T] of theta_n follow exact linear recursions (the batch independent of theta):

    m' = E_I[A_I m + c_I],   M' = E_I[A_I M A_I^T + A_I m c_I^T + c_I m^T A_I^T + c_I c_I^T] (+ 2hT 1).

The SME's drift b~(theta) = B theta + beta is affine and its diffusion D~ quadratic in theta (the
generator's coefficients keep "degree = differential order" under composition), so its moments
follow the linear ODEs (Lyapunov equations)

    m. = B m + beta,   M. = B M + M B^T + beta m^T + m beta^T + E[D~(X)],

E[D~(X)] linear in (M, m, 1); solved exactly on (m, vec M, 1) by a matrix exponential
(scipy.linalg.expm). For phi of degree <= 2, E[phi] is linear in (m, M, 1): compared at time
T = n h, the difference is O(h^{p+1}) for the SME truncated after h^p (Li, Tai & E, JMLR 20 (2019),
arXiv:1811.01558, Thm 3 with the weak-error global estimate).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import sympy as sp

from ..engines.series._jet import STEP_SIZE
from ._checks import VerificationError, check_step_sizes, check_time
from ._weak_local import default_local_step_sizes
from ._weak_result import WeakErrorResult, derive, fit, prepare, resolve_model, resolve_test_functions

__all__ = ["weak_global_error"]

_ROUNDOFF = 1e-12  # relative to the size of the moment: below this, float64 noise
_STEPS = 16  # default time: 16 steps of the largest default step size


def weak_global_error(rule, order: int, *, model="linear-regression", step_sizes=None, time=None,
                      test_functions=None, values=None) -> WeakErrorResult:
    """|E phi(theta_n) - E phi(X_T)| at T = n h on linear regression, exact moments; slopes expected order + 1.

    Args:
        rule: `bea.rules.SGD(batch_size=B, replacement=...)` or `bea.rules.Langevin(temperature=T)`.
        order: p, the SME truncated after h^p.
        model: a linear-regression `bea.verify.FiniteSumModel` (`FiniteSumModel.linear_regression`)
            or its name; default "linear-regression".
        step_sizes, time: each h must divide `time` (T = n h); default: `default_local_step_sizes`
            (powers of 2) and time = 16 times the largest of them, so n runs from 16 to 256.
        test_functions: polynomials of degree <= 2 in the params (their expectations are linear in
            the first two moments); default the coordinates, quadratic monomials and E.
        values: hyperparameters without a value in the rule.

    Returns a `WeakErrorResult`; points whose error is below float64 round-off are flagged.
    Reference: Li, Tai & E, JMLR 20 (2019), arXiv:1811.01558.
    """
    from scipy.linalg import expm

    model = resolve_model(model)
    if model.linear is None:
        raise VerificationError(f"the global weak error is exact on linear regression only; {model.name} is not one "
                                "(use bea.verify.FiniteSumModel.linear_regression, or monte_carlo_weak_error)")
    rule, order = prepare(rule, model, order, values)
    phis = resolve_test_functions(test_functions, model)
    functionals = {name: _quadratic_form(phi, model.params, name) for name, phi in phis.items()}
    if step_sizes is None:
        step_sizes = default_local_step_sizes(model, order)
    hs = check_step_sizes(step_sizes)
    time = _STEPS * max(hs) if time is None else check_time(time)
    steps = []
    for h in hs:
        n = round(time / h)
        if n < 1 or abs(n * h - time) > 1e-9 * time:
            raise VerificationError(f"step_sizes: h={h:g} does not divide time={time:g} (T = n h); choose step sizes "
                                    f"like time/16, time/32, ...")
        steps.append(n)
    sme = derive(rule, model, order)
    drift, diffusion = _sme_coefficients(sme, model.params, order)
    theta0 = model.theta0_array()
    dim = len(theta0)
    errors = {name: [] for name in phis}
    scales = {name: [] for name in phis}
    for h, n in zip(hs, steps):
        m_rule, M_rule = _rule_moments(rule, model, h, n)
        K = _moment_generator(drift, diffusion, h, dim)
        z0 = np.concatenate([theta0, np.outer(theta0, theta0).ravel(), [1.0]])
        z = expm(time * K) @ z0
        m_sde, M_sde = z[:dim], z[dim:dim + dim * dim].reshape(dim, dim)
        for name, (Q, q, r) in functionals.items():
            rule_value = np.sum(Q * M_rule) + q @ m_rule + r
            sde_value = np.sum(Q * M_sde) + q @ m_sde + r
            errors[name].append(abs(rule_value - sde_value))
            scales[name].append(max(1.0, abs(rule_value)))
    sweeps = []
    for name in phis:
        flags = ["round-off" if e < _ROUNDOFF * s else "" for e, s in zip(errors[name], scales[name])]
        if not np.all(np.isfinite(errors[name])):
            raise VerificationError(f"the moments diverge for {name}; choose smaller step sizes or a shorter time")
        sweeps.append((name, fit("weak global", hs, errors[name], flags, order + 1)))
    return WeakErrorResult("weak global", rule.name, model.name, order, order + 1, tuple(sweeps),
                           note=f"exact moments at T={time:g}: linear recursions vs Lyapunov ODEs (expm)")


def _quadratic_form(phi, params, name):
    """(Q, q, r) with phi(theta) = theta^T Q theta + q . theta + r, as float arrays."""
    try:
        poly = sp.Poly(phi, *params)
    except sp.PolynomialError:
        poly = None
    if poly is None or poly.total_degree() > 2:
        raise VerificationError(f"test_functions: {name} is not a polynomial of degree <= 2 in the parameters; the "
                                "exact global error needs E[phi] linear in the first two moments")
    dim = len(params)
    Q, q, r = np.zeros((dim, dim)), np.zeros(dim), 0.0
    for powers, c in poly.terms():
        support = [i for i, k in enumerate(powers) for _ in range(k)]
        if not support:
            r = float(c)
        elif len(support) == 1:
            q[support[0]] = float(c)
        else:
            i, k = support
            Q[i, k] += float(c) / (1 if i == k else 2)
            if i != k:
                Q[k, i] += float(c) / 2
    return Q, q, r


def _sme_coefficients(sme, params, order):
    """Coefficients of b~ (affine) and D~ (quadratic) as {monomial powers: expression in h}, checked."""
    def split(expr, degree, what):
        poly = sp.Poly(sp.expand(expr), *params)
        if poly.total_degree() > degree:
            raise VerificationError(f"the {what} of the SME is not of degree <= {degree} in the parameters, so its "
                                    "moments do not close; the global weak error is exact on linear regression only")
        return {powers: sp.lambdify(STEP_SIZE, c, modules="numpy") for powers, c in poly.terms()}

    b = sme.drift_field(order)
    D = sme.diffusion_matrix(order)
    n = len(params)
    drift = [split(b[i], 1, "drift") for i in range(n)]
    diffusion = [[split(D[i, k], 2, "diffusion") for k in range(n)] for i in range(n)]
    return drift, diffusion


def _moment_generator(drift, diffusion, h, dim):
    """K with d/dt (m, vec M, 1) = K (m, vec M, 1) for the SME at step size h."""
    size = dim + dim * dim + 1
    one = size - 1
    m = lambda i: i  # noqa: E731 - index maps of the state vector
    M = lambda i, k: dim + i * dim + k  # noqa: E731
    B, beta = np.zeros((dim, dim)), np.zeros(dim)
    for i in range(dim):
        for powers, c in drift[i].items():
            value = float(c(h))
            support = [j for j, k in enumerate(powers) for _ in range(k)]
            if support:
                B[i, support[0]] += value
            else:
                beta[i] += value
    K = np.zeros((size, size))
    K[:dim, :dim] = B
    K[:dim, one] = beta
    for i, k in itertools.product(range(dim), repeat=2):
        row = M(i, k)
        for j in range(dim):  # B M + M B^T
            K[row, M(j, k)] += B[i, j]
            K[row, M(i, j)] += B[k, j]
        K[row, m(k)] += beta[i]  # beta m^T + m beta^T
        K[row, m(i)] += beta[k]
        for powers, c in diffusion[i][k].items():  # E[D~_ik(X)]
            value = float(c(h))
            support = [j for j, e in enumerate(powers) for _ in range(e)]
            if not support:
                K[row, one] += value
            elif len(support) == 1:
                K[row, m(support[0])] += value
            else:
                K[row, M(*support)] += value
    return K


def _rule_moments(rule, model, h, steps):
    """(m, M) after `steps` steps of the rule from theta0: the exact linear recursions, float64."""
    from ..rules._stochastic import SGD, Langevin

    xs = np.array([[float(v) for v in x] for x, _ in model.linear])
    ys = np.array([float(y) for _, y in model.linear])
    dim = xs.shape[1]
    eye = np.eye(dim)
    noise = np.zeros((dim, dim))
    if isinstance(rule, SGD):
        n = len(ys)
        if rule.replacement:
            batches = list(itertools.product(range(n), repeat=rule.batch_size))
        else:
            if rule.batch_size > n:
                raise VerificationError(f"batch_size {rule.batch_size} is above the {n} losses of {model.name}")
            batches = list(itertools.combinations(range(n), rule.batch_size))
        maps = []
        for batch in batches:
            idx = list(batch)
            A = eye - h * xs[idx].T @ xs[idx] / len(idx)
            c = h * xs[idx].T @ ys[idx] / len(idx)
            maps.append((A, c))
    elif isinstance(rule, Langevin):
        A = eye - h * xs.T @ xs / len(ys)
        c = h * xs.T @ ys / len(ys)
        maps = [(A, c)]
        temperature = float(sp.sympify(rule.temperature).xreplace({STEP_SIZE: sp.Rational(Fraction(repr(h)))}))
        noise = 2 * h * temperature * eye
    else:
        raise VerificationError(f"weak_global_error knows SGD and Langevin; {rule.name} is neither")
    weight = 1.0 / len(maps)
    m = model.theta0_array()
    M = np.outer(m, m)
    for _ in range(steps):
        new_m = sum(A @ m + c for A, c in maps) * weight
        new_M = sum(A @ M @ A.T + np.outer(A @ m, c) + np.outer(c, A @ m) + np.outer(c, c) for A, c in maps) * weight
        m, M = new_m, new_M + noise
    return m, M
