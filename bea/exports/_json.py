"""JSON-serializable form of results."""

from __future__ import annotations

import sympy as sp

from ._cse import common_subexpressions

__all__ = ["to_dict"]


def to_dict(me, cse: bool = False) -> dict:
    """{"rule", "params", "order", "terms", "symbols", ...}; every expression is a string that
    `sympy.sympify` parses back (terms[l][i] is component i of f_l).

    With `cse=True` the terms are written in shared subexpressions: "subexpressions" lists
    [name, expression] pairs in order (each may use the earlier names) and "terms" uses them;
    substitute them back from the last to the first to get the full terms.
    """
    data = {
        "rule": me.rule.name,
        "params": [str(p) for p in me.params],
        "losses": [str(loss) for loss in me.losses],
        "order": me.order,
        "step_size": "h",
        "hyperparameters": {k: str(v) for k, v in me.rule.hyperparameters.items() if isinstance(v, sp.Basic)},
        "symbols": [str(s) for s in me.symbols],
        "terms": [[str(c) for c in term] for term in me.terms],
    }
    if cse:
        flat = [c for term in me.terms for c in term]
        subexpressions, reduced = common_subexpressions(flat, taken=[*me.params, *me.symbols])
        n = len(me.params)
        data["subexpressions"] = [[str(name), str(value)] for name, value in subexpressions]
        data["terms"] = [[str(c) for c in reduced[l * n:(l + 1) * n]] for l in range(len(me.terms))]
    return data
