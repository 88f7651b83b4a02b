"""The coordinate-free view for Runge-Kutta-type rules: terms in grad E and its derivative tensors.

With f = -grad E every elementary differential is a contraction of derivative
tensors of E with gradients, one sign per node:

    F(t) = (-1)^{|t|} G(t),   G(.) = grad E,   G([t_1..t_m]) = nabla^{m+1} E [G(t_1), ..., G(t_m)],

so f_l = sum_{|t| = l+1} (-1)^{|t|} b(t)/sigma(t) G(t), valid in every dimension.
For GD this gives f_1 = -(1/2) H grad E and
f_2 = -(1/12) nabla^3 E[grad E, grad E] - (1/3) H H grad E.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from ._trees import _key, order, tree_coefficients

__all__ = ["CoordinateFreeModifiedEquation", "coordinate_free", "gradient_text"]


_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _render(tree, leaf: str, apply, contract) -> str:
    """Elementary differential of `tree` in one notation: leaf, one child, several children."""
    if not tree:
        return leaf
    inner = [_render(c, leaf, apply, contract) for c in tree]
    return apply(inner[0]) if len(tree) == 1 else contract(len(tree), inner)


def gradient_text(tree) -> str:
    """G(t) in plain text: '∇E', '∇²E ∇E', '∇³E[∇E, ∇E]', ..."""
    return _render(
        tree, "∇E", lambda x: f"∇²E {x}",
        lambda m, xs: f"∇{str(m + 1).translate(_SUPERSCRIPTS)}E[{', '.join(xs)}]",
    )


def _gradient_latex(tree) -> str:
    return _render(
        tree, r"\nabla E", lambda x: rf"\nabla^{{2}} E\, {x}",
        lambda m, xs: rf"\nabla^{{{m + 1}}} E\left[{', '.join(xs)}\right]",
    )


def _field_latex(tree) -> str:
    def primes(m):
        return "'" * m if m <= 3 else f"^{{({m})}}"

    return _render(tree, "f", lambda x: f"f' {x}", lambda m, xs: f"f{primes(m)}({', '.join(xs)})")


@dataclass(frozen=True)
class CoordinateFreeModifiedEquation:
    """f_l = sum coefficient * G(tree) for f = -grad E, in any dimension.

    `terms[l]` lists (coefficient, tree) pairs; the coefficient includes the sign
    (-1)^{|t|} and 1/sigma(t), and may contain hyperparameters (EGR's mu, SAM's c).
    """

    rule: object
    order: int
    terms: tuple

    def text(self, l: int) -> str:
        """f_l in plain text, e.g. '-1/12 ∇^3E[∇E, ∇E] - 1/3 ∇²E ∇²E ∇E'."""
        parts = []
        for c, t in self.terms[l]:
            negative = c.is_Number and c < 0 or (not c.is_Number and c.could_extract_minus_sign())
            size = -c if negative else c
            sign = "-" if negative else "+"
            magnitude = "" if size == 1 else (f"({size}) " if size.is_Add else f"{size} ")
            parts.append(f"{sign} {magnitude}{gradient_text(t)}")
        text = " ".join(parts)
        return (text[2:] if text.startswith("+ ") else "-" + text[2:]) if parts else "0"

    def modified_loss(self) -> tuple[tuple[tuple[sp.Expr, tuple, str], ...], ...]:
        """E~ = U_0 + h U_1 + ... with f_l = -grad U_l; U_l as (coefficient, free tree, text) triples.

        A free tree stands for the scalar invariant I(T) (see `bea.series._invariants`):
        GD gives U_0 = E, U_1 = (1/4)|∇E|².

        Raises `NoModifiedLossError` at the first order whose term is not the gradient of a
        combination of scalar invariants (GD: at order 2).
        """
        from ..exports import NoModifiedLossError
        from ._invariants import invariant_text, potential_of

        out = []
        for l in range(self.order + 1):
            sizes = sorted({order(t) for _, t in self.terms[l]})
            pieces = []
            for size in sizes:
                found = potential_of([(c, t) for c, t in self.terms[l] if order(t) == size], size)
                if found is None:
                    raise NoModifiedLossError(
                        f"no modified loss at order {l}: the terms of f_{l} on trees with {size} nodes are not "
                        f"the gradient of any combination of scalar invariants ({self.text(l)})"
                    )
                pieces += [(c, f, invariant_text(f)) for f, c in found.items()]
            out.append(tuple(pieces))
        return tuple(out)

    def modified_loss_latex(self) -> str:
        """The modified loss as a LaTeX formula (raises `NoModifiedLossError` where there is none)."""
        from ._invariants import invariant_latex

        rows = []
        for l, pieces in enumerate(self.modified_loss()):
            body = " ".join(_signed_latex(c) + invariant_latex(f) for c, f, _ in pieces).lstrip("+ ").strip() or "0"
            power = "" if l == 0 else ("h" if l == 1 else f"h^{{{l}}}")
            rows.append(rf"{power}\left({body}\right)" if power else body)
        return r"\tilde{E} = " + " + ".join(rows) + rf" + \mathcal{{O}}(h^{{{self.order + 1}}})"

    def latex(self, notation: str = "gradient") -> str:
        """The modified equation; notation 'gradient' (nabla^k E) or 'field' (f', f''(f, f), for f~ of f)."""
        if notation not in ("gradient", "field"):
            raise ValueError("notation must be 'gradient' or 'field'")
        rows = []
        for l in range(self.order + 1):
            pieces = []
            for c, t in self.terms[l]:
                if notation == "gradient":
                    coefficient, body = c, _gradient_latex(t)
                else:
                    coefficient, body = (-1) ** order(t) * c, _field_latex(t)
                pieces.append(_signed_latex(coefficient) + body)
            if not pieces:
                continue
            body = " ".join(pieces).lstrip("+ ").strip()
            power = "" if l == 0 else ("h" if l == 1 else f"h^{{{l}}}")
            rows.append(f"{power}\\left({body}\\right)" if power else body)
        lhs = r"\dot{\theta}" if notation == "gradient" else r"\tilde{f}"
        joined = " \\\\\n  &+ ".join(rows)
        return f"\\begin{{aligned}}\n  {lhs} &= {joined}\n  + \\mathcal{{O}}(h^{{{self.order + 1}}})\n\\end{{aligned}}"

    def to_jax(self, *, loss, allow_float32: bool = False):
        """`field(params, h, **hyperparameters) -> pytree`: the truncated field for a JAX loss of a
        parameter pytree, every G(t) by nested jvps of grad (Hessian-vector products), no Hessian formed
        (see `bea.lowering.lower_coordinate_free`)."""
        from ..lowering._autodiff import lower_coordinate_free

        return lower_coordinate_free(self, loss, allow_float32=allow_float32)

    def evaluate(self, *, loss: sp.Expr, params) -> tuple[sp.Matrix, ...]:
        """The terms on a concrete loss: f_l as SymPy columns (independent of the concrete engine)."""
        params = list(params)
        cache: dict = {}

        def G(tree):
            if tree in cache:
                return cache[tree]
            children = [G(c) for c in tree]
            out = []
            for component in (sp.diff(loss, p) for p in params):
                total = sp.S.Zero
                for indices in itertools.product(range(len(params)), repeat=len(children)):
                    term = component
                    for i in indices:
                        term = sp.diff(term, params[i])
                    for child, i in zip(children, indices):
                        term *= child[i]
                    total += term
                out.append(sp.expand(total))
            cache[tree] = sp.Matrix(out)
            return cache[tree]

        return tuple(
            sum((c * G(t) for c, t in self.terms[l]), sp.zeros(len(params), 1)).applyfunc(sp.expand)
            for l in range(self.order + 1)
        )


def _signed_latex(c) -> str:
    negative = c.is_Number and c < 0 or (not c.is_Number and c.could_extract_minus_sign())
    size = -c if negative else c
    body = "" if size == 1 else (rf"\left({sp.latex(size)}\right) " if size.is_Add else f"{sp.latex(size)}\\, ")
    return ("- " if negative else "+ ") + body


def coordinate_free(rule, order_: int) -> CoordinateFreeModifiedEquation:
    """The coordinate-free modified equation of a gradient rule.

    Runge-Kutta-type rules (GD included) use the exact rational tree recursion;
    every other rule built from gradients and Hessian-vector products at points
    theta + O(h) is run as a B-series (`_bseries_step`).
    """
    from .._errors import UnsupportedError
    from ..rules import GD, RungeKutta

    terms: list[list] = [[] for _ in range(order_ + 1)]
    if isinstance(rule, (GD, RungeKutta)) and not rule.free_symbols:
        for t in tree_coefficients(rule, order_):
            if t.coefficient != 0:
                terms[t.order - 1].append(((-1) ** t.order * t.coefficient / t.symmetry, t.tree))
    else:
        from ._bseries_step import bseries_modified_field
        from ._trees import symmetry

        try:
            field = bseries_modified_field(rule, order_)
        except TypeError as exc:  # element-wise products, square roots: not a B-series
            raise UnsupportedError(
                f"{rule.name} uses element-wise operations on vectors ({exc}); they have no coordinate-free "
                "(B-series) form in bea yet. Derive it on a concrete loss: bea.modified_equation(rule, order, "
                "loss=E, params=[...]) (on the command line: --loss and --params)"
            ) from None
        for tree, coefficients in sorted(field.items(), key=lambda kv: _key(kv[0])):
            for l, c in enumerate(coefficients[: order_ + 1]):
                c = (-1) ** order(tree) * c / symmetry(tree)
                c = sp.factor(sp.cancel(c)) if c.has(sp.Pow) and not c.is_polynomial() else sp.factor_terms(sp.expand(c))
                if c != 0:
                    terms[l].append((c, tree))
    return CoordinateFreeModifiedEquation(rule, order_, tuple(tuple(t) for t in terms))
