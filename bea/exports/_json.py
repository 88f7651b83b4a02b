"""JSON-serializable form of results."""

from __future__ import annotations

import sympy as sp

from ._cse import common_subexpressions

__all__ = ["stochastic_to_dict", "to_dict"]


def to_dict(me, cse: bool = False) -> dict:
    """{"rule", "params", "order", "terms", "symbols", ...}; every expression is a string that
    `sympy.sympify` parses back (terms[l][i] is component i of f_l).

    With `cse=True` the terms are written in shared subexpressions: "subexpressions" lists
    [name, expression] pairs in order (each may use the earlier names) and "terms" uses them;
    substitute them back from the last to the first to get the full terms.
    """
    data = {**_header(me), "terms": [[str(c) for c in term] for term in me.terms]}
    if getattr(me, "fields", ()):  # derived on vector fields: fields[k][i] is component i of field k
        data["fields"] = [[str(c) for c in field] for field in me.fields]
    if cse:
        flat = [c for term in me.terms for c in term]
        subexpressions, reduced = common_subexpressions(flat, taken=[*me.params, *me.symbols])
        n = len(me.params)
        data["subexpressions"] = [[str(name), str(value)] for name, value in subexpressions]
        data["terms"] = [[str(c) for c in reduced[l * n:(l + 1) * n]] for l in range(len(me.terms))]
    return data


def stochastic_to_dict(sme) -> dict:
    """{"rule", "view", "params", "losses", "order", "drift", "diffusion", "generator", "obstruction", ...}
    of a `StochasticModifiedEquation`; every expression is a string that `sympy.sympify` parses back.

    drift[l][i] is component i of b_l, diffusion[l][i][k] entry (i, k) of D_l; generator[l] lists the
    terms of L_l as {"multi_index": [k_1, ..., k_n], "coefficient": c} (c d_1^k_1 ... d_n^k_n), every
    differential order; obstruction is null, or the first order with terms of differential order >= 3.
    """
    def terms(op):  # by differential order, then d_p before d_q for p before q (as the result's text)
        ordered = sorted(op.items(), key=lambda item: (sum(item[0]), tuple(-k for k in item[0])))
        return [{"multi_index": list(alpha), "coefficient": str(c)} for alpha, c in ordered]

    n = len(sme.params)
    o = sme.obstruction
    header = _header(sme)
    return {
        "rule": header.pop("rule"),
        "view": "stochastic modified equation",
        **header,
        "drift": [[str(c) for c in b] for b in sme.drift],
        "diffusion": [[[str(d[i, k]) for k in range(n)] for i in range(n)] for d in sme.diffusion],
        "generator": [terms(op) for op in sme.generator],
        "obstruction": None if o is None else {
            "order": o.order, "differential_order": o.differential_order, "terms": terms(o.terms), "note": o.note,
        },
    }


def _header(result) -> dict:
    """The fields every concrete result shares: rule, params, losses, order, step size, hyperparameters, symbols."""
    return {
        "rule": result.rule.name,
        "params": [str(p) for p in result.params],
        "losses": [str(loss) for loss in result.losses],
        "order": result.order,
        "step_size": "h",
        "hyperparameters": {k: str(v) for k, v in result.rule.hyperparameters.items() if isinstance(v, sp.Basic)},
        "symbols": [str(s) for s in result.symbols],
    }
