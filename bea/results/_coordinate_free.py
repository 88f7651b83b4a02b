"""The coordinate-free view for Runge-Kutta-type rules: terms in grad E and its derivative tensors.

With f = -grad E every elementary differential is a contraction of derivative
tensors of E with gradients, one sign per node:

    F(t) = (-1)^{|t|} G(t),   G(.) = grad E,   G([t_1..t_m]) = nabla^{m+1} E [G(t_1), ..., G(t_m)],

so f_l = sum_{|t| = l+1} (-1)^{|t|} b(t)/sigma(t) G(t), valid in every dimension.
For GD this gives f_1 = -(1/2) H grad E and
f_2 = -(1/12) nabla^3 E[grad E, grad E] - (1/3) H H grad E.

Rules with several losses (SGD over batches, two-player games) have coloured
trees (`_colored_trees`): node (k, p) carries P_p nabla^{m+1} E_k, the derivative
tensor of loss k restricted to player p's block (all parameters when p is None).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..engines.series._jet import STEP_SIZE
from ..engines.trees._colored_trees import Colored, colored_key, colored_order, colored_symmetry
from ..engines.trees._notation import (
    Notation,
    colored_field_text,
    field_latex,
    field_text,
    gradient_latex,
    gradient_text,
    notation_for,
)
from ..engines.trees._trees import _key, order, symmetry
from ._initial_point import initial_point_loss
from ._terms import contract_on_loss, signed_latex, signed_text, tidy

__all__ = ["CoordinateFreeModifiedEquation"]


@dataclass(frozen=True)
class CoordinateFreeModifiedEquation:
    """f_l = sum coefficient * G(tree) for f = -grad E, in any dimension.

    `terms[l]` lists (coefficient, tree) pairs; the coefficient includes the sign
    (-1)^{|t|} and 1/sigma(t), and may contain hyperparameters (EGR's mu, SAM's c).
    Trees are `Colored` (labels: loss k, player p) for rules with several losses.
    """

    rule: object
    order: int
    terms: tuple
    notation: Notation = Notation()
    #: Rules with memory: each state on its slow manifold, as (coefficient with powers of h, tree) pairs.
    slow_manifold: tuple = ()
    #: Hyperparameters expanded jointly with h (`small=`): terms are complete through total degree `order`.
    jointly_small: tuple = ()

    @classmethod
    def from_tree_coefficients(cls, rule, order_: int, coefficients) -> CoordinateFreeModifiedEquation:
        """From Runge-Kutta tree coefficients b(t) (`engines.trees._trees.tree_coefficients`):
        f_l = sum_{|t| = l+1} (-1)^{|t|} b(t)/sigma(t) G(t)."""
        terms: list[list] = [[] for _ in range(order_ + 1)]
        for t in coefficients:
            if t.coefficient != 0:
                terms[t.order - 1].append(((-1) ** t.order * t.coefficient / t.symmetry, t.tree))
        return cls(rule, order_, tuple(tuple(t) for t in terms), notation_for(rule))

    @classmethod
    def from_bseries(cls, rule, order_: int, field: dict, states: list) -> CoordinateFreeModifiedEquation:
        """From a B-series modified field {tree: [coefficient of h^1, h^2, ...]} (`engines.trees._bseries_step`)
        and, for rules with memory, the states on the slow manifold {tree: [h^0, h^1, ...]}."""
        terms: list[list] = [[] for _ in range(order_ + 1)]
        for tree, coefficients in sorted(field.items(), key=lambda item: _tree_key(item[0])):
            sign = (-1) ** _order(tree)
            sigma = colored_symmetry(tree) if isinstance(tree, Colored) else symmetry(tree)
            for l, c in enumerate(coefficients[: order_ + 1]):
                c = tidy(sign * c / sigma)
                if c != 0:
                    terms[l].append((c, tree))
        manifold = tuple(
            tuple((tidy(sum(((-1) ** order(t) * STEP_SIZE**k * c / symmetry(t) for k, c in enumerate(v)), sp.S.Zero)), t)
                  for t, v in sorted(state.items(), key=lambda kv: _key(kv[0])))
            for state in states
        )
        return cls(rule, order_, tuple(tuple(t) for t in terms), notation_for(rule), manifold)

    def regrouped(self, rule, symbols: tuple, back: dict) -> CoordinateFreeModifiedEquation:
        """The double series in h and `symbols` (each tied to the step as s = c_s h for the derivation),
        regrouped by powers of h after c_s = s/h (`back`): complete through total degree `order` (the
        double series is unique, and the substitution maps h^l c^k to h^{l-k} s^k, k <= l)."""
        regrouped: list[dict] = [dict() for _ in range(self.order + 1)]
        for l, term in enumerate(self.terms):
            for c, t in term:
                expanded = sp.expand(c.xreplace(back) * STEP_SIZE**l)
                for j in range(self.order + 1):
                    part = expanded.coeff(STEP_SIZE, j)
                    if part != 0:
                        regrouped[j][t] = regrouped[j].get(t, 0) + part
        terms = tuple(tuple((tidy(c), t) for t, c in sorted(r.items(), key=lambda kv: _key(kv[0])) if tidy(c) != 0)
                      for r in regrouped)
        return CoordinateFreeModifiedEquation(rule, self.order, terms, self.notation, jointly_small=tuple(symbols))

    @property
    def colored(self) -> bool:
        """True when the terms involve several losses or players (coloured trees)."""
        return any(isinstance(t, Colored) for term in self.terms for _, t in term)

    @property
    def n_losses(self) -> int:
        return getattr(self.rule, "n_losses", 1)

    @property
    def n_players(self) -> int:
        """Number of parameter blocks the terms are projected on (0: none)."""
        blocks = {_label_block(t) for term in self.terms for _, t in term} - {None}
        return max(blocks) + 1 if blocks else 0

    def tree_text(self, tree) -> str:
        """G(t) in plain text."""
        return self.notation.text(tree) if isinstance(tree, Colored) else gradient_text(tree)

    def text(self, l: int, notation: str = "gradient") -> str:
        """f_l in plain text, e.g. '-1/12 ∇^3E[∇E, ∇E] - 1/3 ∇²E ∇²E ∇E'.

        notation='field' writes it in the field f = -∇E the rule integrates, with Butcher's elementary
        differentials F(t) = (-1)^|t| G(t): GD (explicit Euler) gives f_1 = "-1/2 f'f" and
        f_2 = "1/12 f''(f, f) + 1/3 f'f'f" (Hairer, Lubich & Wanner, Geometric Numerical Integration,
        Sec. IX.1, doi:10.1007/3-540-30666-8).
        """
        if notation not in ("gradient", "field"):
            raise ValueError("notation must be 'gradient' or 'field'")
        if notation == "field":
            parts = [signed_text((-1) ** _order(t) * c) + self._field_text(t) for c, t in self.terms[l]]
        else:
            parts = [signed_text(c) + self.tree_text(t) for c, t in self.terms[l]]
        text = " ".join(parts)
        return (text[2:] if text.startswith("+ ") else "-" + text[2:]) if parts else "0"

    def _field_text(self, tree) -> str:
        if not isinstance(tree, Colored):
            return field_text(tree)
        names = self.notation.players_text

        def name(label):
            if label.block is not None:
                return "_" + names[label.block]
            return str(label.loss + 1).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))

        return colored_field_text(tree, name)

    def modified_loss(self) -> tuple[tuple[tuple[sp.Expr, tuple, str], ...], ...]:
        """E~ = U_0 + h U_1 + ... with f_l = -grad U_l; U_l as (coefficient, free tree, text) triples.

        A free tree stands for the scalar invariant I(T) (see `bea.engines.trees._invariants`):
        GD gives U_0 = E, U_1 = (1/4)|∇E|².

        Raises `NoModifiedLossError` at the first order whose term is not the gradient of a
        combination of scalar invariants (GD: at order 2).
        """
        from ..engines.trees._invariants import invariant_text, potential_of
        from ..exports import NoModifiedLossError

        if self.colored:
            raise NoModifiedLossError(
                f"{getattr(self.rule, 'name', 'this rule')} has several losses: its field is not the gradient of "
                "one loss in general. Use initial_point_loss() for the per-step losses that depend on the "
                "initial point (Rosca & Deisenroth 2024), or the concrete view on your losses"
            )
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
        from ..engines.trees._invariants import invariant_latex

        rows = []
        for l, pieces in enumerate(self.modified_loss()):
            body = " ".join(signed_latex(c) + invariant_latex(f) for c, f, _ in pieces).lstrip("+ ").strip() or "0"
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
                    coefficient = c
                    body = self.notation.latex(t) if isinstance(t, Colored) else gradient_latex(t)
                else:
                    coefficient = (-1) ** _order(t) * c
                    body = _colored_field_latex(t, self.notation) if isinstance(t, Colored) else field_latex(t)
                pieces.append(signed_latex(coefficient) + body)
            if not pieces:
                continue
            body = " ".join(pieces).lstrip("+ ").strip()
            power = "" if l == 0 else ("h" if l == 1 else f"h^{{{l}}}")
            rows.append(f"{power}\\left({body}\\right)" if power else body)
        lhs = r"\dot{\theta}" if notation == "gradient" else r"\tilde{f}"
        if notation == "gradient" and self.n_players:
            lhs = r"\frac{d}{dt}\left(" + ", ".join(self.notation.players_latex[: self.n_players]) + r"\right)"
        joined = " \\\\\n  &+ ".join(rows)
        remainder = f"h^{{{self.order + 1}}}"
        if self.jointly_small:
            names = " + ".join(["h"] + [sp.latex(x) for x in self.jointly_small])
            remainder = f"({names})^{{{self.order + 1}}}"
        return f"\\begin{{aligned}}\n  {lhs} &= {joined}\n  + \\mathcal{{O}}({remainder})\n\\end{{aligned}}"

    def to_jax(self, *, loss, allow_float32: bool = False):
        """`field(params, h, **hyperparameters) -> pytree`: the truncated field for a JAX loss of a
        parameter pytree, every G(t) by nested jvps of grad (Hessian-vector products), no Hessian formed
        (see `bea.lowering.lower_coordinate_free`). Rules with several losses take a list of loss
        functions; games take params as one pytree per player, e.g. (phi, theta)."""
        from ..lowering._autodiff import lower_coordinate_free

        return lower_coordinate_free(self, loss, allow_float32=allow_float32)

    def slow_manifold_to_jax(self, *, loss, allow_float32: bool = False) -> list:
        """Rules with memory: one `state(params, h, **hyperparameters) -> pytree` per state, the state on
        its slow manifold (the large-n regime the modified equation describes), by autodiff."""
        from dataclasses import replace

        return [replace(self, order=0, terms=(state,), slow_manifold=()).to_jax(loss=loss, allow_float32=allow_float32)
                for state in self.slow_manifold]

    def initial_point_loss(self):
        """The per-step modified losses that depend on the initial point theta_0 of the step
        (Rosca & Deisenroth, arXiv:2307.05789, Remark 1, Theorem 4 and eqs 11-12); see
        `bea.results._initial_point.initial_point_loss`."""
        return initial_point_loss(self)

    def evaluate(self, *, loss: sp.Expr | None = None, losses=None, params) -> tuple[sp.Matrix, ...]:
        """The terms on concrete losses: f_l as SymPy columns (independent of the concrete engine).

        Games take params per player ([[phi...], [theta...]]) or flat, player 1 first, with
        `players=` sizes read from the nesting.
        """
        if (loss is None) == (losses is None):
            raise TypeError("give loss= (one loss) or losses=[...] (one per loss of the rule)")
        losses = [loss] if loss is not None else list(losses)
        nested = [list(p) if isinstance(p, (list, tuple)) else [p] for p in params]
        flat = [p for group in nested for p in group]
        if self.n_players and len(nested) != self.n_players:
            raise ValueError(f"give params as {self.n_players} lists, one per player")
        starts = [sum(len(g) for g in nested[:i]) for i in range(len(nested) + 1)]
        if len(losses) < max((_max_loss(t) for term in self.terms for _, t in term), default=0) + 1:
            raise ValueError(f"the terms involve {self.n_losses} losses, {len(losses)} given")
        cache: dict = {}

        def G(tree):
            if tree in cache:
                return cache[tree]
            if isinstance(tree, Colored):
                energy, block, kids = losses[tree.label.loss], tree.label.block, tree.children
            else:
                energy, block, kids = losses[0], None, tree
            children = [G(c) for c in kids]
            out = []
            for i, component in enumerate(sp.diff(energy, p) for p in flat):
                if block is not None and not starts[block] <= i < starts[block + 1]:
                    out.append(sp.S.Zero)
                    continue
                out.append(sp.expand(contract_on_loss(component, flat, children)))
            cache[tree] = sp.Matrix(out)
            return cache[tree]

        return tuple(
            sum((c * G(t) for c, t in self.terms[l]), sp.zeros(len(flat), 1)).applyfunc(sp.expand)
            for l in range(self.order + 1)
        )


def _label_block(t):
    return t.label.block if isinstance(t, Colored) else None


def _max_loss(t) -> int:
    if not isinstance(t, Colored):
        return 0
    return max([t.label.loss] + [_max_loss(c) for c in t.children])


def _order(t) -> int:
    return colored_order(t) if isinstance(t, Colored) else order(t)


def _colored_field_latex(t, notation: Notation) -> str:
    """F(t) in the fields f_k (f_phi, f_theta for players): f_2' f_1, f_1''(f_1, f_2), ..."""
    label = t.label
    name = notation.players_latex[label.block] if label.block is not None else str(label.loss + 1)
    m = len(t.children)
    head = f"f_{{{name}}}" + ("'" * m if m <= 3 else f"^{{({m})}}")
    inner = [_colored_field_latex(c, notation) for c in t.children]
    if not inner:
        return head
    return f"{head} {inner[0]}" if m == 1 else f"{head}({', '.join(inner)})"


def _tree_key(t):
    return colored_key(t) if isinstance(t, Colored) else _key(t)
