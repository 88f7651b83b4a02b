"""Expansion of one step of a rule in powers of h: Phi_h(theta) = theta + sum_k h^k d_k(theta)."""

from __future__ import annotations

import sympy as sp

from ..._errors import InconsistentRuleError, UnknownSymbolError
from ._algebra import Algebra, DifferentialAlgebra, ExpressionAlgebra, NotPolynomialError, PolynomialAlgebra
from ._field_oracle import FieldOracle
from ._jet import ScalarSeries, VectorSeries
from ._oracle import SymbolicOracle
from ._problem import Problem

__all__ = ["expand_step"]

_MAX_GUARD = 8
_SEED_RETRIES = 8  # retries with the atoms met so far (SAM, square roots on a slow manifold)


def expand_step(
    rule, problem: Problem, order: int, record: dict | None = None, runner=None
) -> tuple[Algebra, list[tuple]]:
    """The algebra used and d_1, ..., d_{order+1} of the rule's step on the problem's losses (or vector
    fields: the step then sees grad = -f, see `FieldOracle`).

    Tries exact polynomial arithmetic first, then polynomials in the loss's
    transcendental atoms (exp, log, tanh, 1/v, ...), and falls back to general
    expressions when a quantity fits neither.
    """
    if rule.n_losses != problem.n_inputs:
        what = "field(s)" if problem.fields else "loss(es)"
        hint = " (fields=[[...], [...]]: one field per loss the rule takes)" if problem.fields else ""
        raise UnknownSymbolError(
            f"rule {rule.name} takes {rule.n_losses} loss(es), but {problem.n_inputs} {what} were given{hint}"
        )
    constants = tuple(problem.constants) + tuple(sorted(rule.free_symbols - set(problem.constants), key=str))
    inputs = list(problem.losses) + [p for row in problem.parts for comp in row for p in comp]
    seeds = inputs + [v for v in rule.hyperparameters.values() if isinstance(v, sp.Expr)]
    rational = False  # coefficients in QQ(constants) once the rule divides by one (1 - beta)

    def make(kind: str) -> Algebra:
        if kind == "polynomial":
            return PolynomialAlgebra(problem.params, constants, rational=rational)
        if kind == "differential":
            return DifferentialAlgebra(problem.params, constants, seeds=seeds, rational=rational)
        return ExpressionAlgebra(problem.params, constants)

    # A step that evaluates the loss away from theta (SAM), or takes square roots, meets new
    # atoms there: retry with them while there are new ones.
    kinds = ["polynomial"] + ["differential"] * _SEED_RETRIES + ["expression"]
    i = 0
    while i < len(kinds):
        try:
            algebra = make(kinds[i])
            if problem.fields:
                parts = [[[algebra.from_expr(p) for p in comp] for comp in row] for row in problem.parts]
                oracle = _oracle(FieldOracle, algebra, parts)
            else:
                oracle = _oracle(SymbolicOracle, algebra, [algebra.from_expr(loss) for loss in problem.losses])
            return algebra, _expand(rule, algebra, oracle, order + 1, record, runner)
        except NotPolynomialError as exc:
            new = [e for e in exc.seeds if e not in seeds]
            seeds.extend(new)
            if exc.rational and not rational:
                rational = True  # same algebra again, over the fraction field
            elif kinds[i] == "differential" and not new:
                i = len(kinds) - 1  # no new atoms: only general expressions can help
            else:
                i += 1
    raise AssertionError("the expression algebra accepts every expression")  # pragma: no cover


def _oracle(kind, algebra: Algebra, inputs: list):
    """A factory of the oracle at a truncation: `kind(algebra, inputs, truncation)`."""
    return lambda truncation: kind(algebra, inputs, truncation)


def _expand(rule, algebra: Algebra, oracle, needed: int, record=None, runner=None) -> list[tuple]:
    truncation = needed
    while True:
        result = _run_step(rule, algebra, oracle, truncation, record, runner)
        if result.valid > needed:
            break
        if truncation - needed >= _MAX_GUARD:
            raise InconsistentRuleError(
                f"the step of {rule.name} divides by powers of h too high to expand; check the rule"
            )
        truncation += needed + 1 - result.valid
    _check_consistent(rule, algebra, result)
    return [result.coeffs[k] for k in range(1, needed + 1)]


def _run_step(rule, algebra: Algebra, make_oracle, truncation: int, record=None, runner=None) -> VectorSeries:
    theta = VectorSeries.constant(algebra, algebra.identity, truncation)
    h = ScalarSeries(algebra, [algebra.zero, algebra.from_expr(1)] + [algebra.zero] * (truncation - 1))
    oracle = make_oracle(truncation)
    if runner is not None:
        result = runner(rule, theta, oracle, h)
    elif hasattr(rule, "decays"):  # a rule with memory: the step on its slow manifold
        from ..slow_manifold._slow_manifold import slow_manifold_step

        result, state = slow_manifold_step(rule, theta, oracle, h)
        if record is not None:
            record["slow_manifold"] = state
    else:
        result = rule.step(theta, oracle, h)
    if not isinstance(result, VectorSeries):
        raise InconsistentRuleError(
            f"the step of {rule.name} returned {type(result).__name__}, not the updated parameter vector; "
            "it must return an expression built from theta, grad(...) and h"
        )
    return result


def _check_consistent(rule, algebra: Algebra, result: VectorSeries) -> None:
    at_zero = result.coeffs[0]
    if at_zero != algebra.identity:
        offset = [sp.expand(algebra.to_expr(a) - p) for a, p in zip(at_zero, algebra.params)]
        raise InconsistentRuleError(
            f"the step of {rule.name} is not theta + O(h): at h = 0 it moves theta by {offset}. "
            "A rule consistent with a flow must reduce to the identity as the step size goes to 0 "
            "(scale its update by h)."
        )
