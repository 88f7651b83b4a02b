"""`modified_equation`: the concrete view of backward error analysis."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence

import sympy as sp

from .._errors import InvalidOrderError, InvalidRuleError, UnknownSymbolError
from .._progress import Progress, rule_name, warn_if_slow
from ._correction import corrections_from_expansion
from ._expand import expand_step
from ._jet import STEP_SIZE
from ._problem import Problem, as_loss

__all__ = ["MAX_SAFE_ORDER", "ModifiedEquation", "finite_n_modified_equation", "modified_equation"]

#: Orders above this need `max_order=` raised explicitly: terms grow combinatorially.
MAX_SAFE_ORDER = 12


@dataclasses.dataclass(frozen=True)
class ModifiedEquation:
    """The modified equation theta' = f_0 + h f_1 + ... + h^p f_p of a rule, on concrete losses.

    `terms[l]` is f_l as a SymPy column (one component per parameter), exact.
    `expansion[k-1]` is d_k of the step expansion Phi_h = theta + sum h^k d_k.
    Truncating after f_p, one step of the rule and the time-h flow of the
    truncated field differ by O(h^{p+2}) (Hairer, Lubich & Wanner, Geometric
    Numerical Integration, Thm IX.1.2, doi:10.1007/3-540-30666-8).
    """

    rule: object
    params: tuple[sp.Symbol, ...]
    losses: tuple[sp.Expr, ...]
    order: int
    terms: tuple[sp.ImmutableMatrix, ...]
    expansion: tuple[sp.ImmutableMatrix, ...]
    constants: tuple[sp.Symbol, ...] = ()
    #: Rules with memory: per state, the columns S_0, S_1, ... of its slow manifold S_h(theta),
    #: exact through h^order (the iterates' state once the transients have decayed).
    slow_manifold: tuple = ()

    def __post_init__(self):
        if len(self.terms) != self.order + 1:
            raise ValueError("terms must hold f_0..f_order")

    @property
    def h(self) -> sp.Symbol:
        """The step-size symbol."""
        return STEP_SIZE

    @property
    def loss(self) -> sp.Expr:
        """The loss, for rules with one loss."""
        if len(self.losses) != 1:
            raise AttributeError(f"this rule has {len(self.losses)} losses; use .losses")
        return self.losses[0]

    def field(self, order: int | None = None) -> sp.ImmutableMatrix:
        """The truncated modified field f_0 + h f_1 + ... + h^order f_order."""
        order = self.order if order is None else order
        if not 0 <= order <= self.order:
            raise InvalidOrderError(f"order {order} is outside 0..{self.order} derived")
        total = sp.zeros(len(self.params), 1)
        for l in range(order + 1):
            total += STEP_SIZE**l * self.terms[l]
        return sp.ImmutableMatrix(total)

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """Every symbol in the terms other than the parameters: data, hyperparameters."""
        found = set()
        for term in self.terms:
            found |= term.free_symbols
        return tuple(sorted(found - set(self.params), key=str))

    def latex(self) -> str:
        """The modified equation as a LaTeX display formula (see `bea.exports.latex`)."""
        from ..exports import latex

        return latex(self)

    def modified_loss(self, order: int | None = None):
        """E~ with f_0 + ... + h^order f_order = -grad E~, if that field is a gradient
        (see `bea.exports.modified_loss`); raises `NoModifiedLossError` otherwise."""
        from ..exports import modified_loss

        return modified_loss(self, order)

    def to_jax(self, *, term: int | None = None, order: int | None = None, allow_float32: bool = False):
        """The field as a jitted JAX function `field(theta, h, **symbols) -> array`.

        `term=l` gives f_l alone, `fn(theta, **symbols)`; `order=` truncates the field.
        Symbols left in the terms (hyperparameters, loss constants) are keyword
        arguments, traced, so new values do not recompile. Needs JAX's x64 mode
        unless allow_float32 (see `bea.lowering.lower_expressions`).
        """
        from ..lowering import lower_expressions

        if term is not None:
            if not 0 <= term <= self.order:
                raise InvalidOrderError(f"term {term} is outside 0..{self.order} derived")
            column, what = self.terms[term], f"f_{term}"
        else:
            column, what = self.field(order), "f_0 + h f_1 + ... (truncated modified field)"
        return lower_expressions(list(column), self.params, scalar=False, description=what, allow_float32=allow_float32)

    def slow_manifold_to_jax(self, *, allow_float32: bool = False) -> list:
        """Per state, `S(theta, h) = S_0 + h S_1 + ... + h^order S_order` as a jitted JAX function:
        the state of a rule with memory once its transients have decayed."""
        from ..lowering import lower_expressions

        if not self.slow_manifold:
            raise AttributeError(f"{getattr(self.rule, 'name', self.rule)} keeps no state")
        out = []
        for i, columns in enumerate(self.slow_manifold):
            series = sum((STEP_SIZE**k * sp.Matrix(c) for k, c in enumerate(columns)), sp.zeros(len(self.params), 1))
            out.append(lower_expressions(list(series), self.params, scalar=False, description=f"slow manifold of state {i}",
                                         allow_float32=allow_float32))
        return out

    def to_dict(self) -> dict:
        """A JSON-serializable summary; each term component is a string `sympy.sympify` parses."""
        from ..exports import to_dict

        return to_dict(self)

    def __repr__(self) -> str:
        lines = [f"ModifiedEquation({getattr(self.rule, 'name', self.rule)}, order={self.order}, params={list(self.params)})"]
        lines += [f"  f_{l} = {list(term)}" for l, term in enumerate(self.terms)]
        return "\n".join(lines)


def modified_equation(
    rule,
    order: int,
    *,
    loss: sp.Expr | None = None,
    losses: Sequence[sp.Expr] | None = None,
    params: Sequence[sp.Symbol] | None = None,
    values: Mapping | None = None,
    constants: Sequence[sp.Symbol] | None = None,
    max_order: int = MAX_SAFE_ORDER,
    small: Sequence = (),
    progress: bool | None = None,
    _runner=None,
) -> ModifiedEquation:
    """Derive f_0, ..., f_order of the modified equation of `rule` on a concrete loss.

    Without a loss (and without params), returns the coordinate-free view
    (`CoordinateFreeModifiedEquation`, terms in grad E and its derivative
    tensors) for Runge-Kutta-type rules, GD included.

    Args:
        rule: an update rule (`bea.rules.GD()`, `bea.rules.RK4`, `bea.rules.rule(...)`, ...).
        order: p >= 0; f_0..f_p are returned (f_0 is the flow the rule is consistent with).
        loss: a SymPy expression in `params` (or `losses=[...]` for rules with several).
        params: the parameter symbols, in order; every other symbol stays symbolic.
        values: substitutions for hyperparameters or loss constants, e.g. {x: 1, y: 0.6}
            (floats are read as exact decimals).
        constants: if given, the only symbols besides `params` the losses may use.
        max_order: the highest order accepted; raise it deliberately for very high orders.
        small: coordinate-free view only: hyperparameters expanded jointly with h (SAM's independent
            rho, whose evaluation point moves by O(1)); the terms are then complete through total
            degree `order` in (h, rho). The concrete view is exact in them and takes no `small`.
        progress: a progress bar on stderr (tqdm): True shows it, False never; by default it shows
            when stderr is a terminal and the derivation takes over a second. Derivations estimated
            to take minutes warn first (`bea.SlowDerivationWarning`).

    The step expansion is computed exactly on truncated series and matched to
    the exact flow of f~ with the general correction recursion (Barrett &
    Dherin, arXiv:2009.11162, Appendix A, in its Lie-derivative form).
    """
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise InvalidOrderError(f"order must be a non-negative integer, got {order!r}")
    order = int(order)
    if order > max_order:
        raise InvalidOrderError(
            f"order {order} is above {max_order}: the number of terms grows combinatorially and the "
            "series is only asymptotic; pass max_order= to go further on purpose"
        )
    _check_rule(rule)
    if loss is None and losses is None and params is None and not values:
        from ._coordinate_free import coordinate_free

        warn_if_slow(rule, order, None)
        with Progress(progress, f"{rule_name(rule)} to order {order}, coordinate-free") as bar:
            watched = bar.watch(rule)
            result = coordinate_free(watched, order, small)
        return result if watched is rule else dataclasses.replace(result, rule=rule)
    if small:
        raise UnknownSymbolError("small= is for the coordinate-free view; on a loss the engine is exact in every hyperparameter")
    if (loss is None) == (losses is None):
        raise UnknownSymbolError("give exactly one of loss= or losses= (or neither, for the coordinate-free view)")
    losses = [loss] if loss is not None else list(losses)
    if params is None:
        raise UnknownSymbolError("params= is required: the parameter symbols, in order")
    params = _flatten_players(rule, params)
    rule, losses = _apply_values(rule, losses, values or {})
    problem = Problem.build(losses, params, reserved=rule.free_symbols, constants=constants)
    warn_if_slow(rule, order, len(problem.params))
    record: dict = {}
    with Progress(progress, f"{rule_name(rule)} to order {order} on {len(problem.params)} parameters") as bar:
        bar.stage("expanding the step")
        algebra, expansion = expand_step(bar.watch(rule), problem, order, record, _runner)
        bar.stage(f"corrections f_0..f_{order}")
        fields = _corrections_over_duration(algebra, expansion, order, getattr(rule, "duration", 1))

    def matrix(vector):
        return sp.ImmutableMatrix([algebra.to_expr(c) for c in vector])

    return ModifiedEquation(
        rule=rule,
        params=problem.params,
        losses=problem.losses,
        order=order,
        terms=tuple(matrix(f) for f in fields),
        expansion=tuple(matrix(d) for d in expansion),
        constants=problem.constants,
        slow_manifold=tuple(
            tuple(matrix(state.coeffs[k]) for k in range(order + 1)) for state in record.get("slow_manifold", ())
        ),
    )


def _check_rule(rule) -> None:
    from ..rules import Rule

    if not isinstance(rule, Rule):
        hint = " (wrap a step function with bea.rules.rule(step, **hyperparameters))" if callable(rule) else ""
        raise InvalidRuleError(
            f"rule must be a bea.rules rule such as bea.rules.GD() or bea.rules.rule(step), got {rule!r}{hint}"
        )


def finite_n_modified_equation(
    rule, n: int, *, order: int = 1, loss=None, losses=None, params=None, values=None, constants=None
) -> ModifiedEquation:
    """The piecewise field f_0^{(n)} + h f_1^{(n)} on [n h, (n+1) h] of a rule with memory started from zeros.

    The finite-n view of Cattaneo, Klusowski & Shigida (arXiv:2309.00079, Theorems
    3.1 and 4.2), derived from the rule's own update (see `bea.series._finite_n`);
    order is 0 or 1. For Adam it reproduces their Remark 3.2 (bias terms with
    beta^{n+1}, rho^{n+1}); as n grows it tends to `modified_equation`'s field.
    """
    from ._finite_n import finite_n_runner

    if order not in (0, 1):
        raise InvalidOrderError(f"the finite-n view is derived to first order (order 0 or 1), got {order!r}")
    if loss is None and losses is None:
        raise UnknownSymbolError("the finite-n view needs a concrete loss: loss=..., params=[...]")
    return modified_equation(rule, order, loss=loss, losses=losses, params=params, values=values,
                             constants=constants, _runner=finite_n_runner(n))


def _flatten_players(rule, params):
    """Accept params per player ([[phi1, phi2], [theta1]]) and check them against the rule's blocks."""
    params = list(params)
    if params and all(isinstance(p, (list, tuple)) for p in params):
        sizes = tuple(len(p) for p in params)
        players = getattr(rule, "players", None)
        if players is not None and tuple(players) != sizes:
            raise UnknownSymbolError(
                f"{rule.name} was built for players of sizes {tuple(players)} but params has groups of sizes "
                f"{sizes}; build it with players={sizes}"
            )
        params = [p for group in params for p in group]
    if hasattr(rule, "check_params"):
        try:
            rule.check_params(len(params))
        except ValueError as exc:
            raise UnknownSymbolError(str(exc)) from None
    return params


def _corrections_over_duration(algebra, expansion, order: int, duration):
    """f_0..f_order when one step follows the flow over duration * h (composite rules).

    With H = duration * h the step is theta + sum H^k d_k/duration^k; the
    corrections F_l in H give f_l = duration^l F_l in h.
    """
    duration = sp.sympify(duration)
    if duration == 1:
        return corrections_from_expansion(algebra, expansion, order)
    scaled = [tuple(c * sp.Rational(1, duration**k) for c in d) for k, d in enumerate(expansion, start=1)]
    fields = corrections_from_expansion(algebra, scaled, order)
    return [tuple(c * duration**l for c in f) for l, f in enumerate(fields)]


def _apply_values(rule, losses, values: Mapping):
    from ..rules import exact

    losses = [as_loss(loss, "the loss" if len(losses) == 1 else f"loss {k + 1}") for k, loss in enumerate(losses)]
    if not values:
        return rule, losses
    loss_symbols = {s.name: s for loss in losses for s in loss.free_symbols}
    rule_symbols = {s.name for s in rule.free_symbols} | {"h"}
    substitution, for_rule = {}, {}
    for key, value in values.items():
        name = key.name if isinstance(key, sp.Symbol) else str(key)
        if name == "h":
            raise UnknownSymbolError("h is the expansion variable and cannot be given a value here")
        known = False
        if name in loss_symbols:
            substitution[loss_symbols[name]] = exact(value, f"the value of {name}")
            known = True
        if name in rule_symbols:
            for_rule[name] = value
            known = True
        if not known:
            raise UnknownSymbolError(
                f"{name} is neither a symbol of the loss nor a hyperparameter of {rule.name} "
                f"(hyperparameters: {sorted(rule_symbols - {'h'})}, loss symbols: {sorted(loss_symbols)})"
            )
    if for_rule:
        rule = rule.bind(for_rule)
    return rule, [loss.xreplace(substitution) for loss in losses]
