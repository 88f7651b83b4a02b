"""How elementary differentials are written: plain text and LaTeX, one loss or several.

One loss:      G(.) = ∇E,  G([t]) = ∇²E G(t),  G([t_1..t_m]) = ∇^{m+1}E[G(t_1), ..., G(t_m)].
Several losses (coloured trees, node label (k, p)): the loss E_k of the node, and
one ∇_p per index when parameter blocks (players) are involved, as in Rosca &
Deisenroth (arXiv:2307.05789, eqs 9-10): ∇_φ∇_θE_φ ∇_θE_θ is d(∇_φE_φ)/dθ ∇_θE_θ.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Notation", "field_latex", "field_text", "gradient_latex", "gradient_text", "notation_for"]

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _render(tree, leaf: str, apply, contract) -> str:
    """Elementary differential of a plain `tree` in one notation: leaf, one child, several children."""
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


def gradient_latex(tree) -> str:
    return _render(
        tree, r"\nabla E", lambda x: rf"\nabla^{{2}} E\, {x}",
        lambda m, xs: rf"\nabla^{{{m + 1}}} E\left[{', '.join(xs)}\right]",
    )


def field_latex(tree) -> str:
    def primes(m):
        return "'" * m if m <= 3 else f"^{{({m})}}"

    return _render(tree, "f", lambda x: f"f' {x}", lambda m, xs: f"f{primes(m)}({', '.join(xs)})")


def field_text(tree) -> str:
    """F(t) in plain text, in the field f = -∇E: 'f', "f'f", "f''(f, f)", "f'f'f", "f⁽⁴⁾(f, f, f, f)".

    Butcher's elementary differentials (Hairer, Lubich & Wanner, Geometric Numerical Integration,
    Sec. III.1.2, doi:10.1007/3-540-30666-8): F(•) = f, F([t_1..t_m]) = f^(m)(F(t_1), ..., F(t_m)).
    """
    return _render(tree, "f", lambda x: f"f'{x}", lambda m, xs: f"{_primes_text(m)}({', '.join(xs)})")


def colored_field_text(tree, name) -> str:
    """F(t) of a coloured tree in the fields f_k: "f₂'f₁", "f_φ''(f_φ, f_θ)"; `name(label)` names a node's field."""
    m = len(tree.children)
    head = _primes_text(m, "f" + name(tree.label))
    inner = [colored_field_text(c, name) for c in tree.children]
    if not inner:
        return head
    return f"{head}{inner[0]}" if m == 1 else f"{head}({', '.join(inner)})"


def _primes_text(m: int, head: str = "f") -> str:
    return head + ("'" * m if m <= 3 else f"⁽{str(m).translate(_SUPERSCRIPTS)}⁾")


@dataclass(frozen=True)
class Notation:
    """Names of the losses and of the parameter blocks (players), in text and LaTeX."""

    losses_text: tuple = ()
    losses_latex: tuple = ()
    players_text: tuple = ()
    players_latex: tuple = ()

    def text(self, tree) -> str:
        """G(t) of a coloured tree, e.g. '∇²E₂ ∇E₁' or '∇_φ∇_θE_φ ∇_θE_θ'."""
        return self._colored(tree, latex=False)

    def latex(self, tree) -> str:
        return self._colored(tree, latex=True)

    def _colored(self, tree, *, latex: bool) -> str:
        label, children = tree.label, tree.children
        loss = (self.losses_latex if latex else self.losses_text)[label.loss]
        if label.block is None and all(c.label.block is None for c in children):
            m = len(children) + 1
            if latex:
                nabla = r"\nabla" + ("" if m == 1 else f"^{{{m}}}")
            else:
                nabla = "∇" + ("" if m == 1 else str(m).translate(_SUPERSCRIPTS))
        else:
            names = self.players_latex if latex else self.players_text
            blocks = [label.block] + [c.label.block for c in children]
            if latex:
                nabla = "".join(r"\nabla" + ("" if b is None else f"_{{{names[b]}}}") for b in blocks)
            else:
                nabla = "".join("∇" + ("" if b is None else f"_{names[b]}") for b in blocks)
        head = f"{nabla} {loss}" if latex else f"{nabla}{loss}"
        inner = [self._colored(c, latex=latex) for c in children]
        if not inner:
            return head
        if len(inner) == 1:
            return rf"{head}\, {inner[0]}" if latex else f"{head} {inner[0]}"
        joined = ", ".join(inner)
        return rf"{head}\left[{joined}\right]" if latex else f"{head}[{joined}]"


def notation_for(rule) -> Notation:
    """Seed 003's names for games (E_φ, E_θ; players φ, θ), E_1..E_n for batches and other compositions."""
    from ...rules._composite import _Game

    if isinstance(rule, _Game):
        return Notation(("E_φ", "E_θ"), (r"E_{\phi}", r"E_{\theta}"), ("φ", "θ"), (r"\phi", r"\theta"))
    n = max(getattr(rule, "n_losses", 1), 1)
    if n == 1:
        return Notation(("E",), ("E",))
    return Notation(
        tuple(f"E{str(k + 1).translate(_SUBSCRIPTS)}" for k in range(n)),
        tuple(f"E_{{{k + 1}}}" for k in range(n)),
    )
