"""The modified generator of a stochastic rule: the operator logarithm of its one-step expectation.

A differential operator with coefficients in theta is a dict {alpha: c_alpha}, alpha a multi-index
(a tuple of non-negative ints, one per parameter):

    A phi = sum_alpha c_alpha(theta) d^alpha phi.

One step of a stochastic rule, theta -> theta + Delta, acts on test functions by its expectation
operator, exactly the multi-index Taylor series

    P_h phi(theta) = E[phi(theta + Delta)] = sum_alpha E[Delta^alpha] / alpha! d^alpha phi(theta)
                   = phi + h A_1 phi + h^2 A_2 phi + ...

(the expectation over the rule's exact law: a finite mixture, Gaussian noise averaged by its
moments; odd powers of sqrt(h) cancel and are checked to). The modified generator
L~ = L_0 + h L_1 + ... is log(P_h)/h, order by order: matching exp(h L~) = sum_n (h L~)^n / n!
with P_h term by term gives

    A_k = sum_{n=1}^{k} (1/n!) sum_{j_1 + ... + j_n = k - n} L_{j_1} ... L_{j_n},

so L_{k-1} = A_k - sum_{n=2}^{k} (1/n!) [h^k](h L~)^n, with the right side in L_0..L_{k-2}
only: the recursion of Hairer, Lubich & Wanner (Geometric Numerical Integration, Ch. IX.1,
doi:10.1007/3-540-30666-8) for operators instead of vector fields, the weak backward error
analysis of Debussche & Faou (SIAM J. Numer. Anal. 50, 2012) and Shardlow (BIT 46, 2006). An
SDE dX = b dt + D^{1/2} dW has the generator b . grad + 1/2 D : hess: first- and second-order
terms only. Terms of differential order >= 3 in some L_j mean no such SDE matches the rule's
one-step law at weak order j + 1.

Coefficients are exact SymPy expressions, normalized by `expand` (and `cancel` for rational
functions): no floats, no `simplify`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from math import factorial, prod

import sympy as sp

from ..._errors import InconsistentRuleError

__all__ = [
    "Operator",
    "ExpressionOracle",
    "apply",
    "compose",
    "generator_series",
    "increment_moments",
    "one_step_operator",
]

Operator = dict  # {alpha (tuple[int, ...]): coefficient (sp.Expr)}


def tidy(expr: sp.Expr) -> sp.Expr:
    """Exact normal form for coefficients: expand; cancel rational functions so zero is recognized."""
    expr = sp.expand(expr)
    if expr != 0 and not expr.is_polynomial():
        expr = sp.cancel(expr)
    return expr


def _add_into(out: Operator, alpha, coefficient) -> None:
    value = tidy(out.get(alpha, 0) + coefficient)
    if value == 0:
        out.pop(alpha, None)
    else:
        out[alpha] = value


def apply(op: Operator, phi: sp.Expr, params: Sequence[sp.Symbol]) -> sp.Expr:
    """A phi = sum_alpha c_alpha d^alpha phi."""
    total = sp.Integer(0)
    for alpha, c in op.items():
        total += c * _derivative(phi, alpha, params)
    return tidy(total)


def _derivative(expr, alpha, params):
    spec = [x for p, k in zip(params, alpha) for x in (p, k) if k]
    return sp.diff(expr, *spec) if spec else expr


def compose(a: Operator, b: Operator, params: Sequence[sp.Symbol]) -> Operator:
    """The operator phi -> A(B phi), by Leibniz's rule on multi-indices:

        a_alpha d^alpha (b_beta d^beta phi)
            = sum_{gamma <= alpha} C(alpha, gamma) a_alpha (d^gamma b_beta) d^{alpha - gamma + beta} phi.
    """
    out: Operator = {}
    for alpha, ca in a.items():
        for gamma in itertools.product(*(range(k + 1) for k in alpha)):
            binomial = prod(sp.binomial(k, g) for k, g in zip(alpha, gamma))
            rest = tuple(k - g for k, g in zip(alpha, gamma))
            for beta, cb in b.items():
                db = _derivative(cb, gamma, params)
                if db != 0:
                    _add_into(out, tuple(r + q for r, q in zip(rest, beta)), binomial * ca * db)
    return out


def _scaled_sum(terms) -> Operator:
    out: Operator = {}
    for factor, op in terms:
        for alpha, c in op.items():
            _add_into(out, alpha, factor * c)
    return out


class ExpressionOracle:
    """grad(x): gradient of the mean loss at x (exact SymPy); grad[k](x): of the k-th loss; also value, hvp."""

    def __init__(self, losses: Sequence[sp.Expr], params: Sequence[sp.Symbol], index: int | None = None):
        self._losses, self._params, self._index = tuple(losses), tuple(params), index
        self._loss = sum(losses, sp.Integer(0)) / len(losses) if index is None else losses[index]
        self._gradient = [sp.diff(self._loss, p) for p in params]

    @property
    def n_losses(self) -> int:
        return len(self._losses)

    def __getitem__(self, k: int) -> ExpressionOracle:
        if not 0 <= k < len(self._losses):
            raise IndexError(f"the rule asked for loss {k}, but {len(self._losses)} loss(es) were given")
        return ExpressionOracle(self._losses, self._params, k)

    def _at(self, expr, x):
        mapping = {p: xi for p, xi in zip(self._params, x) if p != xi}
        return expr.xreplace(mapping) if mapping else expr

    def __call__(self, x):
        return sp.ImmutableMatrix([self._at(g, x) for g in self._gradient])

    def value(self, x):
        return self._at(self._loss, x)

    def hvp(self, x, v):
        hess = sp.Matrix([[sp.diff(g, p) for p in self._params] for g in self._gradient])
        return sp.ImmutableMatrix(hess.xreplace(dict(zip(self._params, x))) * sp.Matrix(v))


def _series_in(expr: sp.Expr, s: sp.Symbol, degree: int) -> list[sp.Expr]:
    """Coefficients of s^0..s^degree of expr (exact Taylor coefficients if expr is not a polynomial in s)."""
    expr = sp.expand(expr)
    poly = expr.as_poly(s)
    if poly is not None:
        coeffs = [sp.Integer(0)] * (degree + 1)
        for (k,), c in poly.terms():
            if k <= degree:
                coeffs[k] = c
        return coeffs
    out, current = [], expr
    for k in range(degree + 1):
        out.append(tidy(current.subs(s, 0) / factorial(k)))
        current = sp.diff(current, s)
    return out


def _times(x: list, y: list) -> list:
    """Product of truncated series (coefficient lists of equal length)."""
    n = len(x)
    return [sp.expand(sum((x[i] * y[k - i] for i in range(k + 1)), sp.Integer(0))) for k in range(n)]


def _gaussian_mean(expr: sp.Expr, gaussians: Sequence[sp.Symbol]) -> sp.Expr:
    """E over independent standard normals: E[xi^k] = (k - 1)!! for even k, 0 for odd k."""
    if not gaussians or not expr.has(*gaussians):
        return expr
    total = sp.Integer(0)
    for powers, c in sp.Poly(expr, *gaussians).terms():
        if all(k % 2 == 0 for k in powers):
            total += c * prod(sp.factorial2(k - 1) for k in powers)
    return total


def increment_moments(rule, losses, params, order: int):
    """E[Delta^alpha] as series in h through h^(order+1), for every alpha that contributes.

    Returns {alpha: [m_0, m_1, ..., m_{order+1}]} (coefficients of h^k). The step runs on exact
    SymPy input with h = s^2 (s = sqrt(h)), once per outcome of the rule's law; odd powers of s
    must cancel in the mean (a Gaussian increment of size sqrt(h)) and are checked to.
    """
    dim = len(params)
    s = sp.Dummy("s", positive=True)
    top = 2 * (order + 1)  # s-degree kept: h^(order+1)
    theta = sp.ImmutableMatrix(params)
    law = rule.law(len(losses), dim)
    oracle = ExpressionOracle(losses, params)
    increments = []
    for probability, noise in law.outcomes:
        delta = sp.Matrix(rule.step(theta, oracle, s**2, noise)) - sp.Matrix(theta)
        series = [_series_in(component, s, top) for component in delta]
        if any(c[0] != 0 for c in series):
            raise InconsistentRuleError(f"{rule.name}'s step does not tend to theta as h -> 0; no generator matches it")
        increments.append((probability, series))
    valuation = min(
        (k for _, series in increments for c in series for k in range(1, top + 1) if c[k] != 0), default=top + 1
    )
    max_degree = top // valuation  # E[Delta^alpha] = O(s^(valuation |alpha|))
    # Powers Delta^alpha per outcome, built up one index at a time; then averaged.
    moments: dict = {}
    for probability, series in increments:
        powers = {tuple([0] * dim): [sp.Integer(1)] + [sp.Integer(0)] * top}
        for m in range(1, max_degree + 1):
            for alpha in _multi_indices(dim, m):
                i = next(j for j, k in enumerate(alpha) if k)
                lower = tuple(k - (j == i) for j, k in enumerate(alpha))
                powers[alpha] = _times(powers[lower], series[i])
                mean = moments.setdefault(alpha, [sp.Integer(0)] * (top + 1))
                for k, c in enumerate(powers[alpha]):
                    if c != 0:
                        mean[k] += probability * _gaussian_mean(c, law.gaussians)
    out = {}
    for alpha, coeffs in moments.items():
        coeffs = [tidy(c) for c in coeffs]
        odd = [k for k in range(1, top + 1, 2) if coeffs[k] != 0]
        if odd:
            raise InconsistentRuleError(
                f"E[Delta^{alpha}] of {rule.name} has a term in h^{odd[0]}/2: the one-step law is not a series in h"
            )
        out[alpha] = [coeffs[2 * k] for k in range(order + 2)]
    return out


def _multi_indices(dim: int, degree: int):
    for combo in itertools.combinations_with_replacement(range(dim), degree):
        yield tuple(combo.count(i) for i in range(dim))


def one_step_operator(moments: dict, order: int) -> list[Operator]:
    """A_1..A_{order+1}: P_h = 1 + sum_k h^k A_k, with (A_k)_alpha = [h^k] E[Delta^alpha] / alpha!."""
    ops = []
    for k in range(1, order + 2):
        op: Operator = {}
        for alpha, coeffs in moments.items():
            if coeffs[k] != 0:
                _add_into(op, alpha, coeffs[k] / prod(factorial(a) for a in alpha))
        ops.append(op)
    return ops


def generator_series(ops: list[Operator], params: Sequence[sp.Symbol]) -> list[Operator]:
    """L_0..L_p from A_1..A_{p+1} (module docstring): L_{k-1} = A_k - sum_{n>=2} [h^k](h L~)^n / n!."""
    generators: list[Operator] = []
    # powers[n][k] = [h^k](h L~)^n, filled as the L's become known.
    powers: dict[int, dict[int, Operator]] = {}
    for k in range(1, len(ops) + 1):
        correction = []
        for n in range(2, k + 1):
            # (h L~)^n = (h L~) (h L~)^(n-1): [h^k] = sum_j L_{j-1} [h^(k-j)](h L~)^(n-1)
            terms = []
            for j in range(1, k - n + 2):
                lower = generators[k - j - 1] if n == 2 else powers[n - 1].get(k - j, {})
                terms.append((1, compose(generators[j - 1], lower, params)))
            powers.setdefault(n, {})[k] = _scaled_sum(terms)
            correction.append((-sp.Rational(1, factorial(n)), powers[n][k]))
        generators.append(_scaled_sum([(1, ops[k - 1])] + correction))
    for j, op in enumerate(generators):
        if tuple([0] * len(params)) in op:
            raise InconsistentRuleError(f"L_{j} has a zeroth-order term: the one-step law does not have total mass 1")
    return generators

