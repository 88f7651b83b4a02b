"""The modified generator of SGD and Langevin in any dimension: terms in E, its derivatives and the
cumulant tensors of the per-example gradient.

The increment Delta = Phi_h(theta) - theta of one step has cumulant tensors that are series in h:

    SGD (batch of B, with replacement):  kappa_c(Delta) = (-h)^c kappa_c / B^(c-1)
    SGD without replacement (N examples): kappa_2 scaled by (N - B)/(B (N - 1)),
                                          kappa_3 by (N - B)(N - 2B)/(B^2 (N - 1)(N - 2))
    Langevin:                            kappa_1(Delta) = -h grad E, kappa_2(Delta) = 2 h T I

(kappa_c: the c-th cumulant of the per-example gradient g = grad E_I, I uniform; kappa_1 = grad E,
kappa_2 = Sigma). Moments from cumulants by set partitions, contracted with the symmetric nabla^k phi:

    P_h phi = E[phi(theta + Delta)] = sum over multisets {c_1, ..., c_r} of
              prod_i kappa_{c_i}(Delta) / c_i! / prod_c (multiplicity of c)! : nabla^{c_1 + ... + c_r} phi,

so P_h = 1 + h A_1 + h^2 A_2 + ... with A_k tensor networks (`_tensor_networks`). The modified
generator L~ = log(P_h)/h follows by the recursion of `_generator.generator_series`, with
composition by Leibniz's rule on networks. Same mathematics as the concrete engine (Debussche & Faou,
SIAM J. Numer. Anal. 50 (2012), doi:10.1137/110831544; Li, Tai & E, JMLR 20 (2019),
arXiv:1811.01558), written once for every dimension. The finite-population cumulants of a sample
mean are Tukey's (Ann. Math. Statist. 21 (1950), doi:10.1214/aoms/1177729883); kappa_4 and up mix
products of lower cumulants and are refused.
"""

from __future__ import annotations

import functools
import itertools
from math import factorial

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from ..._errors import UnsupportedError
from ._generator import operator_logarithm, tidy
from ._tensor_networks import Network, compose, contract, scaled_sum

__all__ = ["EXAMPLES", "coordinate_free_generator", "evaluate_generator", "increment_cumulants"]

#: The number of examples N, in the without-replacement factors (substituted by `evaluate_generator`).
EXAMPLES = sp.Symbol("N", positive=True, integer=True)


def increment_cumulants(rule, order: int) -> list[tuple[int, int, sp.Expr, tuple]]:
    """(c, power of h, coefficient, node) per cumulant kappa_c(Delta) = coefficient h^power node."""
    from ...rules._stochastic import SGD, Langevin

    if type(rule) is Langevin:
        return [(1, 1, sp.Integer(-1), ("E", 1)), (2, 1, 2 * sp.sympify(rule.temperature), ("I",))]
    if type(rule) is not SGD:
        raise UnsupportedError(
            f"the coordinate-free stochastic view covers sgd and langevin, not {rule.name}; "
            "derive it on concrete per-example losses (losses=[...], params=[...])"
        )
    B = sp.Integer(rule.batch_size)
    if rule.replacement:
        factors = {c: 1 / B ** (c - 1) for c in range(2, order + 2)}
    else:
        if order + 1 >= 4:
            raise UnsupportedError(
                f"sgd without replacement at order {order} needs the 4th cumulant of a sample mean drawn without "
                "replacement, which mixes products of the per-example cumulants; use order <= 2 coordinate-free, "
                "or pass losses=[...] for the concrete view"
            )
        N = EXAMPLES
        factors = {2: (N - B) / (B * (N - 1)), 3: (N - B) * (N - 2 * B) / (B**2 * (N - 1) * (N - 2))}
    pieces = [(1, 1, sp.Integer(-1), ("E", 1))]
    for c in range(2, order + 2):
        pieces.append((c, c, (-1) ** c * factors[c], ("K", c, 0)))
    return pieces


def one_step_operators(pieces, order: int) -> list[dict]:
    """A_1..A_{order+1} of P_h = 1 + sum_k h^k A_k, from the increment's cumulants (module docstring)."""
    ops: list[dict] = [{} for _ in range(order + 1)]
    bounds = [(order + 1) // power for _, power, _, _ in pieces]
    for counts in itertools.product(*(range(b + 1) for b in bounds)):
        k = sum(m * power for m, (_, power, _, _) in zip(counts, pieces))
        if not 1 <= k <= order + 1:
            continue
        coefficient = sp.Integer(1)
        nodes, edges = [("phi", sum(m * c for m, (c, _, _, _) in zip(counts, pieces)))], []
        for m, (c, _, value, node) in zip(counts, pieces):
            coefficient *= (value / factorial(c)) ** m / factorial(m)
            for _ in range(m):
                nodes.append(node)
                edges += [((len(nodes) - 1, 0), (0, 0))] * c
        network = Network.canonical(nodes, edges)
        ops[k - 1][network] = tidy(ops[k - 1].get(network, 0) + coefficient)
    return ops


def generator_series(ops: list[dict]) -> list[dict]:
    """L_0..L_p from A_1..A_{p+1} on tensor networks (the recursion of `_generator.operator_logarithm`)."""
    return operator_logarithm(ops, lambda a, b: compose(a, b, tidy), lambda terms: scaled_sum(terms, tidy))


def coordinate_free_generator(rule, order: int) -> list[dict]:
    """L_0..L_order of `rule` (SGD or Langevin), each {Network: coefficient}, valid in every dimension."""
    return generator_series(one_step_operators(increment_cumulants(rule, order), order))


def evaluate_generator(generator, losses, params) -> list[dict]:
    """Each L_l on concrete per-example losses: {alpha: coefficient of d^alpha} (the concrete engine's form).

    E is the mean of `losses`, kappa_c the cumulants of their gradients under the uniform index;
    EXAMPLES is replaced by len(losses).
    """
    tensor_of = _tensors(tuple(losses), tuple(params))
    n = sp.Integer(len(losses))
    out = []
    for op in generator:
        total: dict = {}
        for network, c in op.items():
            c = c.xreplace({EXAMPLES: n}) if c.has(EXAMPLES) else c
            for alpha, value in contract(network, tensor_of, len(params)).items():
                total.setdefault(alpha, []).append(c * value)
        values = {alpha: tidy(sp.Add(*parts)) for alpha, parts in total.items()}
        out.append({alpha: v for alpha, v in values.items() if v != 0})
    return out


def _tensors(losses: tuple, params: tuple):
    """tensor_of(node) on concrete losses, cached: {index tuple: value} with the zeros left out."""
    dim, count = len(params), len(losses)
    mean = sp.Add(*losses) / count
    gradients = [[sp.diff(loss, p) for p in params] for loss in losses]

    def moment(indices):
        return sp.expand(sp.Add(*(sp.Mul(*(g[i] for i in indices)) for g in gradients)) / count)

    def cumulant(indices):
        # kappa = sum over set partitions pi of (-1)^(|pi|-1) (|pi|-1)! prod_blocks moment(block)
        total = sp.Integer(0)
        for blocks in multiset_partitions(list(range(len(indices)))):
            r = len(blocks)
            total += (-1) ** (r - 1) * factorial(r - 1) * sp.Mul(*(moment([indices[i] for i in b]) for b in blocks))
        return sp.expand(total)

    @functools.lru_cache(maxsize=None)
    def tensor_of(node):
        kind = node[0]
        out = {}
        if kind == "I":
            return {(i, i): sp.Integer(1) for i in range(dim)}
        slots = node[1] if kind == "E" else node[1] + node[2]
        for index in itertools.product(range(dim), repeat=slots):
            if kind == "E":
                value = sp.diff(mean, *(params[i] for i in index))
            else:
                base = cumulant(index[: node[1]])
                value = sp.diff(base, *(params[i] for i in index[node[1]:])) if node[2] else base
            value = sp.expand(value)
            if value != 0:
                out[index] = value
        return out

    return tensor_of
