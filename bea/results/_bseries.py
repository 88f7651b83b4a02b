"""`BSeries`: B-series as objects (integrators and vector fields), and `order_of_accuracy(rule)`.

A B-series is B(a) = a(0) id + sum_t h^{|t|} a(t)/sigma(t) F(t) over rooted trees (Hairer, Lubich &
Wanner, Geometric Numerical Integration, 2nd ed., Sec. III.1, doi:10.1007/3-540-30666-8; the
normalisation of BSeries.jl and kauri). An integrator has a(0) = 1; a vector field h f~ has a(0) = 0.
The algebra (composition, substitution, exp/log, modifying integrators, the coefficient conditions of
order, symmetry, symplecticity and energy preservation) is `bea.engines.trees._bseries_algebra`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import sympy as sp

from .._errors import InvalidHyperparameterError, InvalidOrderError, UnsupportedError
from ..engines.trees import _bseries_algebra as algebra
from ..engines.trees._colored_trees import Colored
from ..engines.trees._notation import _SUPERSCRIPTS, field_latex, gradient_latex, gradient_text
from ..engines.trees._trees import Tree, elementary_weight, level_sequence, order, symmetry, trees_up_to
from ._terms import signed_latex, signed_text

__all__ = ["BSeries", "order_of_accuracy"]

_MAX_ORDER = 16  # trees with 16 nodes: 32973 of them; beyond, the exact algebra takes minutes


def _check_order(value, what: str = "order") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOrderError(f"{what} must be a positive integer, got {value!r}")
    if value > _MAX_ORDER:
        raise InvalidOrderError(f"{what} = {value} is beyond {_MAX_ORDER} (the trees number in the hundreds of "
                                "thousands there); ask for a smaller order")
    return value


def _exact(value, what: str):
    from ..rules._base import exact

    return exact(value, what)


def _as_tree(tree) -> Tree:
    """A tree of `_trees` (nested sorted tuples) from itself or a level sequence ([1, 2, 2])."""
    if isinstance(tree, tuple):
        return tree
    if isinstance(tree, list):
        try:
            return algebra.tree_from_level_sequence(tree)
        except ValueError as error:
            raise InvalidHyperparameterError(str(error)) from None
    raise InvalidHyperparameterError(
        f"a tree is a nested tuple (() is the single node, ((),) the chain of two) or a level sequence "
        f"list such as [1, 2, 2]; got {tree!r}"
    )


def _field_text(tree) -> str:
    if not tree:
        return "f"
    inner = [_field_text(c) for c in tree]
    if len(tree) == 1:
        return f"f' {inner[0]}"
    m = len(tree)
    primes = "'" * m if m <= 3 else f"⁽{str(m).translate(_SUPERSCRIPTS)}⁾"
    return f"f{primes}({', '.join(inner)})"


@dataclass(frozen=True, eq=True)
class BSeries:
    """A truncated B-series: `coefficients` {tree: a(t)} for every tree with at most `order` nodes, and
    `constant` = a(empty tree) (1: an integrator; 0: a vector field h f~).

    It stands for a(0) y + sum_t h^{|t|} a(t)/sigma(t) F(t)(y), F the elementary differentials of a field f
    (f = -grad E for bea's rules). Trees are nested sorted tuples (`()` the single node, `((),)` the chain
    f'f, `((), ())` the cherry f''(f, f)); `series[[1, 2, 2]]` also takes a level sequence. Coefficients
    are exact SymPy numbers or expressions; floats become the decimals they denote.
    """

    coefficients: Mapping = field(repr=False)
    order: int
    constant: object = 1

    def __post_init__(self):
        n = _check_order(self.order)
        values = {}
        for tree, value in dict(self.coefficients).items():
            t = _as_tree(tree)
            if order(t) > n:
                raise InvalidOrderError(f"the tree {level_sequence(t)} has {order(t)} nodes, beyond order {n}; "
                                        "drop it or raise the order")
            values[t] = _exact(value, f"the coefficient of {level_sequence(t)}")
        full = {t: values.get(t, sp.S.Zero) for t in trees_up_to(n)}
        object.__setattr__(self, "coefficients", MappingProxyType(full))
        object.__setattr__(self, "constant", _exact(self.constant, "the constant (the empty tree's coefficient)"))

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_runge_kutta(cls, method, b=None, *, order: int) -> BSeries:
        """The B-series of a Runge-Kutta method: a rule with a tableau (`bea.rules.RungeKutta`, explicit or
        implicit) or a matrix A with weights b (any A: implicit methods too).

        a(t) = sum_i b_i Phi_i(t) with Phi_i(t) = prod over the children u of t of sum_j a_ij Phi_j(u)
        (Butcher's elementary weights; HLW Thm III.1.4)."""
        _check_order(order)
        if b is None:
            if not (hasattr(method, "A") and hasattr(method, "b")):
                raise InvalidHyperparameterError("give a Runge-Kutta rule, or the matrix A and the weights b")
            A, b = method.A, method.b
        else:
            A = method
        try:
            A = [[_exact(x, f"A[{i}][{j}]") for j, x in enumerate(row)] for i, row in enumerate(A)]
            b = [_exact(x, f"b[{i}]") for i, x in enumerate(b)]
        except TypeError:
            raise InvalidHyperparameterError(f"A must be a list of rows and b a list of numbers; got {A!r}, {b!r}") from None
        if not b or len(A) != len(b) or any(len(row) != len(b) for row in A):
            raise InvalidHyperparameterError(f"A must be {len(b)} x {len(b)} to match b")
        weight = elementary_weight(A, b)
        return cls({t: sp.expand(weight(t)) for t in trees_up_to(order)}, order, 1)

    @classmethod
    def from_tree_coefficients(cls, terms) -> BSeries:
        """The vector field h f~ of `bea.tree_coefficients(rule, order)`: b(t) on trees of <= order + 1 nodes."""
        terms = list(terms)
        if not terms:
            raise InvalidOrderError("no tree coefficients given")
        return cls({t.tree: t.coefficient for t in terms}, max(t.order for t in terms), 0)

    @classmethod
    def from_rule(cls, rule, order: int) -> BSeries:
        """The B-series of one step of any gradient rule whose step has a coordinate-free form (GD, EGR, SAM with
        rho = c h, Runge-Kutta maps, rules with memory on their slow manifold): exp of its modified field.

        Raises `UnsupportedError` where the step is not a B-series in h f: a tree's coefficient has a power of
        h other than |t| (an independent radius, a hyperparameter not tied to h), or the rule has several
        losses (coloured trees)."""
        _check_order(order)
        field_, duration = _rule_field(rule, order)  # the step is the flow of f~ over duration * h
        return cls({t: duration * v for t, v in field_.items()}, order, 0).exp()

    @classmethod
    def exact_flow(cls, order: int) -> BSeries:
        """The exact flow over h of y' = f: a(t) = 1/gamma(t) (HLW Thm III.1.3)."""
        return cls(algebra.exact_flow(_check_order(order)), order, 1)

    @classmethod
    def identity(cls, order: int) -> BSeries:
        """y itself: a(0) = 1, every other coefficient 0."""
        return cls({}, order, 1)

    @classmethod
    def vector_field(cls, order: int) -> BSeries:
        """h f itself: the field with b(.) = 1 and every other coefficient 0; its exp is the exact flow."""
        return cls({(): 1}, order, 0)

    # ------------------------------------------------------------ access

    @property
    def is_integrator(self) -> bool:
        return self.constant == 1

    @property
    def is_field(self) -> bool:
        return self.constant == 0

    def __getitem__(self, tree):
        t = _as_tree(tree)
        if order(t) > self.order:
            raise InvalidOrderError(f"the tree {level_sequence(t)} has {order(t)} nodes; this series stops at {self.order}")
        return self.coefficients[t]

    def to_dict(self) -> dict:
        """{tree: coefficient} for every tree with at most `order` nodes (by order)."""
        return dict(self.coefficients)

    def truncated(self, order: int) -> BSeries:
        """The same series through `order` <= self.order."""
        self._at_most(order)
        return BSeries({t: v for t, v in self.coefficients.items() if len(level_sequence(t)) <= order}, order, self.constant)

    def scaled(self, factor) -> BSeries:
        """The series with h replaced by factor * h: a(t) factor^{|t|}."""
        factor = _exact(factor, "the step-size factor")
        return BSeries({t: sp.expand(v * factor ** order(t)) for t, v in self.coefficients.items()}, self.order,
                       self.constant)

    def __repr__(self) -> str:
        kind = "integrator" if self.is_integrator else "vector field" if self.is_field else "map"
        return f"BSeries({kind}, order={self.order}, {sum(v != 0 for v in self.coefficients.values())} nonzero terms)"

    # ------------------------------------------------------------ algebra

    def _need(self, integrator: bool, what: str):
        if integrator and not self.is_integrator:
            raise UnsupportedError(f"{what} needs an integrator (constant 1), not this series (constant "
                                   f"{self.constant}); use .exp() to turn a field into its flow")
        if not integrator and not self.is_field:
            raise UnsupportedError(f"{what} needs a vector field (constant 0), not this series (constant "
                                   f"{self.constant}); use .modified_equation() to get an integrator's field")

    def _at_most(self, order: int) -> None:
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= self.order:
            raise InvalidOrderError(f"order must be an integer in 1..{self.order}, got {order!r}")

    def compose(self, *others: BSeries, normalize_stepsize: bool = False) -> BSeries:
        """One step of `self`, then one of each of `others` in turn: B(b, B(a, y)) = B(a.b, y) (HLW Thm III.1.10,
        the Connes-Kreimer coproduct; BSeries.jl `compose(a, b)` takes a first too).

        normalize_stepsize: each of the k steps is taken with h/k (a(t) / k^{|t|}), so the result is again a
        method over h."""
        if not others:
            raise UnsupportedError("compose needs at least one other series")
        out = self
        for other in others:
            if not isinstance(other, BSeries):
                raise UnsupportedError(f"compose takes BSeries, got {type(other).__name__}")
            out._need(True, "the first step of a composition")
            n = min(out.order, other.order)
            out = BSeries(algebra.compose(out.coefficients, other.coefficients, n, other.constant), n, other.constant)
        return out.scaled(sp.Rational(1, len(others) + 1)) if normalize_stepsize else out

    def substitute(self, field_: BSeries) -> BSeries:
        """`self` with h f replaced by the vector field `field_` (Chartier, Hairer & Vilmart, Found. Comput.
        Math. 10 (2010), doi:10.1007/s10208-010-9065-1): (b * a)(t) = sum over the partitions of t into
        subtrees of a(skeleton) prod b(parts). `self.substitute(BSeries.vector_field(n))` is `self`."""
        field_._need(False, "substitute's argument")
        n = min(self.order, field_.order)
        return BSeries(algebra.substitute(field_.coefficients, self.coefficients, n), n, self.constant)

    def modified_equation(self) -> BSeries:
        """The modified vector field h f~ of this integrator (its logarithm): the flow of f~ over h is the
        integrator through `order` (HLW Sec. IX.9; kauri `Map.log`). Agrees with `bea.tree_coefficients`."""
        self._need(True, "modified_equation")
        return BSeries(algebra.log(self.coefficients, self.order), self.order, 0)

    def exp(self) -> BSeries:
        """The flow over h of this vector field (exp(b) = b * e; exp of `vector_field` is `exact_flow`)."""
        self._need(False, "exp")
        return BSeries(algebra.exp(self.coefficients, self.order), self.order, 1)

    def modifying_integrator(self, target: BSeries | None = None) -> BSeries:
        """The vector field h f^ with which this integrator follows `target` (default: the exact flow of f):
        (b * a) = target (Chartier, Hairer & Vilmart, Math. Comp. 76 (2007), doi:10.1090/S0025-5718-07-01967-9;
        BSeries.jl `modifying_integrator`, kauri `preprocessed_integrator`)."""
        self._need(True, "modifying_integrator")
        if target is None:
            return BSeries(algebra.modifying_field(self.coefficients, self.order), self.order, 0)
        target._need(True, "the target of modifying_integrator")
        n = min(self.order, target.order)
        return BSeries(algebra.modifying_field(self.coefficients, n, target.coefficients), n, 0)

    # ------------------------------------------------------------ properties

    def order_of_accuracy(self) -> int:
        """The largest p with a(t) = 1/gamma(t) for every tree with |t| <= p (Butcher). A value equal to
        `self.order` means "at least": truncate later to look further."""
        self._need(True, "order_of_accuracy")
        return algebra.order_of_accuracy(self.coefficients, self.order)

    def is_symplectic(self) -> bool:
        """a(u o v) + a(v o u) = a(u) a(v) for every pair with |u| + |v| <= order (HLW Thm VI.7.6): symplectic
        for every Hamiltonian system through this order."""
        self._need(True, "is_symplectic")
        return not algebra.symplecticity_defects(self.coefficients, self.order)

    def is_symmetric(self) -> bool:
        """Phi_{-h} o Phi_h = id through this order (HLW Sec. V.1), by composition with the reflected series."""
        self._need(True, "is_symmetric")
        return not algebra.symmetry_defects(self.coefficients, self.order)

    def is_energy_preserving(self) -> bool:
        """Preserves every Hamiltonian through this order: the modified field meets Theorem 2 of Celledoni,
        McLachlan, Owren & Quispel, Found. Comput. Math. 10 (2010), doi:10.1007/s10208-010-9073-1 (the criterion
        of BSeries.jl `is_energy_preserving`), checked exactly."""
        self._need(True, "is_energy_preserving")
        field_ = algebra.log(self.coefficients, self.order)
        return not algebra.energy_preservation_defects(field_, self.order)

    # ------------------------------------------------------------ display

    def _terms(self):
        return [(t, v / symmetry(t)) for t, v in self.coefficients.items() if v != 0]

    def text(self, notation: str = "field") -> str:
        """The series in plain text: 'y + h f + 1/2 h² f' f + ...' (notation 'field'), or with f = -grad E in
        gradient notation ('gradient': ∇E, ∇²E ∇E, with the signs (-1)^{|t|})."""
        if notation not in ("field", "gradient"):
            raise ValueError("notation must be 'field' or 'gradient'")
        pieces = [] if self.constant == 0 else [signed_text(self.constant) + "y"]
        for t, c in self._terms():
            n = order(t)
            power = "h" if n == 1 else f"h{str(n).translate(_SUPERSCRIPTS)}"
            body = _field_text(t) if notation == "field" else gradient_text(t)
            c = c if notation == "field" else (-1) ** n * c
            pieces.append(f"{signed_text(c)}{power} {body}")
        text = " ".join(pieces)
        text = (text[2:] if text.startswith("+ ") else "-" + text[2:]) if pieces else "0"
        return f"{text} + O(h{str(self.order + 1).translate(_SUPERSCRIPTS)})"

    def latex(self, notation: str = "field") -> str:
        """The series as a LaTeX formula (notation 'field' or 'gradient', as `text`)."""
        if notation not in ("field", "gradient"):
            raise ValueError("notation must be 'field' or 'gradient'")
        pieces = [] if self.constant == 0 else [signed_latex(self.constant) + "y"]
        for t, c in self._terms():
            n = order(t)
            power = "h" if n == 1 else f"h^{{{n}}}"
            body = field_latex(t) if notation == "field" else gradient_latex(t)
            c = c if notation == "field" else (-1) ** n * c
            pieces.append(f"{signed_latex(c)}{power}\\, {body}")
        body = " ".join(pieces).lstrip("+ ").strip() or "0"
        return f"{body} + \\mathcal{{O}}(h^{{{self.order + 1}}})"


def _rule_field(rule, order_: int) -> tuple[dict, object]:
    """{tree: b(t)} of the modified field h f~ of a gradient rule (trees up to `order_`), and its duration."""
    from ..engines.trees._bseries_step import bseries_modified_field

    field_ = bseries_modified_field(rule, order_ - 1)
    out = {}
    for t, coefficients in field_.items():
        if isinstance(t, Colored):
            raise UnsupportedError(f"{rule.name} has several losses (coloured trees); a B-series here is in one field f")
        n = order(t)
        for power, c in enumerate(coefficients, start=1):
            if c != 0 and power != n:
                raise UnsupportedError(
                    f"the step of {rule.name} is not a B-series in h f: the tree {level_sequence(t)} ({n} nodes) "
                    f"carries h^{power}; tie every hyperparameter to h (rho = c*h) or use the modified equation"
                )
        if n <= order_:
            out[t] = coefficients[n - 1]
    return out, sp.sympify(getattr(rule, "duration", 1))


def order_of_accuracy(rule, *, max_order: int = 10) -> int:
    """The order p of a one-step rule: one step matches the exact flow of f = -grad E (over duration * h for
    composite rules) through h^p, i.e. a(t) = 1/gamma(t) for every tree with |t| <= p (Butcher's order
    conditions; HLW Thm III.1.5), equivalently its modified field is f + O(h^p).

    Runge-Kutta rules (explicit or implicit tableaus) use their elementary weights; other gradient rules with a
    coordinate-free form (EGR, SAM with rho = c h, ...) their B-series step. A BSeries is accepted too.
    Hyperparameters stay symbols: a condition holds only if it holds identically.

    Raises `InvalidOrderError` when every tree up to `max_order` nodes matches (the order is at least
    `max_order`: pass a larger one), and `UnsupportedError` for rules with no B-series in one field.
    """
    from ..rules import EULER, GD

    _check_order(max_order, "max_order")
    if isinstance(rule, BSeries):
        return rule.order_of_accuracy()
    if isinstance(rule, GD):
        rule = EULER
    if hasattr(rule, "A") and hasattr(rule, "b") and not hasattr(rule, "decays"):
        p = _tableau_order(rule, max_order)
    else:
        p = max_order
        for k in sorted({min(2, max_order), min(4, max_order), max_order}):  # low orders first: most rules stop there
            field_ = _rule_field_any(rule, k)
            p = _field_order(field_, k)
            if p < k:
                break
    if p >= max_order:
        raise InvalidOrderError(
            f"{getattr(rule, 'name', 'the rule')} matches the exact flow on every tree with up to {max_order} "
            f"nodes: its order is at least {max_order}; pass a larger max_order to look further"
        )
    return p


def _rule_field_any(rule, max_order: int) -> dict:
    """{tree: [coefficients of h^1..h^max_order]} of a gradient rule's modified field, any powers of h."""
    from ..engines.trees._bseries_step import bseries_modified_field

    field_ = bseries_modified_field(rule, max_order - 1)
    if any(isinstance(t, Colored) for t in field_):
        raise UnsupportedError(f"{rule.name} has several losses (coloured trees); the order of accuracy here is "
                               "for a flow of one field f")
    return field_


def _tableau_order(rule, max_order: int) -> int:
    """Butcher's order conditions tree by tree, order by order (the weights of a tableau, memoized)."""
    from ..engines.trees._trees import gamma, trees_of_order

    A = [[_exact(x, f"A[{i}][{j}]") for j, x in enumerate(row)] for i, row in enumerate(rule.A)]
    weight = elementary_weight(A, [_exact(x, f"b[{i}]") for i, x in enumerate(rule.b)])
    for n in range(1, max_order + 1):
        if any(not algebra.vanishes(weight(t) - sp.Rational(1, gamma(t))) for t in trees_of_order(n)):
            return n - 1
    return max_order


def _field_order(field_: dict, max_order: int) -> int:
    """The largest p with f~ = f + O(h^p): b(.) = h and every other coefficient of h^k, k <= p, zero."""
    first = {k: [] for k in range(1, max_order + 1)}  # the conditions that fail at each power of h
    for t, coefficients in field_.items():
        for power, c in enumerate(coefficients[:max_order], start=1):
            expected = 1 if (t == () and power == 1) else 0
            if not algebra.vanishes(c - expected):
                first[power].append(t)
    if () not in field_:
        return 0
    for power in range(1, max_order + 1):
        if first[power]:
            return power - 1
    return max_order

