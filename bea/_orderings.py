"""The modified equation averaged over the orderings of a rule's losses (random reshuffling)."""

from __future__ import annotations

from itertools import permutations
from math import factorial

import sympy as sp

from ._derive import modified_equation
from ._errors import UnknownSymbolError
from .results._modified_equation import ModifiedEquation

__all__ = ["average_over_orderings"]

_MAX_LOSSES = 6  # 720 orderings


def average_over_orderings(rule, order: int, *, losses, params, **options) -> ModifiedEquation:
    """The mean of f_0..f_order over all orderings of `losses` (each ordering equally likely).

    For `SGDSteps(n)` this is the modified equation of SGD with random
    reshuffling in expectation over the epoch's shuffles; at first order it is
    -grad of E + (h/(4n)) sum_k |grad E_k|^2 (Smith et al., "On the origin of
    implicit regularization in stochastic gradient descent", ICLR 2021,
    arXiv:2101.12176; seed 003 eq. 8), here computed from the rule itself.
    """
    losses = list(losses)
    if len(losses) < 2:
        raise UnknownSymbolError("averaging over orderings needs at least two losses")
    if len(losses) > _MAX_LOSSES:
        raise UnknownSymbolError(f"{factorial(len(losses))} orderings of {len(losses)} losses is too many to derive")
    results = [
        modified_equation(rule, order, losses=[losses[i] for i in perm], params=params, **options)
        for perm in permutations(range(len(losses)))
    ]
    count = len(results)
    terms = tuple(
        sp.ImmutableMatrix(sum((r.terms[l] for r in results[1:]), sp.Matrix(results[0].terms[l])).applyfunc(
            lambda c: sp.expand(c / count)
        ))
        for l in range(order + 1)
    )
    first = results[0]
    return ModifiedEquation(
        rule=rule, params=first.params, losses=tuple(losses), order=order, terms=terms,
        expansion=(), constants=first.constants,
    )
