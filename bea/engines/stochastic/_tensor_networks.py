"""Tensor networks: coordinate-free differential operators, composed by Leibniz's rule.

A term of a differential operator in any dimension is "coefficient x network : nabla^m phi": a
closed network of tensor fields, one of them the test function's derivative nabla^m phi. Nodes:

    ("phi", m)     nabla^m phi                      m slots, symmetric
    ("E", k)       nabla^k E (mean loss)            k slots, symmetric
    ("K", c, j)    nabla^j kappa_c (c >= 2)         c cumulant slots (symmetric) + j derivative slots (symmetric)
    ("I",)         the identity                     2 slots, symmetric; constant

kappa_c is the c-th cumulant tensor of the per-example gradient (kappa_1 = nabla E is ("E", 1),
kappa_2 = Sigma). Within a symmetric slot group slots are interchangeable, so a network is fixed by
its typed nodes and, per edge, the two (node, group) endpoints it joins: a multigraph. Equal
networks are merged by a canonical form: the smallest edge list over all relabellings that permute
nodes of equal type (brute force; networks at the orders derived have a handful of nodes).

Composition A o B: each of A's m slots on its phi differentiates one node of B's network (Leibniz:
d_{i_1}..d_{i_m} prod_v T_v = sum over maps f from the m slots to nodes of prod_v d_{f^-1(v)} T_v),
the new derivative slot joined to where A's slot was joined. The identity is constant: a slot on
it gives zero.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import sympy as sp

__all__ = ["Network", "compose", "contract", "phi_degree", "scaled_sum", "slot_groups"]

_RANK = {"phi": 0, "E": 1, "K": 2, "I": 3}


def slot_groups(node: tuple) -> tuple[int, ...]:
    """Sizes of a node's symmetric slot groups, in slot order."""
    kind = node[0]
    if kind in ("phi", "E"):
        return (node[1],)
    if kind == "K":
        return (node[1], node[2])
    return (2,)


def _derivative_group(node: tuple) -> int | None:
    """The group a new derivative slot joins; None for a constant node."""
    return {"phi": 0, "E": 0, "K": 1}.get(node[0])


def _differentiated(node: tuple, times: int) -> tuple:
    if times == 0:
        return node
    if node[0] == "K":
        return ("K", node[1], node[2] + times)
    return (node[0], node[1] + times)


def _type_key(node: tuple):
    return (_RANK[node[0]],) + node[1:]


@dataclasses.dataclass(frozen=True)
class Network:
    """Typed nodes (sorted; phi first) and edges ((u, group_u), (v, group_v)), one per contracted slot pair.

    Always built through `Network.canonical`, so equal tensor contractions compare and hash equal.
    """

    nodes: tuple
    edges: tuple

    @staticmethod
    def canonical(nodes, edges) -> Network:
        """The canonical form of the network with these nodes and edges (any order).

        An identity joining two different nodes is contracted away (one edge between them), so that
        H_ia I_ab H_bj and H_ia H_aj are one network; an identity on one node (a trace) stays.
        """
        nodes, edges = _contract_identities(list(nodes), list(edges))
        return _canonical(tuple(nodes), tuple(sorted(_edge(a, b) for a, b in edges)))

    @property
    def phi(self) -> int:
        return next(i for i, n in enumerate(self.nodes) if n[0] == "phi")

    def degree(self) -> int:
        """m: the order of the derivative of phi (the term's differential order)."""
        return self.nodes[self.phi][1]


def phi_degree(network: Network) -> int:
    return network.degree()


def _contract_identities(nodes: list, edges: list):
    for i in [i for i, n in enumerate(nodes) if n[0] == "I"]:
        ends = [(v, gv) if u == i else (u, gu) for (u, gu), (v, gv) in edges if i in (u, v)]
        if ends[0][0] != ends[1][0]:
            edges = [e for e in edges if i not in (e[0][0], e[1][0])] + [(ends[0], ends[1])]
            nodes[i] = None
    if None not in nodes:
        return nodes, edges
    index = {old: new for new, old in enumerate(i for i, n in enumerate(nodes) if n is not None)}
    return ([n for n in nodes if n is not None],
            [((index[u], gu), (index[v], gv)) for (u, gu), (v, gv) in edges])


def _edge(a, b):
    return (a, b) if a <= b else (b, a)


@functools.lru_cache(maxsize=None)
def _canonical(nodes: tuple, edges: tuple) -> Network:
    order = sorted(range(len(nodes)), key=lambda i: _type_key(nodes[i]))
    sorted_nodes = tuple(nodes[i] for i in order)
    blocks = [list(g) for _, g in itertools.groupby(order, key=lambda i: nodes[i])]
    best = None
    for choice in itertools.product(*(itertools.permutations(b) for b in blocks)):
        new_index = {old: new for new, old in enumerate(i for block in choice for i in block)}
        relabelled = tuple(sorted(_edge((new_index[u], gu), (new_index[v], gv)) for (u, gu), (v, gv) in edges))
        if best is None or relabelled < best:
            best = relabelled
    return Network(sorted_nodes, best)


def _add(out: dict, network: Network, coefficient) -> None:
    out.setdefault(network, []).append(coefficient)


def _collect(out: dict, tidy) -> dict:
    result = {}
    for network, parts in out.items():
        value = tidy(sp.Add(*parts))
        if value != 0:
            result[network] = value
    return result


def compose_terms(a: Network, b: Network) -> list[Network]:
    """The networks of A o B for single terms (with repetition: one per Leibniz map)."""
    pa = a.phi
    a_nodes = [n for i, n in enumerate(a.nodes) if i != pa]
    a_index = {old: new for new, old in enumerate(i for i in range(len(a.nodes)) if i != pa)}
    ends, a_edges = [], []
    for (u, gu), (v, gv) in a.edges:
        if u == pa and v == pa:
            raise ValueError("a network contracts phi with itself")  # never built by the engine
        if u == pa:
            ends.append((a_index[v], gv))
        elif v == pa:
            ends.append((a_index[u], gu))
        else:
            a_edges.append(((a_index[u], gu), (a_index[v], gv)))
    offset = len(a_nodes)
    b_edges = [((u + offset, gu), (v + offset, gv)) for (u, gu), (v, gv) in b.edges]
    targets = [i for i, n in enumerate(b.nodes) if _derivative_group(n) is not None]
    out = []
    for f in itertools.product(targets, repeat=len(ends)):
        counts = [f.count(i) for i in range(len(b.nodes))]
        nodes = a_nodes + [_differentiated(n, counts[i]) for i, n in enumerate(b.nodes)]
        new = [(end, (f[s] + offset, _derivative_group(b.nodes[f[s]]))) for s, end in enumerate(ends)]
        out.append(Network.canonical(nodes, a_edges + b_edges + new))
    return out


def compose(a: dict, b: dict, tidy) -> dict:
    """The operator phi -> A(B phi) of operators {Network: coefficient}."""
    out: dict = {}
    for na, ca in a.items():
        for nb, cb in b.items():
            for network in _compose_cached(na, nb):
                _add(out, network, ca * cb)
    return _collect(out, tidy)


_compose_cached = functools.lru_cache(maxsize=None)(compose_terms)


def scaled_sum(terms, tidy) -> dict:
    """sum factor * operator over (factor, operator) pairs."""
    out: dict = {}
    for factor, op in terms:
        for network, c in op.items():
            _add(out, network, factor * c)
    return _collect(out, tidy)


def contract(network: Network, tensor_of, dim: int) -> dict:
    """The network on concrete tensors: {alpha (multi-index): coefficient of d^alpha phi}.

    `tensor_of(node)` gives a node's tensor as {index tuple (slots in group order): value} (zeros
    may be left out). Edges become summed indices, contracted node by node (sparse); phi's slots
    stay free and are gathered into multi-indices.
    """
    labels = {i: [[] for _ in slot_groups(n)] for i, n in enumerate(network.nodes)}
    for k, ((u, gu), (v, gv)) in enumerate(network.edges):
        labels[u][gu].append(k)
        labels[v][gv].append(k)
    pf = network.phi
    free = [k for group in labels[pf] for k in group]
    others = [i for i in range(len(network.nodes)) if i != pf]
    # current: {assignment of the labels in `names` : value}
    names: list[int] = []
    current = {(): sp.Integer(1)}
    for step, i in enumerate(others):
        node_labels = [k for group in labels[i] for k in group]
        tensor = tensor_of(network.nodes[i])
        new_names = names + [k for k in dict.fromkeys(node_labels) if k not in names]
        later = {k for j in others[step + 1:] for group in labels[j] for k in group} | set(free)
        keep = [k for k in new_names if k in later]
        fresh = new_names[len(names):]
        out: dict = {}
        for assignment, value in current.items():
            for values in itertools.product(range(dim), repeat=len(fresh)):
                full = dict(zip(names, assignment))
                full.update(zip(fresh, values))
                entry = tensor.get(tuple(full[k] for k in node_labels), 0)
                if entry == 0:
                    continue
                key = tuple(full[k] for k in keep)
                out.setdefault(key, []).append(value * entry)
        names = keep
        current = {key: sp.expand(sp.Add(*parts)) for key, parts in out.items()}
    result: dict = {}
    for assignment, value in current.items():
        full = dict(zip(names, assignment))
        alpha = [0] * dim
        for k in free:
            alpha[full[k]] += 1
        result.setdefault(tuple(alpha), []).append(value)
    return {alpha: sp.expand(sp.Add(*parts)) for alpha, parts in result.items()}
