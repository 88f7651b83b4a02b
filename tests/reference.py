"""Independent references for the engine, sharing none of its code paths.

* `step_expansion`: runs a rule's step on SymPy matrices with h a plain symbol and
  a gradient oracle that substitutes into grad E, then reads d_k off by
  differentiating in h (no truncated series, no Taylor oracle, no algebra).
* `brute_force_corrections`: series matching against the exact flow computed by
  Picard iteration, theta(t) = theta + int_0^t f~(theta(s)) ds, with t = h tau,
  in plain SymPy expressions (no Lie-derivative recursion).
* `inner_product_corrections`: the literal formula of Barrett & Dherin's Lemma A.2
  (d/dtheta <f_i, f_j>/2), which is only right for gradient fields.
"""

from __future__ import annotations

from math import factorial

import sympy as sp
from sympy.polys.rings import ring

h = sp.Symbol("h", positive=True)
tau = sp.Symbol("tau")


class SubstitutionOracle:
    """grad E at a SymPy point x(h) by substitution, dropping powers of h above `truncation`.

    Truncating inside the oracle keeps nested steps (RK4, SAM) from expanding to
    huge polynomials in h; the powers kept are exact.
    """

    def __init__(self, losses, params, truncation, index=0):
        self.losses, self.params, self.truncation, self.index = losses, list(params), truncation, index
        loss = losses[index]
        self.gradient = sp.Matrix([sp.diff(loss, p) for p in self.params])
        self.hessian = sp.hessian(loss, self.params)

    def _at(self, matrix, x):
        x = list(x)
        symbols = set(matrix.free_symbols)
        for e in x:
            symbols |= sp.sympify(e).free_symbols
        others = sorted(symbols - set(self.params) - {h}, key=str)
        R, *gens = ring([*self.params, *others, h], sp.QQ)
        try:
            point = [R.from_expr(sp.expand(e)) for e in x]
            entries = [R.from_expr(e) for e in matrix]
        except Exception:  # not polynomial: plain substitution, no truncation
            return matrix.xreplace(dict(zip(self.params, x)))
        h_index = len(gens) - 1
        values = [_compose_truncated(R, F, point, h_index, self.truncation) for F in entries]
        return sp.Matrix(matrix.rows, matrix.cols, [v.as_expr() for v in values])

    def __getitem__(self, k):
        return SubstitutionOracle(self.losses, self.params, self.truncation, k)

    def __call__(self, x):
        return self._at(self.gradient, x)

    def value(self, x):
        return self._at(sp.Matrix([self.losses[self.index]]), x)[0]

    def hvp(self, x, v):
        return self._at(self.hessian, x) * v


def step_expansion(rule, losses, params, order):
    """[d_1, ..., d_order] of the rule's step, read off the expanded step polynomial in h."""
    theta = sp.Matrix(params)
    phi = rule.step(theta, SubstitutionOracle(list(losses), params, order + 2), h)
    phi = sp.Matrix(phi)
    out = [[None] * len(phi) for _ in range(order)]
    for i, c in enumerate(phi):
        c = sp.cancel(sp.expand(c))  # finite differences: (g(x + eps v) - g(x))/eps is polynomial in eps
        if c.is_polynomial(h):
            poly = sp.Poly(c, h)
            for k in range(1, order + 1):
                out[k - 1][i] = sp.expand(poly.coeff_monomial(h**k))
        else:
            for k in range(1, order + 1):
                out[k - 1][i] = sp.expand(sp.diff(c, h, k).subs(h, 0) / factorial(k))
    return [sp.Matrix(col) for col in out]


def _to_ring(matrices, params):
    """A polynomial ring QQ[params, other symbols, h, tau] and the matrices' entries in it."""
    others = set()
    for m in matrices:
        others |= m.free_symbols
    others = sorted(others - set(params) - {h, tau}, key=str)
    R, *gens = ring([*params, *others, h, tau], sp.QQ)
    try:
        converted = [[R.from_expr(sp.expand(e)) for e in m] for m in matrices]
    except Exception as exc:  # the reference is for polynomial cases only
        raise NotImplementedError(f"brute force needs polynomial steps: {exc}") from None
    return R, gens[: len(params)], gens[-2], gens[-1], converted


def _truncate(R, p, h_index, order):
    return R({m: c for m, c in p.items() if m[h_index] <= order})


def _integrate_tau(R, p, tau_index):
    out = {}
    for m, c in p.items():
        m = list(m)
        m[tau_index] += 1
        out[tuple(m)] = c / m[tau_index]
    return R(out)


def _compose_truncated(R, F, point, h_index, order):
    """F(theta -> point), dropping powers of h above `order` after every product."""
    n = len(point)
    grouped = {}
    for m, c in F.items():
        rest = (0,) * n + m[n:]
        grouped.setdefault(m[:n], R.zero)
        grouped[m[:n]] += R({rest: c})
    powers = {}

    def power(i, e):
        if (i, e) not in powers:
            powers[(i, e)] = R.one if e == 0 else _truncate(R, power(i, e - 1) * point[i], h_index, order)
        return powers[(i, e)]

    total = R.zero
    for exps, coeff in grouped.items():
        term = coeff
        for i, e in enumerate(exps):
            if e:
                term = _truncate(R, term * power(i, e), h_index, order)
        total += term
    return total


def brute_force_corrections(rule, losses, params, order):
    """f_0..f_order by matching the Picard-iterated flow of f~ to the step expansion, order by order.

    phi_{m+1}(tau) = theta + h int_0^tau f~(phi_m(s)) ds (time t = h tau), in exact
    polynomial arithmetic truncated at h^{order+1}; theta(h) = phi(1).
    """
    params = list(params)
    d = step_expansion(rule, losses, params, order + 1)
    R, theta, hg, taug, d = _to_ring(d, params)
    h_index, tau_index = R.gens.index(hg), R.gens.index(taug)
    fields = []
    for l in range(order + 1):
        # With f_l = 0 the flow misses exactly h^{l+1} f_l at order l+1.
        field = [sum((hg**j * f[i] for j, f in enumerate(fields)), R.zero) for i in range(len(params))]
        phi = list(theta)
        for _ in range(l + 1):
            at = [_compose_truncated(R, F, phi, h_index, l) for F in field]
            phi = [t + hg * _integrate_tau(R, a, tau_index) for t, a in zip(theta, at)]
        at_one = [p.subs(taug, 1) for p in phi]
        coeff = [R({m: c for m, c in p.items() if m[h_index] == l + 1}).exquo(hg ** (l + 1)) for p in at_one]
        fields.append([d[l][i] - coeff[i] for i in range(len(params))])
    return [sp.Matrix([R.to_sympy(c) if hasattr(R, "to_sympy") else c.as_expr() for c in f]) for f in fields]


def inner_product_corrections(f0, params, order):
    """Explicit Euler corrections by the literal Lemma A.2: L_{n,k} = D_t^{n-2} d/dtheta sum <f_i,f_j>/2.

    The outer time derivatives D_t are along the flow, (.)' f~; only the
    innermost step uses the inner-product identity, as printed in the paper.
    """
    params = list(params)

    def jac_times(F, G):
        return (F.jacobian(params) * G).applyfunc(sp.expand)

    fields = [f0]
    L = {}
    for l in range(1, order + 1):
        total = sp.zeros(len(params), 1)
        for n in range(2, l + 2):
            k = l + 1 - n
            if n == 2:
                s = sum(((fields[i].T * fields[k - i])[0] for i in range(k + 1)), sp.S.Zero) / 2
                value = sp.Matrix([sp.expand(sp.diff(s, p)) for p in params])
            else:
                value = sum(
                    (jac_times(L[(n - 1, i)], fields[k - i]) for i in range(k + 1)), sp.zeros(len(params), 1)
                )
            L[(n, k)] = value
            total += value / factorial(n)
        fields.append((-total).applyfunc(sp.expand))
    return fields


def mpmath_local_error_slope(me, loss, params, start, step_sizes, dps=30):
    """Slope of log |flow_h(f_0 + ... + h^p f_p) - GD step| against log h, with mpmath's Taylor ODE solver.

    Independent of the engine: the flow is integrated numerically in arbitrary precision.
    """
    import mpmath as mp

    H = sp.Symbol("H")
    field = sp.lambdify([*params, H], list(me.field().subs(me.h, H)), "mpmath")
    grad = sp.lambdify(params, [loss.diff(p) for p in params], "mpmath")
    with mp.workdps(dps):
        start = [mp.mpf(s) for s in start]
        errors = []
        for hh in step_sizes:
            hh = mp.mpf(hh)
            flow = mp.odefun(lambda t, z, hh=hh: field(*z, hh), 0, start)(hh)
            g = grad(*start)
            errors.append(mp.sqrt(sum((flow[i] - (start[i] - hh * g[i])) ** 2 for i in range(len(params)))))
        return float(mp.log(errors[0] / errors[1]) / mp.log(mp.mpf(step_sizes[0]) / mp.mpf(step_sizes[1])))


def flow_at(terms, params, order, direction=1):
    """The exact time-(direction * h) flow of f~ = sum_l h^l terms[l], as a SymPy column in h,
    by Picard iteration (polynomial fields only), exact through h^{order+1}.

    Independent of the engine: used to check multistep relations that rules with
    memory must satisfy along their modified flow (heavy ball:
    phi_h - (1 + beta) theta + beta phi_{-h} = -h grad E).
    """
    params = list(params)
    R, theta, hg, taug, converted = _to_ring([sp.Matrix(t) for t in terms], params)
    h_index, tau_index = R.gens.index(hg), R.gens.index(taug)
    field = [sum((hg**j * f[i] for j, f in enumerate(converted)), R.zero) for i in range(len(params))]
    phi = list(theta)
    for _ in range(order + 2):
        at = [_compose_truncated(R, F, phi, h_index, order + 1) for F in field]
        phi = [t + direction * hg * _integrate_tau(R, a, tau_index) for t, a in zip(theta, at)]
        phi = [_truncate(R, p, h_index, order + 1) for p in phi]
    return sp.Matrix([p.subs(taug, 1).as_expr() for p in phi])


def lowest_power(column, order):
    """The lowest power of h with a nonzero coefficient in a column (order + 2 if none up to h^{order+1})."""
    for k in range(order + 2):
        if any(sp.expand(sp.diff(c, h, k).subs(h, 0)) != 0 for c in column):
            return k
    return order + 2


def sde_expectation_series(b_field, D, phi, params, n_max):
    """E[phi(X_h) | X_0 = theta] of dX = b dt + D^{1/2} dW as sum_{n <= n_max} h^n L^n phi / n!,
    L = b . grad + 1/2 D : hess, by sympy.diff (b, D may depend on h; kept through h^n_max)."""
    def generator(f):
        first = sum(b_field[i] * sp.diff(f, p) for i, p in enumerate(params))
        second = sum(D[i, k] * sp.diff(f, p, q) for i, p in enumerate(params) for k, q in enumerate(params)) / 2
        return sp.expand(first + second)

    total, term = sp.Integer(0), phi
    for n in range(n_max + 1):
        total += h**n * term / sp.factorial(n)
        # h^(n+1) L^(n+1) phi is needed only through h^n_max
        term = sum((generator(term).coeff(h, k) * h**k for k in range(n_max - n)), sp.Integer(0))
    return sp.expand(total)
