"""The concrete result: f_0..f_p as SymPy columns in named parameters."""

from __future__ import annotations

import dataclasses

import sympy as sp

from .._errors import InvalidOrderError
from ..engines.series._jet import STEP_SIZE

__all__ = ["ColumnSeries", "ModifiedEquation"]


class ColumnSeries:
    """What a concrete result of columns in h shares (`ModifiedEquation`, `ModifyingEquation`): `params`,
    `order` and `terms[l]`, the SymPy column of h^l. `_name` is how the terms are written (f, f^)."""

    _name = "f"
    _what = "modified field"

    @property
    def h(self) -> sp.Symbol:
        """The step-size symbol."""
        return STEP_SIZE

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """Every symbol in the terms other than the parameters: data, hyperparameters."""
        found = set()
        for term in self.terms:
            found |= term.free_symbols
        return tuple(sorted(found - set(self.params), key=str))

    def _checked(self, index, what: str) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= self.order:
            raise InvalidOrderError(f"{what} {index!r} is outside 0..{self.order} derived")
        return index

    def field(self, order: int | None = None) -> sp.ImmutableMatrix:
        """The truncated field: terms[0] + h terms[1] + ... + h^order terms[order]."""
        order = self._checked(self.order if order is None else order, "order")
        total = sp.zeros(len(self.params), 1)
        for l in range(order + 1):
            total += STEP_SIZE**l * self.terms[l]
        return sp.ImmutableMatrix(total)

    def to_jax(self, *, term: int | None = None, order: int | None = None, allow_float32: bool = False):
        """The field as a jitted JAX function `field(theta, h, **symbols) -> array`.

        `term=l` gives the h^l term alone, `fn(theta, **symbols)`; `order=` truncates the field.
        Symbols left in the terms (hyperparameters, loss constants) are keyword
        arguments, traced, so new values do not recompile. Needs JAX's x64 mode
        unless allow_float32 (see `bea.lowering.lower_expressions`).
        """
        from ..lowering import lower_expressions

        if term is not None:
            column, what = self.terms[self._checked(term, "term")], f"{self._name}_{term}"
        else:
            column, what = self.field(order), f"{self._name}_0 + h {self._name}_1 + ... (truncated {self._what})"
        return lower_expressions(list(column), self.params, scalar=False, description=what, allow_float32=allow_float32)


@dataclasses.dataclass(frozen=True)
class ModifiedEquation(ColumnSeries):
    """The modified equation theta' = f_0 + h f_1 + ... + h^p f_p of a rule, on concrete losses.

    `terms[l]` is f_l as a SymPy column (one component per parameter), exact.
    `expansion[k-1]` is d_k of the step expansion Phi_h = theta + sum h^k d_k.
    Truncating after f_p, one step of the rule and the time-h flow of the
    truncated field differ by O(h^{p+2}) (Hairer, Lubich & Wanner, Geometric
    Numerical Integration, Thm IX.1.2, doi:10.1007/3-540-30666-8).
    """

    rule: object
    params: tuple[sp.Symbol, ...]
    losses: tuple[sp.Expr, ...]
    order: int
    terms: tuple[sp.ImmutableMatrix, ...]
    expansion: tuple[sp.ImmutableMatrix, ...]
    constants: tuple[sp.Symbol, ...] = ()
    #: Rules with memory: per state, the columns S_0, S_1, ... of its slow manifold S_h(theta),
    #: exact through h^order (the iterates' state once the transients have decayed).
    slow_manifold: tuple = ()
    #: Derived on vector fields (`modified_equation(rule, p, field=[...])`): the fields the rule was applied to,
    #: each a tuple of components (h included where given); `losses` is then empty. `modified_loss()` finds a
    #: potential only where the truncated modified field is a gradient.
    fields: tuple = ()

    def __post_init__(self):
        if len(self.terms) != self.order + 1:
            raise ValueError("terms must hold f_0..f_order")

    @property
    def loss(self) -> sp.Expr:
        """The loss, for rules with one loss."""
        if self.fields:
            raise AttributeError("this modified equation was derived on a vector field, which has no loss; use .fields")
        if len(self.losses) != 1:
            raise AttributeError(f"this rule has {len(self.losses)} losses; use .losses")
        return self.losses[0]

    def latex(self) -> str:
        """The modified equation as a LaTeX display formula (see `bea.exports.latex`)."""
        from ..exports import latex

        return latex(self)

    def modified_loss(self, order: int | None = None):
        """E~ with f_0 + ... + h^order f_order = -grad E~, if that field is a gradient
        (see `bea.exports.modified_loss`); raises `NoModifiedLossError` otherwise."""
        from ..exports import modified_loss

        return modified_loss(self, order)

    def slow_manifold_to_jax(self, *, allow_float32: bool = False) -> list:
        """Per state, `S(theta, h) = S_0 + h S_1 + ... + h^order S_order` as a jitted JAX function:
        the state of a rule with memory once its transients have decayed."""
        from ..lowering import lower_expressions

        if not self.slow_manifold:
            raise AttributeError(f"{getattr(self.rule, 'name', self.rule)} keeps no state")
        out = []
        for i, columns in enumerate(self.slow_manifold):
            series = sum((STEP_SIZE**k * sp.Matrix(c) for k, c in enumerate(columns)), sp.zeros(len(self.params), 1))
            out.append(lower_expressions(list(series), self.params, scalar=False, description=f"slow manifold of state {i}",
                                         allow_float32=allow_float32))
        return out

    def to_dict(self) -> dict:
        """A JSON-serializable summary; each term component is a string `sympy.sympify` parses."""
        from ..exports import to_dict

        return to_dict(self)

    def __repr__(self) -> str:
        lines = [f"ModifiedEquation({getattr(self.rule, 'name', self.rule)}, order={self.order}, params={list(self.params)})"]
        lines += [f"  f_{l} = {list(term)}" for l, term in enumerate(self.terms)]
        return "\n".join(lines)
