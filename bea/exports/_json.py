"""JSON-serializable form of results."""

from __future__ import annotations

import sympy as sp

__all__ = ["to_dict"]


def to_dict(me) -> dict:
    """{"rule", "params", "order", "terms", "symbols", ...}; every expression is a string that
    `sympy.sympify` parses back (terms[l][i] is component i of f_l)."""
    return {
        "rule": me.rule.name,
        "params": [str(p) for p in me.params],
        "losses": [str(loss) for loss in me.losses],
        "order": me.order,
        "step_size": "h",
        "hyperparameters": {k: str(v) for k, v in me.rule.hyperparameters.items() if isinstance(v, sp.Basic)},
        "symbols": [str(s) for s in me.symbols],
        "terms": [[str(c) for c in term] for term in me.terms],
    }
