"""Modified losses: when the truncated modified field is a gradient, its potential.

A field f is a gradient field, f = -grad U, on a simply connected domain iff its
Jacobian is symmetric (Poincare's lemma). For gradient descent f_0 and f_1 are
gradients, giving E~ = E + (h/4)|grad E|^2 (Barrett & Dherin, ICLR 2021,
arXiv:2009.11162, Thm 3.1); f_2 is not in general, so no modified loss exists
at second order.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .._errors import BeaError

__all__ = ["ModifiedLoss", "NoModifiedLossError", "is_gradient_field", "modified_loss"]


class NoModifiedLossError(BeaError):
    """The modified field is not a gradient at the requested order."""


def _curl(field: sp.MatrixBase, params) -> list[tuple[sp.Symbol, sp.Symbol, sp.Expr]]:
    """Nonzero antisymmetric parts d f_i/d theta_j - d f_j/d theta_i (targeted expand/cancel, no simplify)."""
    out = []
    for i in range(len(params)):
        for j in range(i + 1, len(params)):
            asym = sp.expand(sp.diff(field[i], params[j]) - sp.diff(field[j], params[i]))
            if asym != 0:
                asym = sp.cancel(sp.together(asym))
            if asym != 0:
                out.append((params[i], params[j], asym))
    return out


def is_gradient_field(field: sp.MatrixBase, params) -> bool:
    """True iff the Jacobian of `field` with respect to `params` is symmetric."""
    return not _curl(field, params)


def _potential(field: sp.MatrixBase, params) -> sp.Expr:
    """U with grad U = field, by integrating one coordinate at a time."""
    potential = sp.S.Zero
    for k, p in enumerate(params):
        residual = sp.expand(field[k] - sp.diff(potential, p))
        if residual == 0:
            continue
        primitive = sp.integrate(residual, p)
        if primitive.has(sp.Integral):
            raise NoModifiedLossError(f"SymPy could not integrate {residual} in {p}; the potential has no closed form here")
        potential += primitive
    return sp.expand(potential)


@dataclass(frozen=True)
class ModifiedLoss:
    """E~ = U_0 + h U_1 + ... + h^p U_p with f_l = -grad U_l (each U_l up to an additive constant)."""

    params: tuple
    terms: tuple

    @property
    def expr(self) -> sp.Expr:
        h = sp.Symbol("h", positive=True)
        return sum((h**l * u for l, u in enumerate(self.terms)), sp.S.Zero)

    def to_jax(self, *, allow_float32: bool = False):
        """E~ as a jitted JAX function `loss(theta, h, **symbols) -> scalar` (see `ModifiedEquation.to_jax`)."""
        from ..lowering import lower_expressions

        return lower_expressions([self.expr], self.params, scalar=True, description="modified loss E~",
                                 allow_float32=allow_float32)

    def latex(self) -> str:
        def power(l):
            return "" if l == 0 else ("h " if l == 1 else f"h^{{{l}}} ")

        return r"\tilde{E} = " + " + ".join(
            sp.latex(u) if l == 0 else rf"{power(l)}\left({sp.latex(u)}\right)" for l, u in enumerate(self.terms)
        )


def modified_loss(me, order: int | None = None) -> ModifiedLoss:
    """The potential of f_0 + h f_1 + ... + h^order f_order, or `NoModifiedLossError` naming the failing order.

    U_0 is the rule's loss itself when f_0 = -grad E; other U_l are fixed up to constants.
    """
    order = me.order if order is None else order
    if not 0 <= order <= me.order:
        raise NoModifiedLossError(f"order {order} is outside 0..{me.order} derived")
    params = list(me.params)
    terms = []
    for l in range(order + 1):
        field = -me.terms[l]
        curl = _curl(field, params)
        if curl:
            i, j, asym = curl[0]
            raise NoModifiedLossError(
                f"no modified loss at order {l}: f_{l} is not a gradient field (d f_{l}[{i}]/d{j} - "
                f"d f_{l}[{j}]/d{i} = {asym} != 0). "
                + (
                    f"Truncate at order {l - 1} for a modified loss, or use the field."
                    if l
                    else "Even the limiting flow is not a gradient flow (a game, a rotation): use the field; "
                    "for games, seed 003's per-player losses depend on the initial point."
                )
            )
        if l == 0 and len(me.losses) == 1:
            loss = me.losses[0]
            if sp.expand(sp.Matrix([loss.diff(p) for p in params]) - field) == sp.zeros(len(params), 1):
                terms.append(loss)
                continue
        terms.append(_potential(field, params))
    return ModifiedLoss(tuple(me.params), tuple(terms))
