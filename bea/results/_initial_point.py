"""Modified losses that depend on the initial point of the step (Rosca & Deisenroth 2024).

Backward error analysis fixes the modified field only through its values (and
derivatives) along the step from theta_0. At first order only f_1(theta_0)
matters, so a term c P_p nabla^2 E_a P_q grad E_b may be replaced by the field

    c nabla_p ( grad_q E_a(theta) . grad_q E_b(theta_0) )

(the child frozen at the initial point), which is a gradient in the player's
own parameters even where the plain field is not. This is the construction of
Rosca & Deisenroth, "Implicit regularisation in SGD: from single-objective to
two-player games", arXiv:2307.05789, Remark 1, Theorem 4 (eqs 5-6) and eqs 11-12.

Within a group of terms with the same blocks, the part shared by both orderings
of two losses is an exact gradient, nabla^2 E_a g_b + nabla^2 E_b g_a =
grad(g_a . g_b), and is kept at theta; only what remains is frozen: with
c(root a, child b) for a < b as the shared coefficient, the frozen terms are the
gradients of earlier batches (seed 003 eq. 6), or of the other player (eqs 11-12),
at theta_0. Self terms nabla^2 E_a g_a = grad |g_a|^2/2 are exact.

Only through first order: from h^2 on the derivatives of the frozen terms enter
the local error, and a frozen f_1 would need a compensating f_2.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .._errors import InvalidOrderError
from ..engines.trees._colored_trees import Colored, Label, colored_order
from ._terms import signed_latex, signed_text, tidy

__all__ = ["InitialPointLoss", "Potential", "initial_point_loss"]


@dataclass(frozen=True)
class Potential:
    """One scalar term: the loss E_a (b is None), or grad_q E_a(theta) . grad_q E_b(theta or theta_0)."""

    a: int
    b: int | None = None
    block: int | None = None  # the contracted block q (None: all parameters)
    frozen: bool = False  # the second gradient is taken at the initial point theta_0


@dataclass(frozen=True)
class InitialPointLoss:
    """E~_p(theta; theta_0) = sum_l h^l sum_i c_i S_i for each player p (one entry without players).

    Player p's modified field is -nabla_p E~_p(theta; theta_0), valid with local
    error O(h^3) for the step that starts at theta_0.
    """

    cf: object
    players: tuple  # per player: per order l: ((coefficient, Potential), ...)

    def text(self, player: int = 0) -> str:
        """E~ of one player in plain text, e.g. 'E₁/2 + E₂/2 + h (1/4 |∇E₁|² + ... - 1/2 ∇E₂·∇E₁(θ₀))'."""
        return _format(self, player, latex=False)

    def latex(self, player: int = 0) -> str:
        return _format(self, player, latex=True)

    def to_jax(self, *, loss, allow_float32: bool = False):
        """`loss_fn(params, params0, h, **hyperparameters)`: E~ (a tuple, one per player, in games)."""
        from ..lowering._autodiff import lower_initial_point_loss

        return lower_initial_point_loss(self, loss, allow_float32=allow_float32)


def _as_colored(t):
    if isinstance(t, Colored):
        return t
    return Colored(Label(0), tuple(_as_colored(c) for c in t))


def initial_point_loss(cf) -> InitialPointLoss:
    """Rosca's initial-point-dependent modified losses of a coordinate-free result (order <= 1)."""
    from ..exports import NoModifiedLossError

    if cf.order > 1:
        raise InvalidOrderError(
            f"initial-point modified losses are built through first order (order <= 1), got order {cf.order}: "
            "from h^2 on the derivatives of the frozen terms change the local error. Derive with order=1"
        )
    blocks = list(range(cf.n_players)) or [None]
    players = []
    for p in blocks:
        per_order = []
        for l in range(cf.order + 1):
            terms = {}
            for c, t in cf.terms[l]:
                t = _as_colored(t)
                if t.label.block == p:
                    terms[t] = terms.get(t, 0) + c
            pieces = _potentials(terms, l, cf, NoModifiedLossError)
            per_order.append(tuple(pieces))
        players.append(tuple(per_order))
    return InitialPointLoss(cf, tuple(players))


def _potentials(terms: dict, l: int, cf, error) -> list:
    out = []
    pairs: dict = {}
    for t, c in terms.items():
        if colored_order(t) == 1:
            out.append((-c, Potential(t.label.loss)))
        elif colored_order(t) == 2:
            child = t.children[0]
            pairs.setdefault(child.label.block, {})[(t.label.loss, child.label.loss)] = c
        else:
            raise error(
                f"f_{l} has a term on a tree of {colored_order(t)} nodes ({cf.tree_text(t)}); initial-point losses "
                "are built for first-order terms of two nodes"
            )
    for q, group in pairs.items():
        done = set()
        for (a, b), c in sorted(group.items()):
            if (a, b) in done:
                continue
            if a == b:  # nabla_p |grad_q E_a|^2 / 2
                out.append((-c / 2, Potential(a, a, q)))
                done.add((a, b))
                continue
            lo, hi = min(a, b), max(a, b)
            shared = group.get((lo, hi), 0) if (hi, lo) in group else 0
            rest = group.get((hi, lo), 0) - shared
            lone = group.get((lo, hi), 0) if (hi, lo) not in group else 0
            if shared:
                out.append((-shared, Potential(lo, hi, q)))
            if rest:
                out.append((-rest, Potential(hi, lo, q, frozen=True)))
            if lone:
                out.append((-lone, Potential(lo, hi, q, frozen=True)))
            done |= {(lo, hi), (hi, lo)}
    if l == 0 and any(pot.frozen for _, pot in out):
        raise error("f_0 is not a gradient in each player's parameters: there is no modified loss")

    return [(tidy(c), pot) for c, pot in out if sp.expand(c) != 0]


def _format(loss: InitialPointLoss, player: int, *, latex: bool) -> str:

    notation = loss.cf.notation
    names = notation.losses_latex if latex else notation.losses_text
    blocks = notation.players_latex if latex else notation.players_text
    origin = _origin(loss, latex)

    def grad(k, q):
        sub = "" if q is None else (f"_{{{blocks[q]}}}" if latex else f"_{blocks[q]}")
        return (rf"\nabla{sub} {names[k]}" if latex else f"∇{sub}{names[k]}")

    def scalar(pot: Potential) -> str:
        if pot.b is None:
            return names[pot.a]
        if pot.a == pot.b and not pot.frozen:
            return rf"\|{grad(pot.a, pot.block)}\|^{{2}}" if latex else f"|{grad(pot.a, pot.block)}|²"
        second = grad(pot.b, pot.block) + (origin if pot.frozen else "")
        return rf"{grad(pot.a, pot.block)} \cdot {second}" if latex else f"{grad(pot.a, pot.block)}·{second}"

    rows = []
    for l, pieces in enumerate(loss.players[player]):
        body = [(signed_latex(c) if latex else signed_text(c)) + scalar(pot) for c, pot in pieces]
        text = " ".join(body).removeprefix("+ ") or "0"
        if text == "0" and any(loss.players[player]):
            continue
        if l == 0:
            rows.append(text)
        else:
            rows.append(rf"h\left({text}\right)" if latex else f"h ({text})")
    joined = " + ".join(rows)
    return joined + (rf" + \mathcal{{O}}(h^{{{loss.cf.order + 1}}})" if latex else "")


def _origin(loss: InitialPointLoss, latex: bool) -> str:
    n = loss.cf.n_players
    if not n:
        return r"(\theta_{0})" if latex else "(θ₀)"
    names = loss.cf.notation.players_latex if latex else loss.cf.notation.players_text
    inside = ", ".join(rf"{x}_{{0}}" if latex else f"{x}₀" for x in names[:n])
    return rf"\left({inside}\right)" if latex else f"({inside})"
