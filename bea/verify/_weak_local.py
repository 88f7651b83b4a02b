"""The local weak error of a stochastic modified equation, exactly: no Monte Carlo.

For a test function phi and one step of size h from theta0,

    e(h) = | E[phi(theta_1)] - E[phi(X_h)] |,   X the SME truncated after h^p, X_0 = theta0,

is O(h^{p+2}) (Li, Tai & E, JMLR 20 (2019), arXiv:1811.01558, Thm 3 and Lemma 8; Debussche &
Faou, SIAM J. Numer. Anal. 50 (2012), doi:10.1137/110831544). Both sides are computed exactly,
independently of each other:

- the rule's side from its own law, not the engine's: SGD on a finite sum averages
  phi(theta0 - h mean_{j} grad E_{I_j}(theta0)) over all N^B ordered batches (with replacement)
  or all C(N, B) subsets (without); Langevin takes the Gaussian expectation of
  phi(theta0 - h grad E(theta0) + sqrt(2 h T) xi) from the moments E[xi^k] = (k-1)!! when phi is
  a polynomial, by tensor Gauss–Hermite quadrature (float64) otherwise;
- the SDE's side as the generator series E[phi(X_h)] = exp(h L~_p) phi(theta0) =
  sum_n h^n (L~_p)^n phi / n!, L~_p = L_0 + ... + h^p L_p (`apply_generator`, exact), cut after
  h^{p+3}: the cut is two orders below the error itself (O(h^{p+4}) against h^{p+2}), so it
  moves the measured error by a relative O(h^2) and the fitted slope by less than the sweep can
  see; cutting after h^{p+2} would already give the right slope, with an O(h) relative error.

Both are exact functions of a symbolic h, evaluated at exact rational step sizes 2^-k: no
round-off for polynomial losses and test functions.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import prod

import numpy as np
import sympy as sp

from ..engines.series._jet import STEP_SIZE
from ._checks import VerificationError, check_step_sizes
from ._weak_result import (
    WeakErrorResult,
    as_float,
    derive,
    fit,
    prepare,
    resolve_model,
    resolve_test_functions,
)

__all__ = ["default_local_step_sizes", "weak_local_error"]

#: Terms of exp(h L~) kept beyond the expected error order p + 2 (module docstring).
EXTRA_TERMS = 2
_SWEEP = 5  # default step sizes: 5 halvings
_GAUSS_HERMITE_NODES = 24  # exact for polynomials of degree < 48 in each Gaussian


def weak_local_error(rule, order: int, *, model=None, losses=None, params=None, theta0=None, step_sizes=None,
                     test_functions=None, values=None) -> WeakErrorResult:
    """|E phi(theta_1) - E phi(X_h)| for one step from theta0, exact, over step sizes; slopes expected order + 2.

    Args:
        rule: `bea.rules.SGD(batch_size=B, replacement=...)` on the model's per-example losses, or
            `bea.rules.Langevin(temperature=T)` on their mean.
        order: p, the SME truncated after h^p (drift b_0..b_p, diffusion D_0..D_p).
        model: a `bea.verify.FiniteSumModel` or its name ("linear-regression", "two-param-sum");
            or give `losses` (per-example SymPy losses), `params` and `theta0`.
        step_sizes: at least 3 distinct step sizes (made exact rationals); default
            `default_local_step_sizes`: 2^-m, ..., 2^-(m+4), 2^-m the largest power of 2 at most
            2^-p/(16 max(1, Lambda)), Lambda the largest spectral norm of a per-example Hessian at theta0.
        test_functions: SymPy expressions in the params (a list, or a dict name -> phi); default the
            coordinates, the quadratic monomials and E itself.
        values: hyperparameters without a value in the rule (values={'temperature': 0.1}).

    Returns a `WeakErrorResult` (one sweep per phi; a phi whose error is exactly 0 at every h is
    listed in `exact`). Raises `VerificationError` where no SDE exists at this order (e.g. SGD at
    order 2, where the third cumulant of the per-example gradients enters the generator).

    Reference: Li, Tai & E, "Stochastic modified equations and dynamics of stochastic gradient
    algorithms I", JMLR 20 (2019), arXiv:1811.01558.
    """
    model = resolve_model(model, losses=losses, params=params, theta0=theta0)
    rule, order = prepare(rule, model, order, values)
    phis = resolve_test_functions(test_functions, model)
    if step_sizes is None:
        step_sizes = default_local_step_sizes(model, order)
    hs = [sp.Rational(Fraction(repr(float(h)))) if not isinstance(h, (sp.Rational, Fraction)) else sp.Rational(h)
          for h in check_step_sizes(step_sizes)]
    sme = derive(rule, model, order)
    start = dict(zip(model.params, model.theta0))
    truncation = order + 2 + EXTRA_TERMS - 1  # last power of h kept: p + 3
    sweeps, exact = [], []
    for name, phi in phis.items():
        predicted = generator_series(sme, phi, order, truncation, start)
        observed = one_step_expectation(rule, model, phi)
        errors = [abs(as_float(observed(h) - predicted.xreplace({STEP_SIZE: h}))) for h in hs]
        if all(e == 0 for e in errors):
            exact.append(name)
            continue
        flags = ["exactly 0" if e == 0 else "" for e in errors]
        sweeps.append((name, fit("weak local", hs, errors, flags, order + 2)))
    if not sweeps:
        raise VerificationError("every test function is matched exactly at every step size: nothing to fit; "
                                "give other test_functions")
    return WeakErrorResult("weak local", rule.name, model.name, order, order + 2, tuple(sweeps), tuple(exact),
                           note=f"exact: rule's law averaged, exp(hL) cut after h^{truncation}")


def default_local_step_sizes(model, order: int = 0) -> tuple[sp.Rational, ...]:
    """2^-m, ..., 2^-(m+4): 2^-m the largest power of 2 at most 2^-order / (16 max(1, Lambda)), Lambda the
    largest spectral norm of a per-example Hessian at theta0 (the scale on which one step is small).

    One halving more per order: the error's next term, h^{p+3} against h^{p+2}, has a relative size
    that grows with p (Langevin at order 2 on linear regression fits 4.24 from 2^-5, 4.08 from 2^-7)."""
    m = int(np.ceil(np.log2(16 * max(1.0, model.largest_hessian_norm())))) + order
    return tuple(sp.Rational(1, 2 ** (m + k)) for k in range(_SWEEP))


def generator_series(sme, phi, order: int, truncation: int, start: dict) -> sp.Expr:
    """sum_n h^n (L~_p)^n phi / n! at theta0, as a polynomial in h cut after h^truncation.

    Polynomial phi and generator coefficients take a fast path on `sympy.Poly` (the same operator,
    the same exact arithmetic); anything else goes through `sme.apply_generator`."""
    fast = _poly_generator_series(sme, phi, order, truncation, start)
    if fast is not None:
        return fast
    h = STEP_SIZE
    term, total = phi, phi.xreplace(start)
    for n in range(1, truncation + 1):
        term = sme.apply_generator(term, order)
        term = sp.Add(*[term.coeff(h, k) * h**k for k in range(truncation - n + 1)])  # higher powers: cut anyway
        total += h**n / sp.factorial(n) * term.xreplace(start)
    return sp.expand(total)


def _poly_generator_series(sme, phi, order, truncation, start):
    h, params = STEP_SIZE, list(sme.params)
    gens = [*params, h]
    try:
        ops = [(alpha, sp.Poly(h**l * c, *gens, domain="QQ"))
               for l in range(order + 1) for alpha, c in sme.generator[l].items()]
        term = sp.Poly(phi, *gens, domain="QQ")
    except (sp.PolynomialError, sp.CoercionFailed, sp.GeneratorsNeeded):
        return None
    total = phi.xreplace(start)
    for n in range(1, truncation + 1):
        new = sp.Poly(0, *gens, domain="QQ")
        for alpha, coefficient in ops:
            derivative = term
            for p, k in zip(params, alpha):
                if k:
                    derivative = derivative.diff((p, k))
            if not derivative.is_zero:
                new += coefficient * derivative
        keep = {m: c for m, c in new.terms() if m[-1] <= truncation - n}  # higher powers of h: cut anyway
        term = sp.Poly.from_dict(keep, *gens, domain="QQ") if keep else sp.Poly(0, *gens, domain="QQ")
        value = term.as_expr().xreplace(start)
        total += h**n / sp.factorial(n) * value
    return sp.expand(total)


def one_step_expectation(rule, model, phi):
    """h -> E[phi(theta_1)] from theta0 (exact), by the rule's own law (module docstring)."""
    from ..rules._stochastic import SGD, Langevin

    h = STEP_SIZE
    start = dict(zip(model.params, model.theta0))
    theta0 = sp.Matrix(model.theta0)
    if isinstance(rule, SGD):
        gradients = [sp.Matrix([sp.diff(loss, p) for p in model.params]).xreplace(start) for loss in model.losses]
        n = model.n_losses
        if rule.replacement:
            batches = list(itertools.product(range(n), repeat=rule.batch_size))
        else:
            if rule.batch_size > n:
                raise VerificationError(f"batch_size {rule.batch_size} is above the {n} losses of {model.name}, which "
                                        "sampling without replacement cannot draw; lower batch_size")
            batches = list(itertools.combinations(range(n), rule.batch_size))
        total = sp.Integer(0)
        for batch in batches:
            step = theta0 - h * sum((gradients[i] for i in batch), sp.zeros(len(theta0), 1)) / len(batch)
            total += phi.xreplace(dict(zip(model.params, step)))
        mean = sp.expand(total / len(batches)) if phi.is_polynomial(*model.params) else total / len(batches)
        return lambda value: mean.xreplace({h: value})
    if isinstance(rule, Langevin):
        gradient = sp.Matrix([sp.diff(model.mean_loss, p) for p in model.params]).xreplace(start)
        drift = theta0 - h * gradient
        temperature = sp.sympify(rule.temperature)
        if phi.is_polynomial(*model.params):
            return _gaussian_polynomial(phi, model.params, drift, 2 * h * temperature)
        return _gauss_hermite(phi, model.params, drift, 2 * h * temperature)
    raise VerificationError(f"weak_local_error knows the law of SGD and Langevin; {rule.name} is neither "
                            "(compare with bea.verify.monte_carlo_weak_error instead)")


def _gaussian_polynomial(phi, params, mean, variance):
    """h -> E[phi(mean + sqrt(variance) xi)], xi ~ N(0, I), for a polynomial phi: E[xi^k] = (k-1)!! (k even)."""
    xi = sp.symbols(f"_xi0:{len(params)}", real=True, cls=sp.Dummy)
    s = sp.Dummy("s", positive=True)
    expanded = sp.expand(phi.xreplace({p: m + s * x for p, m, x in zip(params, mean, xi)}))
    total = sp.Integer(0)
    for powers, c in sp.Poly(expanded, *xi).terms():
        if all(k % 2 == 0 for k in powers):
            total += c * prod(sp.factorial2(k - 1) for k in powers)
    # only even powers of s are left: s^(2j) = variance^j, a polynomial in h
    result = sp.expand(sp.expand(total).subs(s, sp.sqrt(variance)))
    return lambda value: result.xreplace({STEP_SIZE: value})


def _gauss_hermite(phi, params, mean, variance):
    """h -> E[phi(mean + sqrt(variance) xi)] by tensor Gauss–Hermite quadrature (probabilists'), float64."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(_GAUSS_HERMITE_NODES)
    weights = weights / weights.sum()
    fn = sp.lambdify([list(params)], phi, modules="numpy")
    mean_fn = sp.lambdify(STEP_SIZE, list(mean), modules="numpy")
    dim = len(params)

    def expectation(value):
        mu = np.array(mean_fn(float(value)), dtype=float)
        sigma = np.sqrt(float(variance.xreplace({STEP_SIZE: value})))
        grid = np.stack(np.meshgrid(*[nodes] * dim, indexing="ij"), axis=0).reshape(dim, -1)
        w = np.prod(np.stack(np.meshgrid(*[weights] * dim, indexing="ij"), axis=0).reshape(dim, -1), axis=0)
        points = mu[:, None] + sigma * grid
        return float(np.sum(w * np.asarray(fn(list(points)), dtype=float)))

    return expectation
