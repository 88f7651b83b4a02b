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

from ..._errors import InconsistentRuleError, UnknownSymbolError, UnsupportedError
from ..series._jet import STEP_SIZE

__all__ = [
    "Operator",
    "ExpressionOracle",
    "Vector",
    "VectorOracle",
    "apply",
    "compose",
    "generator_series",
    "increment_moments",
    "joint_params",
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


class Vector:
    """A parameter-shaped vector of exact SymPy scalars with element-wise arithmetic, as JAX arrays have.

    The engine runs a stochastic rule's step on these (and the same step runs on JAX arrays in
    `iterate`), so that `g * g`, `v / sqrt(u)` and `2 * theta` mean what they mean on arrays;
    `u @ v` is the inner product. It has the `algebra` attribute the engine's series have, so
    `bea.rules.sqrt`/`dot` and `call_step` treat it as the engine's exact input, not an array.
    """

    __slots__ = ("entries",)
    algebra = None  # marks the engine's input for bea.rules.sqrt / dot / call_step

    def __init__(self, entries):
        self.entries = tuple(sp.sympify(e) for e in entries)

    @classmethod
    def coerce(cls, x):
        return x if isinstance(x, Vector) else cls(list(x))

    def _other(self, other):
        if isinstance(other, Vector):
            if len(other.entries) != len(self.entries):
                raise ValueError(f"vectors of lengths {len(self.entries)} and {len(other.entries)} do not combine")
            return other.entries
        if isinstance(other, sp.MatrixBase):
            return self._other(Vector(list(other)))
        if isinstance(other, (list, tuple)):
            return self._other(Vector(other))
        return (sp.sympify(other),) * len(self.entries)

    def _map2(self, other, fn):
        return Vector([fn(x, y) for x, y in zip(self.entries, self._other(other))])

    def __add__(self, other):
        return self._map2(other, lambda x, y: x + y)

    __radd__ = __add__

    def __sub__(self, other):
        return self._map2(other, lambda x, y: x - y)

    def __rsub__(self, other):
        return self._map2(other, lambda x, y: y - x)

    def __mul__(self, other):
        return self._map2(other, lambda x, y: x * y)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._map2(other, lambda x, y: x / y)

    def __rtruediv__(self, other):
        return self._map2(other, lambda x, y: y / x)

    def __pow__(self, other):
        return self._map2(other, lambda x, y: x**y)

    def __neg__(self):
        return Vector([-x for x in self.entries])

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return sp.Add(*[x * y for x, y in zip(self.entries, self._other(other))])

    __rmatmul__ = __matmul__

    def sqrt(self):
        """Element-wise principal square root (what bea.rules.sqrt calls)."""
        return Vector([sp.sqrt(x) for x in self.entries])

    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __getitem__(self, i):
        return self.entries[i]

    def __repr__(self):
        return f"Vector({list(self.entries)})"


class VectorOracle:
    """`ExpressionOracle` on `Vector`s: grad(x), grad[k](x), grad.value(x), grad.hvp(x, v) as a step expects."""

    def __init__(self, oracle: ExpressionOracle):
        self._oracle = oracle

    @property
    def n_losses(self) -> int:
        return self._oracle.n_losses

    def __getitem__(self, k: int) -> VectorOracle:
        return VectorOracle(self._oracle[k])

    def __call__(self, x):
        return Vector(list(self._oracle(Vector.coerce(x))))

    def value(self, x):
        return self._oracle.value(Vector.coerce(x))

    def hvp(self, x, v):
        return Vector(list(self._oracle.hvp(Vector.coerce(x), list(Vector.coerce(v)))))


def joint_params(rule, params: Sequence[sp.Symbol], losses: Sequence[sp.Expr] = ()) -> tuple[sp.Symbol, ...]:
    """The parameters followed by the rule's state symbols, `{name}_{param}` per state (v_a, v_b, ...).

    A random rule with state is a Markov chain on (theta, state): its SME is an SDE for the
    joint vector. The losses do not depend on the state; a loss symbol with a state's name is refused.
    """
    names = tuple(getattr(rule, "state_names", ()) or ())
    state = tuple(sp.Symbol(f"{name}_{p.name}", real=True) for name in names for p in params)
    taken = {s.name for loss in losses for s in sp.sympify(loss).free_symbols} | {p.name for p in params}
    clash = sorted({s.name for s in state} & taken)
    # two states can also collide ("v" on param a_b and "v_a" on param b are both v_a_b): one symbol for two rows
    repeated = sorted({s.name for s in state if [t.name for t in state].count(s.name) > 1})
    if repeated:
        raise UnknownSymbolError(
            f"{', '.join(repeated)} names two states of {rule.name} (state symbols are {{state}}_{{param}}); rename a "
            "state or a parameter so that no two {state}_{param} coincide"
        )
    if clash:
        raise UnknownSymbolError(
            f"{', '.join(clash)} names a state of {rule.name} (state symbols are {{state}}_{{param}}); rename that "
            "symbol in the losses or parameters"
        )
    return tuple(params) + state


def _vectors(noise):
    """The draw with every SymPy matrix turned into a `Vector` (element-wise arithmetic, as on arrays)."""
    if isinstance(noise, sp.MatrixBase):
        return Vector(list(noise))
    if isinstance(noise, tuple):
        return tuple(_vectors(n) for n in noise)
    return noise


#: The scaling the engine assumes, quoted by its errors.
SCALING = ("increments O(h) in mean and O(sqrt h) in fluctuation (theta' = theta + h b + sqrt(h) sigma xi + ..., "
           "the SGD and Langevin scaling)")


def _state_advice(rule) -> str:
    return ("a random rule with state is an SDE for (theta, state) only if the state also moves O(h) per step: scale "
            "its decay with the step, 1 - beta = c h (Li, Tai & E's scaling for momentum: bea.rules.SGDMomentum; "
            "Malladi et al.'s for RMSProp and Adam, time h = eta^2 per step: bea.rules.RMSPropSDE, bea.rules.AdamSDE)")


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
    must cancel in the mean (a Gaussian increment of size sqrt(h)) and are checked to. A rule with
    state (`state_names`) runs `update(theta, state, grad, h, noise)` and Delta is the increment of
    the joint vector (theta, state), in the order of `joint_params`.
    """
    s = sp.Dummy("s", positive=True)
    top = 2 * (order + 1)  # s-degree kept: h^(order+1)
    names = joint_params(rule, params, losses)
    dim = len(names)
    n_states = len(getattr(rule, "state_names", ()) or ())
    theta = Vector(params)
    state = tuple(Vector(names[len(params) * (i + 1): len(params) * (i + 2)]) for i in range(n_states))
    law = rule.law(len(losses), len(params))
    oracle = VectorOracle(ExpressionOracle(losses, params))
    increments = []
    for probability, noise in law.outcomes:
        new_theta, new_state = _run(rule, theta, state, oracle, s**2, _vectors(noise))
        # a hyperparameter tied to the step (rho = c * bea.h, 1 - beta = c * bea.h) is in the same h: s^2
        delta = [(x - p).xreplace({STEP_SIZE: s**2})
                 for x, p in zip([*new_theta, *(x for v in new_state for x in v)], names)]
        if len(delta) != dim:
            raise InconsistentRuleError(
                f"{rule.name}'s step returned {len(delta)} components for the {dim} of (theta, state) {list(names)}"
            )
        series = [_series_in(component, s, top) for component in delta]
        _check_scaling(rule, names, len(params), series, law.gaussians)
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
            monomial = "*".join(f"d{p}" + (f"^{k}" if k > 1 else "") for p, k in zip(names, alpha) if k)
            if odd[0] == 1:
                why = f"a mean increment of size sqrt(h), but the engine assumes {SCALING}"
            else:
                why = ("a fluctuation of size sqrt(h) with non-zero odd moments, a skewed noise: the weak expansion "
                       "goes in powers of sqrt(h), and no SDE series in h matches it beyond order "
                       f"{(odd[0] - 3) // 2}; use order={(odd[0] - 3) // 2}, or a symmetric noise")
            raise InconsistentRuleError(
                f"E[{monomial}] of {rule.name}'s step has a term in h^{odd[0]}/2: the one-step law is not a series "
                f"in h ({why})"
            )
        out[alpha] = [coeffs[2 * k] for k in range(order + 2)]
    return out


def _run(rule, theta, state, oracle, h, noise):
    """(theta', state') of one step; a stateless rule's `step` gives theta' and no state."""
    if getattr(rule, "state_names", ()):
        new_theta, new_state = rule.update(theta, state, oracle, h, noise)
    else:
        new_theta, new_state = rule.step(theta, oracle, h, noise), ()
    return _exact(new_theta), tuple(_exact(v) for v in new_state)


def _exact(vector) -> Vector:
    """A step's output as a Vector, a float it wrote (x ** 0.5) as the exact decimal it denotes, as `bea.rules.exact`."""
    entries = []
    for e in Vector.coerce(vector):
        floats = e.atoms(sp.Float)
        entries.append(e.xreplace({f: sp.Rational(str(f)) for f in floats}) if floats else e)
    return Vector(entries)


def _check_scaling(rule, names, n_params, series, gaussians) -> None:
    """Refuse steps the engine cannot take moments of, or that do not vanish as h -> 0, naming what is assumed."""
    for name, coeffs in zip(names, series):
        if any(c.has(sp.zoo, sp.oo, -sp.oo, sp.nan) for c in coeffs):
            raise InconsistentRuleError(
                f"{rule.name}'s step is not a power series in sqrt(h) in {name} (a fractional power such as h^(1/4), "
                f"or a division by a vanishing term); the engine assumes {SCALING}"
            )
        for c in coeffs:
            if gaussians and c.has(*gaussians) and not c.is_polynomial(*gaussians):
                raise UnsupportedError(
                    f"{rule.name}'s step uses a Gaussian draw through {_non_polynomial(c, gaussians)}, which the engine "
                    "cannot take exact moments of: it averages finite mixtures of batches and standard Gaussian draws "
                    "that enter polynomially order by order in sqrt(h) (xi, xi**2, sqrt(2*h*T)*xi, exp(sqrt(h)*xi)); "
                    "write the draw's effect as such"
                )
    moved = [(name, coeffs[0]) for name, coeffs in zip(names, series) if coeffs[0] != 0]
    if moved:
        name, c = moved[0]
        if names.index(name) >= n_params:
            raise InconsistentRuleError(
                f"{rule.name}'s state {name} moves by {sp.sstr(c)} per step as h -> 0, not O(h): " + _state_advice(rule)
            )
        raise InconsistentRuleError(
            f"{rule.name}'s step moves {name} by {sp.sstr(c)} as h -> 0 (a noise or update that does not vanish "
            f"with h), so no generator matches it: the engine assumes {SCALING}; scale the noise with sqrt(h)"
        )


def _non_polynomial(expr, gaussians) -> str:
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Basic) and node.has(*gaussians) and not node.is_Symbol and \
                not isinstance(node, (sp.Add, sp.Mul)) and not (isinstance(node, sp.Pow) and node.exp.is_Integer
                                                                and node.exp > 0):
            return sp.sstr(node)
    return sp.sstr(expr)


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


def operator_logarithm(ops: list, compose_ops, scaled_sum) -> list:
    """L_0..L_p from A_1..A_{p+1} (module docstring): L_{k-1} = A_k - sum_{n>=2} [h^k](h L~)^n / n!.

    The recursion for any operator representation: `compose_ops(a, b)` is the operator phi -> A(B phi),
    `scaled_sum([(factor, op), ...])` a linear combination. Used for multi-index operators (here) and
    for tensor networks (`_coordinate_free`).
    """
    generators: list = []
    # powers[n][k] = [h^k](h L~)^n, filled as the L's become known.
    powers: dict[int, dict[int, object]] = {}
    for k in range(1, len(ops) + 1):
        correction = []
        for n in range(2, k + 1):
            # (h L~)^n = (h L~) (h L~)^(n-1): [h^k] = sum_j L_{j-1} [h^(k-j)](h L~)^(n-1)
            terms = []
            for j in range(1, k - n + 2):
                lower = generators[k - j - 1] if n == 2 else powers[n - 1].get(k - j, {})
                terms.append((1, compose_ops(generators[j - 1], lower)))
            powers.setdefault(n, {})[k] = scaled_sum(terms)
            correction.append((-sp.Rational(1, factorial(n)), powers[n][k]))
        generators.append(scaled_sum([(1, ops[k - 1])] + correction))
    return generators


def generator_series(ops: list[Operator], params: Sequence[sp.Symbol]) -> list[Operator]:
    """L_0..L_p from A_1..A_{p+1} as multi-index operators (`operator_logarithm`)."""
    generators = operator_logarithm(ops, lambda a, b: compose(a, b, params), _scaled_sum)
    for j, op in enumerate(generators):
        if tuple([0] * len(params)) in op:
            raise InconsistentRuleError(f"L_{j} has a zeroth-order term: the one-step law does not have total mass 1")
    return generators

