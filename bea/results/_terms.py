"""Shared pieces of coordinate-free terms: coefficients in readable form, and G(t) on a concrete loss."""

from __future__ import annotations

import itertools

import sympy as sp

__all__ = ["contract_on_loss", "signed_latex", "signed_text", "tidy"]


def contract_on_loss(component, params, children) -> sp.Expr:
    """sum_{j_1..j_m} d_{j_1}...d_{j_m} component * child_1[j_1] ... child_m[j_m]: one entry of
    nabla^{m+1} E[children] on a concrete loss (component = dE/dparam_i)."""
    total = sp.S.Zero
    for indices in itertools.product(range(len(params)), repeat=len(children)):
        term = component
        for j in indices:
            term = sp.diff(term, params[j])
        for child, j in zip(children, indices):
            term *= child[j]
        total += term
    return total


def tidy(c) -> sp.Expr:
    """A coefficient in its readable canonical form: factored if a rational function of the
    hyperparameters ((beta + 1)/(2 (beta - 1)^3)), expanded with common factors pulled out otherwise."""
    c = sp.sympify(c)
    return sp.factor(sp.cancel(c)) if c.has(sp.Pow) and not c.is_polynomial() else sp.factor_terms(sp.expand(c))


def signed_text(c) -> str:
    """'- 1/2 ', '+ (c + 1/2) ', '+ ': a coefficient as the prefix of a term in plain text."""
    negative = c.is_Number and c < 0 or (not c.is_Number and c.could_extract_minus_sign())
    size = -c if negative else c
    magnitude = "" if size == 1 else (f"({size}) " if size.is_Add else f"{size} ")
    return ("- " if negative else "+ ") + magnitude


def signed_latex(c) -> str:
    negative = c.is_Number and c < 0 or (not c.is_Number and c.could_extract_minus_sign())
    size = -c if negative else c
    body = "" if size == 1 else (rf"\left({sp.latex(size)}\right) " if size.is_Add else f"{sp.latex(size)}\\, ")
    return ("- " if negative else "+ ") + body
