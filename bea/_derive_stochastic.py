"""`stochastic_modified_equation`: the SDE whose weak one-step behaviour matches a stochastic rule.

    view       rule kind                              engine                        result
    concrete   stochastic rules (bea.rules.SGD,       engines.stochastic (exact     StochasticModifiedEquation
               bea.rules.Langevin, any                one-step moments + operator
               StochasticRule), loss(es)             logarithm)
    coordinate SGD, Langevin; no loss, losses,      engines.stochastic.           CoordinateFreeStochastic-
    -free      params                               _coordinate_free (networks)   ModifiedEquation
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy as sp

from ._derive import _apply_values as _shared_apply_values
from ._derive import check_order
from ._errors import InvalidRuleError, NoStochasticModifiedEquationError, UnknownSymbolError, UnsupportedError
from .engines.series._jet import STEP_SIZE
from .engines.series._problem import Problem
from .engines.stochastic import generator_series, increment_moments, one_step_operator
from .engines.stochastic._generator import joint_params
from .results._stochastic import StochasticModifiedEquation
from .rules import Rule
from .rules._stochastic import SGD, Langevin, StochasticRule

__all__ = ["stochastic_modified_equation"]

#: Orders above this need `max_order=` raised: the operator compositions grow quickly.
MAX_STOCHASTIC_ORDER = 6


def stochastic_modified_equation(
    rule,
    order: int,
    *,
    loss: sp.Expr | None = None,
    losses: Sequence[sp.Expr] | None = None,
    params: Sequence[sp.Symbol] | None = None,
    values: Mapping | None = None,
    allow_generator: bool = False,
    max_order: int = MAX_STOCHASTIC_ORDER,
) -> StochasticModifiedEquation:
    """Drift b_0..b_order and diffusion D_0..D_order of the SDE dX = b~ dt + D~^{1/2} dW matching `rule` weakly.

    For every smooth phi, E[phi(Phi_h(theta))] = exp(h L~) phi(theta) with the modified generator
    L~ = L_0 + h L_1 + ... = log(P_h)/h, P_h the rule's exact one-step expectation operator
    (`bea.engines.stochastic`). Where every L_l is b_l . grad + 1/2 D_l : hess, the SDE with
    b~ = b_0 + ... + h^order b_order, D~ = D_0 + ... + h^order D_order has local weak error
    O(h^{order+2}). For SGD (batch 1) order 1 is Li, Tai & E's second-order SME (JMLR 2019,
    arXiv:1811.01558): b_0 = -grad E, b_1 = -1/2 H grad E, D_0 = 0, D_1 = Sigma.

    Args:
        rule: a stochastic rule, `bea.rules.SGD(batch_size=B, replacement=...)` or
            `bea.rules.Langevin(temperature=T)`.
        order: p >= 0.
        loss / losses: SGD takes the per-example losses E_1..E_N (`losses=[...]`, E their mean;
            `loss=` is N = 1, plain GD); Langevin takes one loss. With none of loss, losses, params
            the result is coordinate-free (`CoordinateFreeStochasticModifiedEquation`: terms in E's
            derivative tensors and the per-example gradients' cumulants Sigma, kappa_3, ..., any
            dimension; SGD and Langevin only).
        params: the parameter symbols, in order.
        values: substitutions for hyperparameters (temperature) or loss constants.
        allow_generator: return the result even where no SDE exists (see below).

    Raises `NoStochasticModifiedEquationError` when some L_l, l <= order, has terms of
    differential order >= 3 (no Brownian SDE has them; for SGD the third cumulant of the
    per-example gradients enters at order 2); with allow_generator=True the result is returned,
    its `generator` holding every term and `obstruction` saying where the SDE view stops.
    """
    order = check_order(order, max_order, "operator compositions grow quickly")
    if not isinstance(rule, StochasticRule):
        hint = (
            "; for a deterministic rule use bea.modified_equation" if isinstance(rule, Rule) else ""
        )
        raise InvalidRuleError(
            f"rule must be a stochastic rule such as bea.rules.SGD() or bea.rules.Langevin(), got {rule!r}{hint}"
        )
    if loss is None and losses is None and params is None:
        return _coordinate_free(rule, order, values or {}, allow_generator)
    if (loss is None) == (losses is None):
        raise UnknownSymbolError(
            "give exactly one of loss= or losses= (per-example losses E_1..E_N for SGD) with params=, "
            "or none of loss=, losses=, params= for the coordinate-free view"
        )
    losses = [loss] if loss is not None else list(losses)
    if isinstance(rule, Langevin) and len(losses) != 1:
        raise UnknownSymbolError(
            f"langevin takes one loss, got {len(losses)}; pass loss= their mean (or use bea.rules.SGD for batches)"
        )
    if params is None:
        raise UnknownSymbolError("params= is required: the parameter symbols, in order")
    rule, losses = _apply_values(rule, losses, values or {})
    problem = Problem.build(losses, list(params), reserved=rule.free_symbols)
    moments = increment_moments(rule, problem.losses, problem.params, order)
    joint = joint_params(rule, problem.params, problem.losses)  # the parameters, then the rule's states (if any)
    generator = generator_series(one_step_operator(moments, order), joint)
    result = StochasticModifiedEquation.from_generator(
        rule, joint, problem.losses, order, generator, note=lambda l, k: _note(rule, l, k)
    )
    if result.obstruction is not None and not allow_generator:
        o = result.obstruction
        alpha, c = next(iter(sorted(o.terms.items(), key=lambda item: -sum(item[0]))))
        d = "*".join(f"d_{p}" + (f"^{k}" if k > 1 else "") for p, k in zip(joint, alpha) if k)
        raise NoStochasticModifiedEquationError(
            f"no SDE matches {rule.name} at order {o.order}: the modified generator has a differential-order-"
            f"{o.differential_order} term h^{o.order} ({sp.sstr(c)})*{d}"
            + (f" ({o.note})" if o.note else "")
            + f"; use order={o.order - 1}, or pass allow_generator=True for the generator series"
        )
    return result


def _coordinate_free(rule, order: int, values: Mapping, allow_generator: bool):
    """The coordinate-free view (`engines.stochastic._coordinate_free`): SGD and Langevin in any dimension."""
    from .engines.stochastic._coordinate_free import coordinate_free_generator
    from .engines.stochastic._network_notation import render
    from .results._stochastic_coordinate_free import CoordinateFreeStochasticModifiedEquation

    if values:
        names = {s.name for s in rule.free_symbols}
        unknown = sorted(str(getattr(k, "name", k)) for k in values if str(getattr(k, "name", k)) not in names)
        if unknown:
            raise UnknownSymbolError(
                f"{unknown[0]} is not a hyperparameter of {rule.name} (hyperparameters: {sorted(names)}); "
                "the coordinate-free view has no loss symbols to give values to"
            )
        rule = rule.bind(dict(values))
    if any(isinstance(v, sp.Basic) and v.has(STEP_SIZE) for v in vars(rule).values()):
        raise UnsupportedError(
            f"a hyperparameter of {rule.name} depends on the step size h, which the coordinate-free view takes as "
            "a constant; derive it on concrete losses (losses=..., params=...), where h is expanded"
        )
    generator = coordinate_free_generator(rule, order)
    result = CoordinateFreeStochasticModifiedEquation.from_generator(
        rule, order, generator,
        note=lambda l, k: (f"the cumulant kappa_{k} of the per-example gradients (over B^{k - 1} for a batch of B) "
                           f"enters at order {l}") if _note(rule, l, k) else "")
    if result.obstruction is not None and not allow_generator:
        o = result.obstruction
        network, c = max(o.terms.items(), key=lambda item: item[0].degree())
        raise NoStochasticModifiedEquationError(
            f"no SDE matches {rule.name} at order {o.order}: the modified generator has a differential-order-"
            f"{o.differential_order} term h^{o.order} ({sp.sstr(c)}) {render(network)} : ∇^{network.degree()}"
            + (f" ({o.note})" if o.note else "")
            + f"; use order={o.order - 1}, or pass allow_generator=True for the generator series"
        )
    return result


def _note(rule, order: int, k: int) -> str:
    """What the leading obstruction is, where it is known in closed form."""
    if isinstance(rule, SGD) and k == order + 1:
        # log E[exp(-h g . grad)] = sum_k kappa_k(g) (-h grad)^k / k!: the cumulants' top-order terms.
        return (f"the cumulant of order {k} of the batch gradient enters at order {order}: "
                f"the coefficient of d^alpha is (-1)^{k} kappa_alpha/alpha!")
    return ""


def _apply_values(rule, losses, values: Mapping):
    """`_derive._apply_values`, except that h is the expansion variable here and takes no value."""
    if any((key.name if isinstance(key, sp.Symbol) else str(key)) == "h" for key in values or {}):
        raise UnknownSymbolError("h is the expansion variable and cannot be given a value here")
    return _shared_apply_values(rule, losses, values or {})
