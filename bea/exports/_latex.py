"""LaTeX for modified equations (concrete view).

Printing goes through SymPy's `LatexPrinter` in strict mode: an object with no
LaTeX form raises instead of producing partial output.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["latex"]


def _component(expr: sp.Expr) -> str:
    return sp.latex(expr, order="grlex")


def latex(me) -> str:
    """The modified equation as one display formula, terms grouped by power of h.

    dot(theta) = f_0 + h f_1 + h^2 f_2 + ..., each f_l a column vector with exact fractions.
    """
    theta = r"\begin{pmatrix} " + r" \\ ".join(sp.latex(p) for p in me.params) + r" \end{pmatrix}"
    parts = []
    for l, term in enumerate(me.terms):
        column = r"\begin{pmatrix} " + r" \\ ".join(_component(c) for c in term) + r" \end{pmatrix}"
        power = "" if l == 0 else ("h" if l == 1 else f"h^{{{l}}}")
        parts.append(f"{power} {column}".strip())
    body = " \\\\\n  &+ ".join(parts)
    return (
        "\\begin{aligned}\n"
        f"  \\frac{{d}}{{dt}} {theta} &= {body}\n"
        f"  + \\mathcal{{O}}(h^{{{me.order + 1}}})\n"
        "\\end{aligned}"
    )
