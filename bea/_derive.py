"""`modified_equation`: the one dispatch from a rule and a view to an engine and a result.

    view             rule kind                                        engine                        result
    concrete         any rule, any loss(es)                           engines.series (step expansion ModifiedEquation
                                                                      + correction recursion; slow
                                                                      manifold for rules with memory)
    concrete         any rule on a vector field (field=[f_1, ...]):   engines.series with the       ModifiedEquation
                     grad := -f, grad.hvp := -f'                      FieldOracle                   (.fields set)
    coordinate-free  GD and Runge-Kutta maps with numeric tableaus    engines.trees._trees          CoordinateFreeModifiedEquation
    coordinate-free  grad, grad.hvp, blocks: one loss or several      engines.trees._bseries_step   CoordinateFreeModifiedEquation
    coordinate-free  element-wise ops, sqrt, dot/norm (one loss)      engines.elementwise           ElementwiseModifiedEquation
    coordinate-free  small=[...]: joint expansion in h and rho        any of the above, tied to h   CoordinateFreeModifiedEquation

Whether a user's step is a B-series is only known by running it: the B-series engine raises
`NotABSeries` on an operation that has none (element-wise products, roots, inner products), and the
element-wise engine takes over; any other error is the user's and is reported as it is.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence

import sympy as sp

from ._cache import built_in, memoize
from ._errors import InvalidOrderError, InvalidRuleError, UnknownSymbolError, UnsupportedError
from ._progress import Progress, rule_name, warn_if_slow
from .engines.elementwise._elementwise import elementwise_modified_field
from .engines.series._correction import corrections_from_expansion
from .engines.series._expand import expand_step
from .engines.series._finite_n import finite_n_runner
from .engines.series._jet import STEP_SIZE
from .engines.series._problem import Problem, as_loss
from .engines.trees._bseries_step import NotABSeries, bseries_modified_field
from .engines.trees._trees import tree_coefficients
from .results._coordinate_free import CoordinateFreeModifiedEquation
from .results._elementwise import ElementwiseModifiedEquation, present
from .results._modified_equation import ModifiedEquation
from .rules import GD, Rule, RungeKutta, exact

__all__ = ["MAX_SAFE_ORDER", "ModifiedEquation", "finite_n_modified_equation", "modified_equation"]

#: Orders above this need `max_order=` raised explicitly: terms grow combinatorially.
MAX_SAFE_ORDER = 12


@memoize(maxsize=32, ignore=("progress",), cacheable=lambda arguments: built_in(arguments["rule"]))
def modified_equation(
    rule,
    order: int,
    *,
    loss: sp.Expr | None = None,
    losses: Sequence[sp.Expr] | None = None,
    field: Sequence[sp.Expr] | None = None,
    fields: Sequence[Sequence[sp.Expr]] | None = None,
    params: Sequence[sp.Symbol] | None = None,
    values: Mapping | None = None,
    constants: Sequence[sp.Symbol] | None = None,
    max_order: int = MAX_SAFE_ORDER,
    small: Sequence = (),
    progress: bool | None = None,
    _runner=None,
    _hyperparameters_in_fields=None,
) -> ModifiedEquation:
    """Derive f_0, ..., f_order of the modified equation of `rule` on a concrete loss.

    Without a loss (and without params), returns the coordinate-free view
    (`CoordinateFreeModifiedEquation`, terms in grad E and its derivative
    tensors) for Runge-Kutta-type rules, GD included.

    Args:
        rule: an update rule (`bea.rules.GD()`, `bea.rules.RK4`, `bea.rules.rule(...)`, ...).
        order: p >= 0; f_0..f_p are returned (f_0 is the flow the rule is consistent with).
        loss: a SymPy expression in `params` (or `losses=[...]` for rules with several).
        field: instead of a loss, a vector field [f_1, ..., f_n] (one SymPy expression per parameter):
            the rule is applied to theta' = f(theta), its step seeing grad(x) = -f(x) and
            grad.hvp(x, v) = -f'(x) v (GD is explicit Euler on f, a Runge-Kutta map its method on f).
            Components may contain the step size `bea.h` polynomially, f = f^0 + h f^1 + ...
            (modifying integrators). `fields=[[...], [...]]` gives one field per loss of a rule
            with several. A rule that evaluates the loss itself (grad.value) is refused.
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
    order = check_order(order, max_order, "the number of terms grows combinatorially and the series is only asymptotic")
    _check_rule(rule)
    given = [name for name, x in (("loss", loss), ("losses", losses), ("field", field), ("fields", fields)) if x is not None]
    if len(given) > 1:
        raise UnknownSymbolError(f"give only one of loss=, losses=, field= or fields= (got {', '.join(given)})")
    if field is not None or fields is not None:
        return _on_fields(rule, order, [field] if field is not None else list(fields), params, values, constants,
                          small, progress, _runner, _hyperparameters_in_fields)
    if loss is None and losses is None and params is None and not values:
        warn_if_slow(rule, order, None)
        with Progress(progress, f"{rule_name(rule)} to order {order}, coordinate-free") as bar:
            watched = bar.watch(rule)
            result = _coordinate_free(watched, order, small)
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
    return _concrete(rule, order, problem, progress, _runner)


def _on_fields(rule, order, fields, params, values, constants, small, progress, _runner,
               hyperparameters_in_fields=None) -> ModifiedEquation:
    """The concrete view on vector fields (`field=` / `fields=`)."""
    if small:
        raise UnknownSymbolError("small= is for the coordinate-free view; on a field the engine is exact in every hyperparameter")
    if params is None:
        raise UnknownSymbolError("params= is required with field=: the parameter symbols, one per component, in order")
    params = _flatten_players(rule, params)
    rule, fields = _apply_values_to_fields(rule, fields, values or {})
    # A user's field may not name the rule's hyperparameters (the symbol would mean two things); a modifying
    # field built by bea from the rule's own results (1/(1 - beta)) legitimately contains them.
    reserved = () if hyperparameters_in_fields else rule.free_symbols
    problem = Problem.build_fields(fields, params, reserved=reserved, constants=constants)
    return _concrete(rule, order, problem, progress, _runner)


def _concrete(rule, order: int, problem: Problem, progress, _runner) -> ModifiedEquation:
    """Expand the step on the problem's losses (or fields) and match it to a flow."""
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
        fields=problem.fields,
        slow_manifold=tuple(
            tuple(matrix(state.coeffs[k]) for k in range(order + 1)) for state in record.get("slow_manifold", ())
        ),
    )


def _coordinate_free(rule, order: int, small=()):
    """The coordinate-free view: the table in this module's docstring."""
    if small:
        tied, back, symbols = _tie_to_step(rule, small)
        return _coordinate_free(rule.bind(tied), order).regrouped(rule, symbols, back)
    if isinstance(rule, (GD, RungeKutta)) and not rule.free_symbols:
        return CoordinateFreeModifiedEquation.from_tree_coefficients(rule, order, tree_coefficients(rule, order))
    states: list = []
    try:
        field = bseries_modified_field(rule, order, states)
    except NotABSeries:  # element-wise products, roots, inner products
        if rule.n_losses != 1:
            raise UnsupportedError(
                f"{rule.name} combines element-wise operations with several losses; derive it on concrete losses"
            ) from None
        fields, manifold = elementwise_modified_field(rule, order)
        return ElementwiseModifiedEquation(rule, order, tuple(present(f) for f in fields), tuple(manifold))
    return CoordinateFreeModifiedEquation.from_bseries(rule, order, field, states)


def _tie_to_step(rule, small):
    """Each hyperparameter s in `small` tied to the step, s = c_s h: ({s: c_s h}, {c_s: s/h}, symbols)."""
    by_name = {str(x): x for x in rule.free_symbols}
    symbols = []
    for x in small:
        name = str(x)
        if name not in by_name:
            raise UnknownSymbolError(f"small= names {name}, which is not a symbol of {rule.name} ({sorted(by_name)})")
        symbols.append(by_name[name])
    tied = {x: sp.Dummy(f"c_{x}") * STEP_SIZE for x in symbols}
    back = {list(v.free_symbols - {STEP_SIZE})[0]: x / STEP_SIZE for x, v in tied.items()}
    return tied, back, tuple(symbols)


def check_order(order, max_order: int, why: str) -> int:
    """order as an int, or an `InvalidOrderError`: not a non-negative integer, or above max_order (`why`)."""
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
        raise InvalidOrderError(f"order must be a non-negative integer, got {order!r}")
    if order > max_order:
        raise InvalidOrderError(f"order {order} is above {max_order}: {why}; pass max_order= to go further on purpose")
    return int(order)


def _check_rule(rule) -> None:
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
    3.1 and 4.2), derived from the rule's own update (see `bea.engines.series._finite_n`);
    order is 0 or 1. For Adam it reproduces their Remark 3.2 (bias terms with
    beta^{n+1}, rho^{n+1}); as n grows it tends to `modified_equation`'s field.
    """
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


def _apply_values_to_fields(rule, fields, values: Mapping):
    """`_apply_values` on every component of every field (a field's components are checked as expressions)."""
    shaped = []
    for k, field in enumerate(fields):
        label = "the field" if len(fields) == 1 else f"field {k + 1}"
        if isinstance(field, (str, sp.Basic)) or not isinstance(field, Sequence | sp.MatrixBase):
            raise UnknownSymbolError(
                f"{label} must be a list of components, one per parameter (e.g. field=[u*(v - 2), v*(1 - u)]), "
                f"got {field!r}"
            )
        shaped.append([as_loss(c, f"component {i + 1} of {label}") for i, c in enumerate(field)])
    if not values:
        return rule, shaped
    flat = [c for field in shaped for c in field]
    rule, flat = _apply_values(rule, flat, values, what="the field")
    out, start = [], 0
    for field in shaped:
        out.append(flat[start:start + len(field)])
        start += len(field)
    return rule, out


def _apply_values(rule, losses, values: Mapping, what: str = "the loss"):
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
                f"{name} is neither a symbol of {what} nor a hyperparameter of {rule.name} "
                f"(hyperparameters: {sorted(rule_symbols - {'h'})}, symbols of {what}: {sorted(loss_symbols)})"
            )
    if for_rule:
        rule = rule.bind(for_rule)
    return rule, [loss.xreplace(substitution) for loss in losses]
