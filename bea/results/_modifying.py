"""Modifying equations (inverse backward error analysis): the field f^ a rule must be run on to follow a target flow.

Backward error analysis asks which flow a rule follows; the inverse question asks which field
f^ = f^_0 + h f^_1 + ... + h^p f^_p the rule must be run on, in place of f = -grad E, so that its
modified equation is a chosen target flow through h^p (Chartier, Hairer & Vilmart, "Numerical
integrators based on modified differential equations", Math. Comp. 76 (2007),
doi:10.1090/S0025-5718-07-01967-9; BSeries.jl `modifying_integrator`, kauri `preprocessed_integrator`).
For gradient descent f^ = -grad E^ with E^ = E - (h/4)|grad E|^2 + O(h^2): GD on E^ follows the
gradient flow of E (drift cancellation).
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from ._coordinate_free import CoordinateFreeModifiedEquation
from ._modified_equation import ColumnSeries

__all__ = ["CoordinateFreeModifyingEquation", "ModifyingEquation"]


@dataclasses.dataclass(frozen=True)
class ModifyingEquation(ColumnSeries):
    """The modifying field f^ = f^_0 + h f^_1 + ... + h^p f^_p of a rule on concrete losses, exact.

    Run on f^ in place of f = -grad E, the rule's modified equation is `target` through h^p, so one
    step of the rule on f^ and the time-h flow of the target differ by O(h^{p+2}).

    `terms[l]` is f^_l as a SymPy column. `kind` says what the columns are:

    - ``"field"`` (one loss): f^ itself; `modified_loss()` gives E^ with f^ = -grad E^ where it exists.
    - ``"game"`` (players, one loss each): the stacked field (player p's block from loss p), the field
      simultaneous or alternating gradient steps follow; `terms[0]` is (-grad_phi E_phi, -grad_theta E_theta).
    - ``"shared"`` (several losses, no players: SGD steps): a correction added to every loss's field,
      f^_k = -grad E_k + sum_l h^l terms[l]; `modified_loss()` is the explicit regularizer R added to every loss.

    `target[l]` is the h^l part of the target flow (default: the rule's own limiting flow f_0, i.e. every
    O(h) drift cancelled).
    """

    rule: object
    params: tuple[sp.Symbol, ...]
    losses: tuple[sp.Expr, ...]
    order: int
    terms: tuple[sp.ImmutableMatrix, ...]
    target: tuple[sp.ImmutableMatrix, ...]
    kind: str = "field"
    constants: tuple[sp.Symbol, ...] = ()

    def __post_init__(self):
        if len(self.terms) != self.order + 1:
            raise ValueError("terms must hold f^_0..f^_order")

    _name = "f^"
    _what = "modifying field; for kind \"shared\": the correction added to every loss's -grad E_k"

    def modified_loss(self, order: int | None = None):
        """E^ = U_0 + h U_1 + ... with f^_l = -grad U_l: the loss on which the rule follows the target
        (`bea.exports.modified_loss`; U_0 is the loss itself for the default target). Kind "shared": the
        regularizer R added to every loss. Raises `NoModifiedLossError` naming the first order whose term is
        not a gradient (GD on a generic loss: order 2; a game: order 0)."""
        from ..exports import modified_loss

        return modified_loss(self, order)

    def latex(self) -> str:
        """hat f = f^_0 + h f^_1 + ... as a LaTeX display formula."""
        from ..exports import latex

        text = latex(self)
        return text.replace(r"\frac{d}{dt} ", r"\hat{f}", 1)

    def to_dict(self) -> dict:
        """A JSON-serializable summary; every expression is a string `sympy.sympify` parses."""
        from ..exports import to_dict

        data = to_dict(self)
        data["view"] = "modifying equation"
        data["kind"] = self.kind
        data["target"] = [[str(c) for c in term] for term in self.target]
        return data

    def __repr__(self) -> str:
        name = getattr(self.rule, "name", self.rule)
        lines = [f"ModifyingEquation({name}, order={self.order}, params={list(self.params)}, kind={self.kind!r})"]
        lines += [f"  f^_{l} = {list(term)}" for l, term in enumerate(self.terms)]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class CoordinateFreeModifyingEquation(CoordinateFreeModifiedEquation):
    """The modifying field f^_l = sum coefficient * G(tree) for f = -grad E, in any dimension.

    Same terms and notation as `CoordinateFreeModifiedEquation` (coefficients include the sign
    (-1)^{|t|} and 1/sigma(t)); the field is the substitution inverse of the rule's B-series applied to
    the target (Chartier, Hairer & Vilmart 2007, doi:10.1090/S0025-5718-07-01967-9). For GD:
    f^ = -grad E + (h/2) H grad E + ..., E^ = E - (h/4)|grad E|^2 + O(h^2).
    """

    def latex(self, notation: str = "gradient") -> str:
        text = super().latex(notation)
        lhs = r"\dot{\theta}" if notation == "gradient" else r"\tilde{f}"
        return text.replace(lhs, r"\hat{f}", 1)

    def modified_loss_latex(self) -> str:
        return super().modified_loss_latex().replace(r"\tilde{E}", r"\hat{E}", 1)

    def initial_point_loss(self):
        raise AttributeError("initial-point losses are for modified equations, not modifying fields")
