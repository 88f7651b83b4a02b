"""Common-subexpression form of derived terms: shared pieces named once, then the terms in them.

Concrete terms are printed fully expanded, which for a few parameters and a few orders
runs to hundreds of kilobytes; `sympy.cse` names the repeated subexpressions (c0, c1, ...,
each may use the earlier ones) and writes the terms in those names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import sympy as sp

__all__ = ["common_subexpressions", "expand_subexpressions"]


def _fresh_names(prefix: str, taken: set[str]) -> Iterator[sp.Symbol]:
    """c0, c1, ... skipping names already used (matched by name: assumptions differ between equal names)."""
    k = 0
    while True:
        name = f"{prefix}{k}"
        if name not in taken:
            yield sp.Symbol(name)
        k += 1


def common_subexpressions(
    expressions: Sequence[sp.Expr], taken: Iterable = (), prefix: str = "c"
) -> tuple[list[tuple[sp.Symbol, sp.Expr]], list[sp.Expr]]:
    """(subexpressions, reduced): `reduced[i]` is `expressions[i]` written with the names of
    `subexpressions`, a list of (name, expression) in order of definition.

    `taken` holds symbols (or names) the expressions already use, so that no new name
    collides with them.
    """
    taken_names = {str(s) for s in taken}
    for e in expressions:
        taken_names |= {s.name for s in sp.sympify(e).free_symbols}
    replacements, reduced = sp.cse(list(expressions), symbols=_fresh_names(prefix, taken_names), order="none")
    return list(replacements), list(reduced)


def expand_subexpressions(subexpressions: Sequence[tuple], expression: sp.Expr) -> sp.Expr:
    """Undo `common_subexpressions` for one reduced expression (substitute the last name first)."""
    for name, value in reversed(list(subexpressions)):
        expression = expression.xreplace({name: value})
    return expression
