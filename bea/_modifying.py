"""`modifying_equation`: inverse backward error analysis, the sibling of `modified_equation`.

Given a rule and a target flow, find the field f^ = f^_0 + h f^_1 + ... + h^p f^_p such that the rule,
run with f^ in place of f = -grad E, has the target as its modified equation through h^p (Chartier,
Hairer & Vilmart, Math. Comp. 76 (2007), doi:10.1090/S0025-5718-07-01967-9; BSeries.jl
`modifying_integrator`, kauri `preprocessed_integrator`). For optimizers this is drift cancellation:
GD on E^ = E - (h/4)|grad E|^2 + O(h^2) follows the gradient flow of E; for games it gives the
explicit regularizers that cancel the discretisation drift (Rosca, Wu, Dherin & Barrett, ICML 2021,
arXiv:2105.13922).

    view             rule kind                                method                              result
    coordinate-free  one-loss rules whose step is a B-series  substitution inverse of the rule's  CoordinateFreeModifyingEquation
                     in h f (GD, Runge-Kutta, EGR, heavy      B-series applied to the target
                     ball on its slow manifold, ...)          (`BSeries.modifying_integrator`)
    concrete         any rule, any loss(es), games            order by order on vector fields:    ModifyingEquation
                                                              `modified_equation(rule, j, field=...)`

The concrete recursion. Write F(f) for the modified field of the rule run on the field f and F_0 for
its limiting flow, a pointwise map of the field's values (GD: F_0(f) = f; heavy ball: f/(1 - beta);
simultaneous GD with rate ratio r: (f_phi, r f_theta)). With f^ = f^_0 + ... + h^{j-1} f^_{j-1} matching
the target through h^{j-1}, adding h^j g changes the h^j part of F by F_0'(f^_0) g and nothing below,
so g = -F_0'(f^_0)^{-1} (h^j part of F(f^) - target_j): one derivation per order, every step exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from ._derive import MAX_SAFE_ORDER, check_order, modified_equation
from ._errors import InvalidHyperparameterError, UnknownSymbolError, UnsupportedError
from .engines.series._jet import STEP_SIZE
from .engines.series._problem import h_parts
from .results._modifying import CoordinateFreeModifyingEquation, ModifyingEquation

__all__ = ["modifying_equation"]


def modifying_equation(
    rule,
    order: int,
    *,
    loss: sp.Expr | None = None,
    losses: Sequence[sp.Expr] | None = None,
    field: Sequence[sp.Expr] | None = None,
    params: Sequence | None = None,
    target=None,
    target_loss=None,
    values=None,
    constants=None,
    max_order: int = MAX_SAFE_ORDER,
    progress: bool | None = None,
):
    """The modifying field f^_0..f^_order of `rule`: run on f^ in place of -grad E, the rule follows `target`.

    Without loss/params: the coordinate-free view (`CoordinateFreeModifyingEquation`, terms in grad E and
    its derivative tensors) for one-loss rules whose step is a B-series in h f.

    Args:
        rule: an update rule (`bea.rules.GD()`, `bea.rules.HeavyBall()`, `bea.rules.SimultaneousGD()`, ...).
        order: p >= 0; f^_0..f^_p are returned. One step of the rule on f^ and the time-h flow of the
            target then differ by O(h^{p+2}).
        loss, losses, params, values, constants: as in `bea.modified_equation` (games take params per player).
        field: instead of a loss, a vector field [f_1, ..., f_n] (explicit Euler/Runge-Kutta on a general ODE,
            as BSeries.jl's `modifying_integrator(f, u, dt, ...)`); the rule's step sees grad := -f.
        target: the target flow as a column (one SymPy expression per parameter; it may contain `bea.h`
            polynomially). Default: the rule's own limiting flow f_0 (GD, Runge-Kutta, SGD steps: the gradient
            flow -grad E; a game: each player's gradient flow at its learning rate; heavy ball: -grad E/(1-beta))
            so that every O(h) drift is cancelled.
        target_loss: instead of `target`, the gradient flow of this loss: target = -grad target_loss. For
            "GD that implicitly minimizes E + lam |grad E|^2", pass target_loss = E + lam*|grad E|^2 (written
            out) and train on `modified_loss()`.

    Returns `ModifyingEquation` (see its `kind` for several losses) or `CoordinateFreeModifyingEquation`.
    """
    order = check_order(order, max_order, "the number of terms grows combinatorially and the series is only asymptotic")
    if loss is None and losses is None and field is None and params is None and not values:
        if target is not None or target_loss is not None:
            raise UnsupportedError("a target= or target_loss= is concrete: give loss= and params= as well; the "
                                   "coordinate-free view cancels every drift of the rule's own limiting flow")
        return _coordinate_free(rule, order)
    if target is not None and target_loss is not None:
        raise UnknownSymbolError("give target= (a field) or target_loss= (a loss), not both")
    if field is not None and getattr(rule, "n_losses", 1) != 1:
        raise UnsupportedError(f"{rule.name} takes {rule.n_losses} losses; modifying_equation takes one field=, so "
                               "give losses= (a game's stacked field and the SGD steps' shared correction are built "
                               "from them)")
    base = modified_equation(rule, 0, loss=loss, losses=losses, field=field, params=params, values=values,
                             constants=constants, max_order=max_order)
    rule, params, losses = base.rule, list(base.params), list(base.losses)
    n = len(params)
    if field is not None:
        kind, fields = "field", [list(base.fields[0])]
    else:
        kind, fields = _base_fields(rule, params, losses)
    limit_of, limit, jacobian = _limiting_map(rule, params, len(fields))
    if target is None and target_loss is None:
        goal = [sp.ImmutableMatrix(base.terms[0])]
        shift = sp.zeros(n, 1)
    else:
        goal = _target_terms(target, target_loss, params, order)
        shift = _initial_shift(limit_of, limit, jacobian, fields, goal[0], rule)
    goal += [sp.ImmutableMatrix.zeros(n, 1)] * (order + 1 - len(goal))
    at_base = {g: v for k, field in enumerate(fields) for g, v in zip(limit_of[k], list(sp.Matrix(field) + shift))}
    solve = _solver(jacobian.xreplace(at_base), rule)
    corrections = [shift]
    for j in range(1, order + 1):
        correction = sum((STEP_SIZE**i * c for i, c in enumerate(corrections)), sp.zeros(n, 1))
        trial = [[sp.expand(a + b) for a, b in zip(field, correction)] for field in fields]
        derived = _derived(rule, j, trial, params, progress, max_order)
        _check_matches(rule, derived, goal, j, j)
        defect = (derived.terms[j] - goal[j]).applyfunc(sp.expand)
        corrections.append(solve(-defect))
    # The recursion assumes the limiting flow is a pointwise map of the field (GD, momentum, games); a rule that
    # evaluates the field at theta + O(1) (SAM with an independent rho) breaks it. Check every order on the result.
    correction = sum((STEP_SIZE**i * c for i, c in enumerate(corrections)), sp.zeros(n, 1))
    final = [[sp.expand(a + b) for a, b in zip(field, correction)] for field in fields]
    _check_matches(rule, _derived(rule, order, final, params, progress, max_order), goal, order + 1, order)
    if kind == "shared":
        terms = corrections
    else:  # the given field's own h^l parts (a field= may contain h) belong to f^_l
        given = [h_parts(sp.expand(c), f"component {i + 1} of the field") for i, c in enumerate(fields[0])]
        terms = [sp.Matrix([p[l] if l < len(p) else 0 for p in given]) + c for l, c in enumerate(corrections)]
        if any(len(p) > order + 1 for p in given):
            raise UnsupportedError(f"the field has powers of h beyond h^{order}: derive to a higher order (at least "
                                   f"{max(len(p) for p in given) - 1}) or drop them")
    return ModifyingEquation(
        rule=rule, params=tuple(params), losses=tuple(losses), order=order,
        terms=tuple(sp.ImmutableMatrix(t) for t in terms),
        target=tuple(goal), kind=kind, constants=base.constants,
    )


def _derived(rule, order, fields, params, progress, max_order):
    """The modified equation of the rule run on bea's own trial fields (they may hold the hyperparameters)."""
    return modified_equation(rule, order, fields=fields, params=params, progress=progress, max_order=max_order,
                             _hyperparameters_in_fields=True)


def _check_matches(rule, derived, goal, upto: int, added: int) -> None:
    for i in range(upto):
        if not all(_is_zero(x) for x in derived.terms[i] - goal[i]):
            raise UnsupportedError(
                f"{rule.name}: the modifying field's order {i} does not hold once order {added} is in place: the rule's "
                "limiting flow is not a pointwise map of the field (it evaluates the field away from theta, as SAM "
                "with an independent rho does), which this order-by-order solution assumes. Tie such a radius to the "
                "step (rho = c*h), or use the coordinate-free view")


def _is_zero(x) -> bool:
    """An exact zero test: expand, then cancel (rational fields)."""
    x = sp.expand(x)
    return x == 0 or sp.cancel(sp.together(x)) == 0


def _divide(x, d):
    """x / d exactly: expanded for a number d, cancelled otherwise (a hyperparameter such as 1/(1 - beta))."""
    if d == 1:
        return x
    return sp.expand(x / d) if d.is_Number else sp.cancel(x / d)


def _base_fields(rule, params, losses):
    """("field" | "game" | "shared", the fields the rule's oracle returns: -grad E_k per loss, or for games
    the stacked field, player p's block from loss p, given to every loss)."""
    gradients = [[-sp.diff(loss, p) for p in params] for loss in losses]
    if len(losses) == 1:
        return "field", gradients
    players = getattr(rule, "players", None)
    if players is not None and len(players) == len(losses):
        stacked, start = [], 0
        for k, size in enumerate(players):
            stacked += gradients[k][start:start + size]
            start += size
        return "game", [stacked] * len(losses)
    return "shared", gradients


def _limiting_map(rule, params, n_fields):
    """F_0 on constant fields g_k (symbols): (the g_k, F_0(g), the Jacobian of F_0(g_1 + d, ..., g_K + d) in d at d = 0)."""
    n = len(params)
    symbols = [[sp.Dummy(f"g{k}_{i}") for i in range(n)] for k in range(n_fields)]
    limit = modified_equation(rule, 0, fields=symbols, params=params, _hyperparameters_in_fields=True).terms[0]
    jacobian = sp.zeros(n, n)
    for row in symbols:
        jacobian += sp.Matrix(limit).jacobian(row)
    return symbols, limit, jacobian.applyfunc(sp.cancel)


def _solver(jacobian, rule):
    """x -> J^{-1} x, exact (diagonal Jacobians, the common case, by division)."""
    n = jacobian.rows
    if jacobian.is_diagonal():
        diagonal = [jacobian[i, i] for i in range(n)]
        if any(d == 0 for d in diagonal):
            raise UnsupportedError(f"{rule.name}'s limiting flow does not depend on every component of the field "
                                   "(a zero learning rate?): no modifying field exists")
        return lambda x: sp.Matrix([_divide(x[i], diagonal[i]) for i in range(n)])
    if sp.cancel(jacobian.det()) == 0:
        raise UnsupportedError(f"{rule.name}'s limiting flow is singular in the field: no modifying field exists")
    inverse = jacobian.inv().applyfunc(sp.cancel)
    return lambda x: (inverse * x).applyfunc(sp.cancel)


def _target_terms(target, target_loss, params, order):
    """The target's h^l parts as columns, checked (shape, smoothness, polynomial in h)."""
    from .engines.series._problem import as_loss, h_parts

    n = len(params)
    if target_loss is not None:
        expr = as_loss(target_loss, "target_loss")
        expr = expr.xreplace({s: STEP_SIZE for s in expr.free_symbols if s.name == STEP_SIZE.name})
        column = [-sp.diff(expr, p) for p in params]
    else:
        if isinstance(target, (str, sp.Expr)) or not isinstance(target, (Sequence, sp.MatrixBase)):
            raise InvalidHyperparameterError(
                f"target must be a column with one component per parameter {params} (or use target_loss= for "
                f"the gradient flow of a loss), got {target!r}")
        column = list(target)
        if len(column) != n:
            raise InvalidHyperparameterError(
                f"target has {len(column)} component(s) but there are {n} parameters {params}: give one "
                "component per parameter, theta_i' = target_i(theta)")
        column = [as_loss(c, f"component {i + 1} of target") for i, c in enumerate(column)]
        column = [c.xreplace({s: STEP_SIZE for s in c.free_symbols if s.name == STEP_SIZE.name}) for c in column]
    parts = [h_parts(sp.expand(c), f"component {i + 1} of the target") for i, c in enumerate(column)]
    depth = min(max(len(p) for p in parts), order + 1)
    return [sp.ImmutableMatrix([p[l] if l < len(p) else 0 for p in parts]) for l in range(depth)]


def _initial_shift(limit_of, limit, jacobian, fields, goal0, rule):
    """d_0 with F_0(f + d_0) = target_0, for limiting flows linear in the field (else `UnsupportedError`)."""
    if any(s in jacobian.free_symbols for row in limit_of for s in row):
        raise UnsupportedError(
            f"{rule.name}'s limiting flow is nonlinear in the field (element-wise scaling): a target other than "
            "its own limiting flow needs a nonlinear solve; use the default target (target=None)")
    at_fields = {g: v for k, field in enumerate(fields) for g, v in zip(limit_of[k], field)}
    f0 = sp.Matrix(limit).xreplace(at_fields).applyfunc(sp.expand)  # F_0 linear: F_0(f + d) = F_0(f) + J d
    return _solver(jacobian, rule)((sp.Matrix(goal0) - f0).applyfunc(sp.expand))


def _coordinate_free(rule, order: int):
    """The substitution inverse of the rule's B-series (one step over h) applied to the flow of its own
    limiting field f_0 = c f over duration * h: a field h f^ = B(b^), b^(.) = 1."""
    from .engines.trees import _bseries_algebra as algebra
    from .engines.trees._trees import gamma, trees_up_to
    from .engines.trees._trees import order as tree_order
    from .results._bseries import BSeries

    try:
        step = BSeries.from_rule(rule, order + 1)
    except UnsupportedError as error:
        raise UnsupportedError(f"no coordinate-free modifying field: {error}. Give loss= and params= for the "
                               "concrete view") from None
    lead = step[()]
    target = {t: sp.expand(lead ** tree_order(t) / gamma(t)) for t in trees_up_to(order + 1)}
    coefficients = algebra.modifying_field(step.to_dict(), order + 1, target)
    field = {t: [sp.S.Zero] * (tree_order(t) - 1) + [c] for t, c in coefficients.items() if c != 0}
    return CoordinateFreeModifyingEquation.from_bseries(rule, order, field, [])
