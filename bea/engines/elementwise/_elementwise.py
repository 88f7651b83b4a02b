"""Coordinate-free derivation for rules with element-wise operations (RMSProp, Adam, ...).

Adam divides by the root of a moving average of squared gradients, component by
component. Its terms are not B-series (tree sums) but element-wise functions of
vector atoms, each a contraction of a derivative tensor of E with other such
functions (the notation of Cattaneo, Klusowski & Shigida, "On the implicit bias
of Adam", ICML 2024, arXiv:2309.00079, eqs 2-3):

    atoms:     A = nabla^{m+1} E [w_1, ..., w_m]      (grad E for m = 0; H w for m = 1),
    elements:  SymPy expressions in atoms, theta and scalars (hyperparameters), read
               component-wise: products are Hadamard products, sqrt and 1/x act per entry.

Element-wise operations commute, so an element is an ordinary commutative SymPy
expression in the atom symbols. Contractions are multilinear, so arguments are
split into scalar multiples of vector monomials, which makes atoms canonical.

The step is run on truncated series in h whose coefficients are elements: the
gradient at theta + delta is sum_j nabla^{j+1} E[delta^j]/j!, evaluated atom by
atom (`_at_point`), and the same evaluation gives the state's slow manifold
(`_slow_manifold.settle`) and the Lie derivatives D p[u] of the correction
recursion (`_correction`, in its general form: L_{n,k} = sum_{i+j=k} D L_{n-1,i}[f_j]).
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from math import factorial

import sympy as sp

from ..._errors import InconsistentRuleError, UnknownSymbolError, UnsupportedError
from ..series._fractions import rational_function_field
from ..series._jet import ScalarSeries, VectorSeries
from ..slow_manifold._slow_manifold import Truncations, settle
from ..trees._bseries_step import _multiplicity_factorials

__all__ = [
    "THETA", "ElementwiseAlgebra", "atom_arguments", "contract", "elementwise_modified_field", "inner_arguments",
    "is_atom", "is_inner",
]

#: theta itself, as an element (AdamW's decay term -lambda theta).
THETA = sp.Symbol("θ")

_ATOMS: dict[sp.Symbol, tuple] = {}  # atom symbol -> its arguments (monomials); m = len(arguments)
_BY_KEY: dict[tuple, sp.Symbol] = {}
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def is_atom(symbol) -> bool:
    return symbol in _ATOMS


# Scalar invariants <p, q> = sum_i p_i q_i of two vector monomials (bea.rules.dot): the same in every
# component, so they multiply elements like scalars, but depend on theta: D<p, q>[w] = <Dp[w], q> + <p, Dq[w]>.
_INNER: dict[sp.Symbol, tuple] = {}  # symbol -> (p, q), sorted
_INNER_BY_KEY: dict[tuple, sp.Symbol] = {}


def is_inner(symbol) -> bool:
    return symbol in _INNER


def inner_arguments(symbol) -> tuple:
    """The vector monomials (p, q) of the invariant <p, q> (1 stands for the vector of ones)."""
    return _INNER[symbol]


def _inner_atom(p, q) -> sp.Symbol:
    """<p, q> = sum_i p_i q_i, which depends on the element-wise product p*q only: keyed by it, so that
    <g^3, g> and <g^2, g^2> are one invariant. Stored as a split (r, r) when p*q = r^2, else (first factor, rest)."""
    product = p * q
    if product == 1:
        raise UnsupportedError(
            "the step takes the inner product of two constant vectors, which is the dimension of the parameters; "
            "the coordinate-free view holds in every dimension: derive on a concrete loss (loss=..., params=...)"
        )
    if product not in _INNER_BY_KEY:
        factors = sp.Mul.make_args(product)
        if all(f.as_base_exp()[1].is_Integer and f.as_base_exp()[1] % 2 == 0 for f in factors):
            root = sp.Mul(*[b ** (e // 2) for b, e in (f.as_base_exp() for f in factors)])
            split, name = (root, root), f"|{root}|²"
        else:
            ordered = sorted(factors, key=sp.default_sort_key)
            split = (ordered[0], sp.Mul(*ordered[1:]))
            name = f"⟨{split[0]}, {split[1]}⟩"
        _INNER_BY_KEY[product] = _registered(name, split, _INNER)
    return _INNER_BY_KEY[product]


def _depends(expr) -> bool:
    """Depends on theta: contains a contraction, theta itself, or an inner product of such."""
    return any(s in _ATOMS or s == THETA or s in _INNER for s in expr.free_symbols)


def _scalar_and_vector(monomial) -> tuple:
    """A monomial as (factors equal in every component, factors that are vectors)."""
    split = _SPLITS.get(monomial)
    if split is None:  # the same monomials come back in every contraction: split each once
        scalar, vector = [], []
        for factor in sp.Mul.make_args(monomial):
            (vector if _is_vector(factor) else scalar).append(factor)
        split = _SPLITS[monomial] = (sp.Mul(*scalar), sp.Mul(*vector))
    return split


#: monomial -> (scalar, vector) factors; a symbol's kind is fixed when it is registered, so entries stay true.
_SPLITS: dict = {}


def atom_arguments(symbol) -> tuple:
    """The arguments w_1..w_m of the atom nabla^{m+1} E[w_1, ..., w_m]."""
    return _ATOMS[symbol]


def _is_vector(expr) -> bool:
    return any(s in _ATOMS or s == THETA for s in expr.free_symbols)


def _atom(arguments: tuple) -> sp.Symbol:
    known = _BY_ARGUMENTS.get(arguments)
    if known is not None:  # skips sorting (SymPy's sort keys print expressions): most calls repeat
        return known
    unsorted = arguments
    arguments = tuple(sorted(arguments, key=sp.default_sort_key))
    if arguments not in _BY_KEY:
        m = len(arguments)
        if m == 0:
            name = "∇E"
        elif m == 1:
            name = f"∇²E({arguments[0]})"
        else:
            name = f"∇{str(m + 1).translate(_SUPERSCRIPTS)}E[{', '.join(map(str, arguments))}]"
        _BY_KEY[arguments] = _registered(name, arguments, _ATOMS)
    _BY_ARGUMENTS[unsorted] = _BY_KEY[arguments]
    return _BY_KEY[arguments]


_BY_ARGUMENTS: dict = {}  # the arguments in the order given -> the atom (sorted: _BY_KEY)


def _registered(name: str, meaning: tuple, registry: dict) -> sp.Symbol:
    """A symbol for `meaning`, named `name` unless that symbol already stands for something else (arguments
    that print alike but differ, e.g. in their symbols' assumptions): then a Dummy of that name, so no later
    derivation can change what an earlier result's atoms mean."""
    symbol = sp.Symbol(name)
    if registry.get(symbol, meaning) != meaning:
        symbol = sp.Dummy(name)
    registry[symbol] = meaning
    return symbol


def _in_field(factor) -> bool:
    """A scalar factor the coefficient field holds (rational in the hyperparameters; not sqrt(2))."""
    if _depends(factor):
        return False
    try:
        Element.field.from_sympy(factor)
    except (ValueError, TypeError, sp.polys.polyerrors.CoercionFailed):
        return False
    return True


class Element:
    """sum_M c_M M: vector monomials M (SymPy products of atoms, theta and element-wise powers of sums)
    with coefficients c_M in QQ(hyperparameters), sympy's fraction field: canonical and fast, no expand."""

    __slots__ = ("terms",)
    field = sp.QQ  # set for the duration of a derivation (`_scalars`)

    def __init__(self, terms: dict):
        self.terms = {m: c for m, c in terms.items() if c}

    @classmethod
    def of(cls, expr) -> Element:
        """From a SymPy expression: each term split into a rational function of the scalars and a monomial."""
        if isinstance(expr, Element):
            return expr
        out: dict = {}
        for term in sp.Add.make_args(sp.expand(sp.sympify(expr))):
            scalar, vector = [], []
            for factor in sp.Mul.make_args(term):
                (scalar if _in_field(factor) else vector).append(factor)
            for key, value in _reduced(sp.Mul(*vector), Element.field.from_sympy(sp.Mul(*scalar))):
                out[key] = out[key] + value if key in out else value
        return cls(out)

    def expr(self) -> sp.Expr:
        return sp.Add(*[Element.field.to_sympy(c) * m for m, c in self.terms.items()])

    def __add__(self, other):
        other = Element.of(other)
        out = dict(self.terms)
        for m, c in other.terms.items():
            out[m] = out[m] + c if m in out else c
        return Element(out)

    __radd__ = __add__

    def __neg__(self):
        return Element({m: -c for m, c in self.terms.items()})

    def __sub__(self, other):
        return self + (-Element.of(other))

    def __rsub__(self, other):
        return Element.of(other) - self

    def __mul__(self, other):
        other = Element.of(other)
        out: dict = {}
        one = Element.field.one
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                c12 = c1 * c2
                for m, factor in _reduced_product(m1, m2):
                    c = c12 if factor == one else c12 * factor
                    out[m] = out[m] + c if m in out else c
        return Element(out)

    __rmul__ = __mul__

    def inverse(self) -> Element:
        if not self.terms:
            raise ZeroDivisionError("division by an identically zero quantity")
        if len(self.terms) == 1:
            ((m, c),) = self.terms.items()
            return Element({1 / m: 1 / c})
        _relate(self)
        return Element({1 / self.expr(): Element.field.one})  # 1/(sum) is an element-wise factor of its own

    def power(self, exponent: sp.Rational) -> Element:
        """self^r for the head of a series (r rational): a monomial's power, or the power of a sum as a factor."""
        if exponent == -1:
            return self.inverse()
        if len(self.terms) == 1:
            ((m, c),) = self.terms.items()
            scalar = Element.field.to_sympy(c) ** exponent
            if _in_field(scalar):
                return Element({m**exponent: Element.field.from_sympy(scalar)})
            return Element({m**exponent * scalar: Element.field.one})
        _relate(self)
        return Element({self.expr() ** exponent: Element.field.one})

    def __eq__(self, other):
        if isinstance(other, (int, sp.Integer)) and other == 0:
            return not self.terms
        return isinstance(other, Element) and self.terms == other.terms

    def __bool__(self):
        return bool(self.terms)

    __hash__ = None

    def __repr__(self):
        return f"Element({self.expr()})"


# A factor B^r with B = s + c b^k (s, c scalars) ties b^k = (B - s)/c. Reducing every power b^e, e >= k,
# with it keeps monomials independent (g^2/(g^2 + eps)^(3/2) + eps/(g^2 + eps)^(3/2) is 1/sqrt(g^2 + eps)),
# so that zeros show and atoms with equal arguments are the same atom.
_RELATIONS: dict = {}  # base b -> (k, B, s, c) as SymPy objects


def _relate(total: Element) -> None:
    if len(total.terms) != 2 or sp.S.One not in total.terms:
        return
    ((monomial, c),) = [(m, c) for m, c in total.terms.items() if m != 1]
    base, k = monomial.as_base_exp()
    if not (base.is_Symbol or base.is_Pow) or base in _RELATIONS:
        return
    _RELATIONS[base] = (k, total.expr(), Element.field.to_sympy(total.terms[sp.S.One]), Element.field.to_sympy(c))
    _PRODUCTS.clear()


def _reset_relations() -> None:
    _RELATIONS.clear()
    _PRODUCTS.clear()


#: (m1, m2, field) -> _reduced(m1 * m2, 1): the same monomials multiply again and again (SymPy's Mul is
#: slow); valid while the relations stand, so cleared whenever they change.
_PRODUCTS: dict = {}


def _reduced_product(m1, m2) -> list[tuple]:
    key = (m1, m2, id(Element.field))
    known = _PRODUCTS.get(key)
    if known is None:
        known = _PRODUCTS[key] = _reduced(m1 * m2, Element.field.one)
    return known


def _reduced(monomial, coefficient) -> list[tuple]:
    """[(monomial, coefficient)] equal to monomial * coefficient with every tied power b^e (e >= k) rewritten."""
    if _RELATIONS:
        for factor in sp.Mul.make_args(monomial):
            base, e = factor.as_base_exp()
            if base in _RELATIONS and e >= _RELATIONS[base][0]:
                k, total, s, c = _RELATIONS[base]
                rest = monomial / base**k
                field = Element.field
                return (_reduced(rest * total, coefficient * field.from_sympy(1 / c))
                        + _reduced(rest, coefficient * field.from_sympy(-s / c)))
    number, rest = monomial.as_coeff_Mul()  # sqrt(2) * sqrt(2) = 2 belongs to the coefficient
    if number != 1:
        return [(rest, coefficient * Element.field.convert(number))]
    return [(monomial, coefficient)]


def _split(expr) -> list[tuple]:
    """expr (a SymPy expression) = sum of (scalar, vector monomial) pairs."""
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        scalar, vector = [], []
        for factor in sp.Mul.make_args(term):
            (vector if _is_vector(factor) else scalar).append(factor)
        if not vector:
            raise UnsupportedError(f"a derivative tensor was applied to a scalar ({term}), not a vector")
        out.append((sp.Mul(*scalar), sp.Mul(*vector)))
    return out


def contract(arguments) -> sp.Expr:
    """nabla^{m+1} E[w_1, ..., w_m] as a SymPy element expression (multilinear in the arguments)."""
    split = [_split(w) for w in arguments]
    total = sp.S.Zero
    for choice in _product(split):
        scalar = sp.Mul(*[s for s, _ in choice])
        total += scalar * _atom(tuple(v for _, v in choice))
    return total


def _contract_elements(arguments) -> Element:
    """The same on `Element`s: monomials are the arguments, coefficients multiply."""
    out: dict = {}
    for choice in _product([list(w.terms.items()) for w in arguments]):
        c = Element.field.one
        for _, ci in choice:
            c = c * ci
        scalars, vectors = zip(*[_pulled_out(m) for m, _ in choice]) if choice else ((), ())
        for key, value in _reduced(sp.Mul(*scalars) * _atom(tuple(vectors)), c):
            out[key] = out[key] + value if key in out else value
    return Element(out)


def _pulled_out(monomial) -> tuple:
    """(factors equal in every component, the rest) of a contraction's argument: the contraction is
    multilinear, so scalars (invariants <p, q>, sqrt(2)) leave it and equal arguments make equal atoms."""
    return _scalar_and_vector(monomial)


def _inner_elements(a: Element, b: Element) -> Element:
    """<a, b> for elements: bilinear, invariant factors pulled out of both arguments."""
    out: dict = {}
    for m1, c1 in a.terms.items():
        s1, v1 = _scalar_and_vector(m1)
        for m2, c2 in b.terms.items():
            s2, v2 = _scalar_and_vector(m2)
            for key, value in _reduced(s1 * s2 * _inner_atom(v1, v2), c1 * c2):
                out[key] = out[key] + value if key in out else value
    return Element(out)


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for rest in _product(lists[1:]):
            yield (head,) + rest


class ElementwiseAlgebra:
    """The coefficient algebra of the series: `Element`s."""

    params = ()
    #: theta stands for a vector of any dimension: its components cannot be read (`VectorSeries._concrete`).
    abstract_dimension = True

    def from_expr(self, expr):
        return Element.of(expr)

    def inner(self, a, b) -> Element:
        """<a, b> of two elements (coefficients of vector series), for `bea.rules.dot`."""
        return _inner_elements(Element.of(a), Element.of(b))

    def to_expr(self, value):
        return value.expr() if isinstance(value, Element) else value

    def from_expr_or_seed(self, expr):
        if expr.is_Pow and expr.exp.is_Rational and _depends(expr.base):  # head^r in a series power
            return Element.of(expr.base).power(expr.exp)
        return Element.of(expr)

    def mul(self, a, b):
        return Element.of(a) * b

    def divide(self, value, divisor):
        return Element.of(value) * Element.of(divisor).inverse()

    @property
    def zero(self):
        return Element({})

    @property
    def identity(self):
        return (Element.of(THETA),)

    def is_zero(self, value) -> bool:
        return not value

    def diff(self, value, index):  # pragma: no cover - not used: derivatives are directional here
        raise UnsupportedError("element-wise terms are differentiated along directions, not per parameter")


def vanishes(value: Element) -> bool:
    """Exact zero test, also for zeros hidden in rational functions of the atoms (x/(x+e) + e/(x+e) - 1)."""
    return not value or sp.cancel(sp.together(value.expr())) == 0


class _Evaluator:
    """Elements at the shifted point theta + delta (delta = O(h)), as series in h."""

    def __init__(self, algebra, delta: list, order: int):
        self.algebra, self.delta, self.order = algebra, [Element.of(d) for d in delta], order
        self.cache: dict = {}

    def series(self, coefficients) -> ScalarSeries:
        coefficients = [Element.of(c) for c in coefficients]
        return ScalarSeries(self.algebra, coefficients + [Element({})] * (self.order + 1 - len(coefficients)))

    def element(self, value: Element) -> ScalarSeries:
        """sum_M c_M M(theta + delta)."""
        total = self.series([])
        for m, c in value.terms.items():
            total = total + self(m) * ScalarSeries(self.algebra, [Element({sp.S.One: c})] + [Element({})] * self.order)
        return total

    def __call__(self, expr) -> ScalarSeries:
        if isinstance(expr, Element):
            return self.element(expr)
        if expr in self.cache:
            return self.cache[expr]
        if expr == THETA:
            out = self.series([THETA] + self.delta[1:])
        elif expr in _ATOMS:
            out = self.contract_at([self(w) for w in _ATOMS[expr]])
        elif expr in _INNER:
            p, q = (self(w) for w in _INNER[expr])
            out = self.series([sum((_inner_elements(p.coeffs[i], q.coeffs[k - i]) for i in range(k + 1)), Element({}))
                               for k in range(self.order + 1)])
        elif not _depends(expr):
            out = self.series([expr])
        elif expr.is_Add:
            out = sum((self(a) for a in expr.args[1:]), self(expr.args[0]))
        elif expr.is_Mul:
            out = self(expr.args[0])
            for a in expr.args[1:]:
                out = out * self(a)
        elif expr.is_Pow and expr.exp.is_Rational:
            out = self(expr.base) ** expr.exp
        else:
            raise UnsupportedError(f"no series for the element-wise function {expr.func.__name__} in {expr}")
        self.cache[expr] = out
        return out

    def contract_at(self, arguments: list) -> ScalarSeries:
        """nabla^{m+1} E(theta + delta)[W_1, ..., W_m] = sum_j nabla^{m+1+j} E[delta^j, W..]/j!."""
        n = self.order
        out = [Element({}) for _ in range(n + 1)]
        shifts = [k for k in range(1, n + 1) if self.delta[k]]
        for j in range(n + 1):
            for ks in combinations_with_replacement(shifts, j):
                low = sum(ks)
                if low > n:
                    continue
                weight = Element({sp.S.One: Element.field.convert(sp.Rational(1, _multiplicity_factorials(ks)))})
                for powers, args in _argument_choices(arguments, n - low):
                    out[low + powers] = out[low + powers] + weight * _contract_elements(
                        [self.delta[k] for k in ks] + list(args))
        return self.series(out)


def _argument_choices(arguments, budget):
    """(total power, coefficients) over the ways to pick one coefficient of each argument series."""
    if not arguments:
        yield 0, ()
        return
    head, rest = arguments[0], arguments[1:]
    for k, c in enumerate(head.coeffs[: budget + 1]):
        if c != 0:
            for power, tail in _argument_choices(rest, budget - k):
                yield k + power, (c,) + tail


class ElementwiseOracle:
    """grad(x) and grad.hvp(x, v) for x = theta + delta, on element series."""

    n_losses = 1

    def __init__(self, algebra, order: int):
        self.algebra, self.order = algebra, order

    def _evaluator(self, x) -> _Evaluator:
        if x.coeffs[0][0] != Element.of(THETA):
            raise UnknownSymbolError("an evaluation point moves by O(1); the coordinate-free view needs theta + O(h)")
        return _Evaluator(self.algebra, [0] + [c[0] for c in x.coeffs[1:]], self.order)

    def __call__(self, x):
        return VectorSeries.stack([self._evaluator(x).contract_at([])])

    def hvp(self, x, v):
        return VectorSeries.stack([self._evaluator(x).contract_at([v.component(0)])])

    def value(self, x):
        raise UnsupportedError("loss values have no element-wise form; the coordinate-free view uses gradients")

    def __getitem__(self, k):
        if k:
            raise UnsupportedError("element-wise coordinate-free views take one loss")
        return self


def directional(value: Element, direction: Element) -> Element:
    """D value [direction]: the derivative of an element along a direction (itself an element)."""
    return _Evaluator(ElementwiseAlgebra(), [0, direction], 1)(value).coeffs[1]


def elementwise_modified_field(rule, order: int) -> tuple[list, list]:
    """(f_0..f_order, slow manifold states sum_k h^k S_k) of a rule with element-wise operations,
    as SymPy element expressions."""
    from ..series._jet import STEP_SIZE

    previous = Element.field
    Element.field = rational_function_field(rule.free_symbols)
    _reset_relations()
    try:
        algebra = ElementwiseAlgebra()
        n = order + 1
        states: list = []
        if hasattr(rule, "decays"):
            # The leading part of the slow manifold first: its sweeps start from zero states, whose
            # transient roots (sqrt((1 - rho) g^2 + eps)) must not become relations of the result.
            lead = _settle(rule, algebra, 0, None)[1]
            _reset_relations()
            phi, states = _settle(rule, algebra, n, [s.coeffs[0][0] for s in lead])
        else:
            theta, h = _start(algebra, n)
            phi = rule.step(theta, ElementwiseOracle(algebra, n), h)
        if not isinstance(phi, VectorSeries) or phi.coeffs[0][0] != Element.of(THETA):
            raise InconsistentRuleError(f"the step of {rule.name} is not theta + O(h)")
        expansion = [phi.coeffs[k][0] for k in range(1, n + 1)]
        fields = [f.expr() for f in _corrections(expansion, order)]
        manifold = [sum((STEP_SIZE**k * c[0].expr() for k, c in enumerate(state.coeffs[: order + 1])), sp.S.Zero)
                    for state in states]
        return fields, manifold
    finally:
        Element.field = previous


def _start(algebra, n: int):
    """theta and h as series truncated after h^n."""
    zero = Element({})
    theta = VectorSeries(algebra, [(Element.of(THETA),)] + [(zero,)] * n)
    h = ScalarSeries(algebra, ([zero, Element.of(1)] + [zero] * n)[: n + 1])
    return theta, h


def _settle(rule, algebra, n: int, lead):
    """(theta', states) on the slow manifold, series truncated after h^n; `lead`: the states' h^0 parts."""
    state0 = None if lead is None else [VectorSeries(algebra, [(c,)]) for c in lead]
    return settle(rule, _ElementTruncations(algebra), order=n, state0=state0)


class _ElementTruncations(Truncations):
    """Element series truncated after h^k, for `settle`."""

    def __init__(self, algebra):
        self.algebra = algebra

    def at(self, k):
        theta, h = _start(self.algebra, k)
        return theta, ElementwiseOracle(self.algebra, k), h

    def zero_state(self, k):
        return VectorSeries(self.algebra, [(Element({}),)] * (k + 1))

    def resize(self, state, k):
        return VectorSeries(self.algebra, (state.coeffs + [(Element({}),)] * k)[: k + 1])

    def compose(self, state, point):
        n = point.order
        zero = Element({})
        evaluate = _Evaluator(self.algebra, [0] + [c[0] for c in point.coeffs[1:]], n)
        total = ScalarSeries(self.algebra, [zero] * (n + 1))
        for k, (c,) in enumerate(state.coeffs):
            if c:
                value = evaluate(c)
                total = total + ScalarSeries(self.algebra, [zero] * k + value.coeffs[: n + 1 - k])
        return VectorSeries.stack([total])

    def lowest(self, residual, start):
        return next((k for k in range(start, len(residual.coeffs)) if not vanishes(residual.coeffs[k][0])), None)


def _corrections(expansion: list, order: int) -> list:
    """f_l = d_{l+1} - sum_{n >= 2} L_{n, l+1-n}/n!, with L_{1,k} = f_k, L_{n,k} = sum_{i+j=k} D L_{n-1,i}[f_j]."""
    lie: dict = {}
    fields: list = []
    for l in range(order + 1):
        value = expansion[l]
        for m in range(2, l + 2):
            k = l + 1 - m
            lie[(m, k)] = sum((directional(lie[(m - 1, i)], fields[k - i]) for i in range(k + 1)), Element({}))
            value = value - lie[(m, k)] * Element.of(sp.Rational(1, factorial(m)))
        fields.append(value)
        lie[(1, l)] = fields[l]
    return fields
