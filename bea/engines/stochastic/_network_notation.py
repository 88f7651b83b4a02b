"""How tensor networks are written: contractions as arguments, in text and in LaTeX.

A network whose nodes form a tree hanging from phi is written from phi outwards: a node's other
slots take its children as arguments, `∇³E[Σ]` (two slots of ∇³E contracted with Σ's two),
`∇³E[∇E, ∇E]`; a matrix applied to a vector is a product, `∇²E ∇E`. Cumulant tensors take
arguments in their cumulant slots in brackets, `κ₃[∇E]`, and in their derivative slots as a
directional derivative, `∇_{∇E}Σ` ((∇E · ∇)Σ); `∇Σ` with a derivative slot left over is the gradient.
Anything else (a cycle, a child joined to two slot groups of one node) is written in index
notation with summation over repeated indices, `(∇³E)_{iab} (Σ)_{ac} (∇²E)_{cb}`.
"""

from __future__ import annotations

import dataclasses

from ._tensor_networks import Network, slot_groups

__all__ = ["TEXT", "LATEX", "render"]

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclasses.dataclass(frozen=True)
class Style:
    latex: bool

    def power(self, k: int) -> str:
        if k == 1:
            return ""
        return f"^{{{k}}}" if self.latex else str(k).translate(_SUPERSCRIPTS)

    @property
    def nabla(self) -> str:
        return r"\nabla " if self.latex else "∇"

    def name(self, node: tuple, with_derivatives: bool = True) -> str:
        kind = node[0]
        if kind == "E":
            return f"{self.nabla.strip()}{self.power(node[1])} E" if self.latex else f"∇{self.power(node[1])}E"
        if kind == "I":
            return "I"
        c, j = node[1], node[2]
        base = (r"\Sigma" if self.latex else "Σ") if c == 2 else (
            rf"\kappa_{{{c}}}" if self.latex else f"κ{str(c).translate(_SUBSCRIPTS)}")
        if j and with_derivatives:
            return f"{self.nabla}{self.power(j)}{base}" if not self.latex else rf"\nabla{self.power(j)} {base}"
        return base

    def bracket(self, args: list[str]) -> str:
        inner = ", ".join(args)
        return rf"\left[{inner}\right]" if self.latex else f"[{inner}]"

    def directional(self, directions: list[str], base: str, extra: int) -> str:
        """nabla^{len(directions)+extra} along the directions, `extra` derivative slots left free."""
        power = self.power(len(directions) + extra)
        if self.latex:
            return rf"\nabla{power}_{{{', '.join(directions)}}} {base}"
        return f"∇{power}_{{{', '.join(directions)}}}{base}"

    @property
    def product(self) -> str:
        return r" \otimes " if self.latex else " ⊗ "


TEXT, LATEX = Style(False), Style(True)


class _NotATree(Exception):
    pass


def render(network: Network, style: Style = TEXT) -> str:
    """The tensor with phi's slots free (phi itself not written): `∇²E ∇E`, `Σ`, `∇E ⊗ ∇E`, ..."""
    try:
        return _render_tree(network, style)
    except _NotATree:
        return _render_indices(network, style)


def _without_identities(network: Network):
    """Nodes and edges with each identity joining two different nodes replaced by one edge between them
    (an identity on two slots of one node, a trace, stays: written `[I]`)."""
    nodes, edges = list(network.nodes), list(network.edges)
    for i, node in enumerate(network.nodes):
        if node[0] != "I":
            continue
        ends = [(v, gv) if u == i else (u, gu) for (u, gu), (v, gv) in edges if i in (u, v)]
        if ends[0][0] != ends[1][0]:
            edges = [e for e in edges if i not in (e[0][0], e[1][0])] + [(ends[0], ends[1])]
            nodes[i] = None
    return nodes, edges


def _render_tree(network: Network, style: Style) -> str:
    nodes, edges = _without_identities(network)
    adjacent = {i: [] for i, n in enumerate(nodes) if n is not None}
    for (u, gu), (v, gv) in edges:
        adjacent[u].append((gu, v, gv))
        adjacent[v].append((gv, u, gu))
    phi = network.phi
    seen = {phi}

    def children_of(i, excluded):
        groups: dict = {}
        for g, v, gv in adjacent[i]:
            if v in excluded:
                continue
            if v in seen and v not in groups:
                raise _NotATree
            groups.setdefault(v, []).append((g, gv))
        seen.update(groups)
        return groups

    def node_text(i, excluded, matrix=False) -> str:
        node = nodes[i]
        kids = children_of(i, excluded)
        parts = {v: node_text(v, {i}) for v in kids}
        by_group: dict = {}
        for v, pairs in kids.items():
            own = {g for g, _ in pairs}
            if len(own) > 1:
                raise _NotATree  # a child joined to two slot groups of this node
            by_group.setdefault(own.pop(), []).append(v)
        if node[0] == "K":
            base = style.name(node, with_derivatives=False)
            cumulant_args = [parts[v] for v in by_group.get(0, [])]
            directions = [parts[v] for v in by_group.get(1, []) for _ in range(len(kids[v]))]
            free_derivatives = node[2] - len(directions)
            text = base if not cumulant_args else base + style.bracket(cumulant_args)
            if directions:
                return style.directional(directions, text if not cumulant_args else f"({text})", free_derivatives)
            if free_derivatives:
                return f"{style.nabla}{style.power(free_derivatives)}" + (f"({text})" if cumulant_args else base)
            return text
        args = [parts[v] for v in kids]
        name = style.name(node)
        if not args:
            return name
        if not matrix and sum(slot_groups(node)) == 2 and len(args) == 1 and len(kids[next(iter(kids))]) == 1:
            return f"{name} {args[0]}"  # a matrix applied to a vector
        return name + style.bracket(args)

    top = [v for _, v, _ in adjacent[phi]]
    if len(top) == 2 and top[0] != top[1]:
        chain = _chain(adjacent, phi, top[0], top[1])
        if chain is not None:  # phi's two slots joined by a path of matrices: a matrix product
            seen.update(chain)
            return " ".join(node_text(v, set(chain) | {phi}, matrix=True) for v in chain)
    factors = [node_text(v, {phi}) for v in dict.fromkeys(top)]
    seen.update(top)
    return style.product.join(factors)


def _chain(adjacent, phi, start, end):
    """The path start .. end (avoiding phi) when it is the only way between them, else None."""
    path, previous = [start], phi
    while path[-1] != end:
        onward = [v for _, v, _ in adjacent[path[-1]] if v not in (previous, phi) and v not in path]
        if len(onward) != 1 or sum(1 for _, v, _ in adjacent[path[-1]] if v == onward[0]) != 1:
            return None
        previous = path[-1]
        path.append(onward[0])
    return path


def _render_indices(network: Network, style: Style) -> str:
    """Index notation: one letter per edge, phi's slots i, j, k, ... free, repeated letters summed."""
    free_letters, summed_letters = iter("ijklmn"), iter("abcdefgpqrstuvw")
    phi = network.phi
    slots = {i: [[] for _ in slot_groups(n)] for i, n in enumerate(network.nodes)}
    for (u, gu), (v, gv) in network.edges:
        letter = next(free_letters) if phi in (u, v) else next(summed_letters)
        slots[u][gu].append(letter)
        slots[v][gv].append(letter)
    factors = []
    for i, node in enumerate(network.nodes):
        if i == phi:
            continue
        indices = ";".join("".join(group) for group in slots[i] if group)
        factors.append(f"({style.name(node)})_{{{indices}}}")
    return " ".join(factors)
