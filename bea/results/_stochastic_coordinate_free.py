"""The stochastic modified equation of SGD or Langevin in any dimension: terms in E, its derivative
tensors and the cumulants of the per-example gradient (Sigma, kappa_3, ...)."""

from __future__ import annotations

import dataclasses

import sympy as sp

from .._errors import (
    InvalidHyperparameterError,
    InvalidOrderError,
    NoStochasticModifiedEquationError,
    UnknownSymbolError,
)
from ..engines.stochastic._coordinate_free import evaluate_generator
from ..engines.stochastic._generator import tidy
from ..engines.stochastic._network_notation import LATEX, TEXT, render
from ..engines.stochastic._tensor_networks import Network, phi_degree
from ._stochastic import Obstruction, StochasticModifiedEquation

__all__ = ["CoordinateFreeStochasticModifiedEquation"]


def _ordered(op: dict) -> list:
    """Terms by differential order (highest first, as the concrete text), then by how they are written."""
    return sorted(op.items(), key=lambda item: (-phi_degree(item[0]), render(item[0])))


def _signed(terms, style) -> str:
    """`c_1 t_1 + c_2 t_2 ...` with exact coefficients: `-1/2 ∇²E ∇E`, `(T/2) ∇³E[I]`."""
    parts = []
    for c, body in terms:
        c = c if c.is_Rational else sp.factor(c)  # display only: (N - 2)/(4 (N - 1)), T/2
        negative = c.could_extract_minus_sign()
        magnitude = -c if negative else c
        if magnitude == 1:
            text = body
        elif style is LATEX:
            text = rf"{sp.latex(magnitude)} {body}" if magnitude.is_Rational else rf"\left({sp.latex(magnitude)}\right) {body}"
        else:
            text = f"{magnitude} {body}" if magnitude.is_Rational else f"({sp.sstr(magnitude)}) {body}"
        parts.append(("- " if negative else "+ ") + text)
    if not parts:
        return "0"
    joined = " ".join(parts)
    return joined[2:] if joined.startswith("+ ") else "-" + joined[2:]


def _operator(op: dict, style) -> str:
    """L = sum c N : nabla^m, `· ∇` for m = 1."""
    def body(network):
        m = phi_degree(network)
        tensor = render(network, style)
        if style is LATEX:
            return rf"{tensor} \cdot \nabla" if m == 1 else rf"{tensor} : \nabla^{{{m}}}"
        return f"{tensor} · ∇" if m == 1 else f"{tensor} : ∇{str(m).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))}"

    return _signed([(c, body(n)) for n, c in _ordered(op)], style)


@dataclasses.dataclass(frozen=True)
class CoordinateFreeStochasticModifiedEquation:
    """dX = b~ dt + D~^{1/2} dW for SGD or Langevin, every term a tensor network valid in any dimension.

    `generator[l]` is the modified generator's L_l as {Network: coefficient}: the coefficient times
    the network contracted with nabla^m phi (`bea.engines.stochastic._tensor_networks`). Nodes are
    E's derivative tensors nabla^k E, the cumulant tensors kappa_c of the per-example gradient
    g = grad E_I (I uniform; kappa_2 = Sigma) and their derivatives, and the identity. Exact
    coefficients: Rationals, the temperature T, and N (the number of examples, SGD without replacement).

    `drift[l]` is b_l (the terms with m = 1), `diffusion[l]` is D_l (twice the terms with m = 2; a
    product such as nabla^2 E Sigma stands for its symmetric part). For SGD with batch size B,
    order 1 is Li, Tai & E's (JMLR 2019, arXiv:1811.01558): b_0 = -grad E, b_1 = -1/2 nabla^2 E grad E,
    D_0 = 0, D_1 = Sigma/B. `obstruction` is None, or the first order with terms of differential
    order >= 3 (for SGD -1/6 kappa_3/B^2 : nabla^3 at order 2), as for the concrete
    `StochasticModifiedEquation`; `on(losses=..., params=...)` gives that concrete result.
    """

    rule: object
    order: int
    generator: tuple[dict, ...]
    obstruction: Obstruction | None = None

    @classmethod
    def from_generator(cls, rule, order: int, generator, note=lambda l, k: ""):
        """The result with its obstruction: the first L_l with terms of differential order >= 3."""
        obstruction = None
        for l, op in enumerate(generator):
            higher = {n: c for n, c in op.items() if phi_degree(n) >= 3}
            if higher:
                k = max(phi_degree(n) for n in higher)
                obstruction = Obstruction(l, k, higher, note(l, k))
                break
        return cls(rule, order, tuple(generator), obstruction)

    @property
    def drift(self) -> tuple[dict, ...]:
        """b_l as {Network (one free slot): coefficient}."""
        return tuple({n: c for n, c in op.items() if phi_degree(n) == 1} for op in self.generator)

    @property
    def diffusion(self) -> tuple[dict, ...]:
        """D_l as {Network (two free slots): coefficient}: twice L_l's second-order part (symmetric part meant)."""
        return tuple({n: tidy(2 * c) for n, c in op.items() if phi_degree(n) == 2} for op in self.generator)

    def _terms(self, part: dict, style) -> str:
        return _signed([(c, render(n, style)) for n, c in _ordered(part)], style)

    def text(self) -> str:
        """b_l and D_l per order (`b_1 = -1/2 ∇²E ∇E`, `D_1 = Σ`), and the obstruction if any."""
        lines = []
        for l in range(self.order + 1):
            lines.append(f"b_{l} = {self._terms(self.drift[l], TEXT)}")
            lines.append(f"D_{l} = {self._terms(self.diffusion[l], TEXT)}")
        if self.obstruction is not None:
            lines.append(f"no SDE beyond order {self.obstruction.order - 1}: {self.obstruction_text()}")
        return "\n".join(lines)

    def obstruction_text(self) -> str:
        """`order l: <terms of differential order >= 3> (note)`; empty without an obstruction."""
        o = self.obstruction
        if o is None:
            return ""
        return f"order {o.order}: {_operator(o.terms, TEXT)}" + (f" ({o.note})" if o.note else "")

    def generator_text(self) -> str:
        """L_0, L_1, ... with every term: `L_1 = 1/2 Σ : ∇² - 1/2 ∇²E ∇E · ∇`."""
        return "\n".join(f"L_{l} = {_operator(op, TEXT)}" for l, op in enumerate(self.generator))

    def latex(self) -> str:
        """b_l and D_l as LaTeX (aligned)."""
        rows = []
        for l in range(self.order + 1):
            rows.append(rf"b_{{{l}}} &= {self._terms(self.drift[l], LATEX)}")
            rows.append(rf"D_{{{l}}} &= {self._terms(self.diffusion[l], LATEX)}")
        return r"\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}"

    def generator_latex(self) -> str:
        """L_0, L_1, ... as LaTeX (aligned), every differential order."""
        rows = [rf"L_{{{l}}} &= {_operator(op, LATEX)}" for l, op in enumerate(self.generator)]
        return r"\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}"

    def to_dict(self) -> dict:
        """JSON-serializable: {"rule", "hyperparameters", "view", "order", "drift", "diffusion", "generator",
        "obstruction"}; each term {"coefficient", "text", "latex", "differential_order", "nodes", "edges"}
        (coefficients as strings `sympy.sympify` parses back; nodes and edges the canonical network)."""
        def term(network: Network, c) -> dict:
            return {
                "coefficient": str(c), "text": render(network, TEXT), "latex": render(network, LATEX),
                "differential_order": phi_degree(network),
                "nodes": [list(n) for n in network.nodes],
                "edges": [[list(a), list(b)] for a, b in network.edges],
            }

        def terms(op):
            return [term(n, c) for n, c in _ordered(op)]

        o = self.obstruction
        return {
            "rule": getattr(self.rule, "name", str(self.rule)),
            "hyperparameters": {k: str(v) for k, v in getattr(self.rule, "hyperparameters", {}).items()},
            "view": "stochastic modified equation, coordinate-free",
            "order": self.order,
            "drift": [terms(op) for op in self.drift],
            "diffusion": [terms(op) for op in self.diffusion],
            "generator": [terms(op) for op in self.generator],
            "obstruction": None if o is None else {
                "order": o.order, "differential_order": o.differential_order, "terms": terms(o.terms), "note": o.note,
            },
        }

    def to_jax(self, loss, *, order: int | None = None, allow_float32: bool = False):
        """(drift, noise) on parameter pytrees, by automatic differentiation (no Hessian, no tensor formed):
        `drift(params, h, **values)` = b_0 + ... + h^order b_order and `noise(params, h, xi, **values)` =
        D~^{1/2} xi (binomial series of the square root, exact through h^order), `loss(params)` a scalar
        JAX function, `values` the symbols left (the temperature T). Traces and double contractions
        cost one pass per basis vector (`bea.lowering._networks`). For Langevin; SGD's noise is
        O(h) and needs the data: `bea.sgd_sde(loss, data, batch_size=B)`. Refused at or past the
        obstruction, where no SDE exists.
        """
        from ..lowering._networks import lower_coordinate_free

        order = self.order if order is None else order
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= self.order:
            raise InvalidOrderError(f"order {order!r} is outside 0..{self.order} derived")
        if self.obstruction is not None and order >= self.obstruction.order:
            raise NoStochasticModifiedEquationError(
                f"no SDE matches {getattr(self.rule, 'name', self.rule)} at order {self.obstruction.order}; pass "
                f"order={self.obstruction.order - 1} to lower the SDE that exists"
            )
        if not callable(loss):
            raise UnknownSymbolError(f"loss must be a JAX function loss(params) -> scalar, got {loss!r}")
        return lower_coordinate_free(self, loss, order, allow_float32=allow_float32)

    def on(self, *, loss: sp.Expr | None = None, losses=None, params, order: int | None = None
           ) -> StochasticModifiedEquation:
        """The terms on concrete per-example losses: the concrete `StochasticModifiedEquation` (E their mean,
        kappa_c the cumulants of their gradients under a uniform index, N = len(losses))."""
        from ..engines.series._problem import Problem

        if (loss is None) == (losses is None):
            raise UnknownSymbolError("give exactly one of loss= or losses= (per-example losses E_1..E_N)")
        losses = [loss] if loss is not None else list(losses)
        order = self.order if order is None else order
        if not 0 <= order <= self.order:
            raise InvalidOrderError(f"order {order} is outside 0..{self.order} derived")
        if getattr(self.rule, "name", "") == "langevin" and len(losses) != 1:
            raise UnknownSymbolError(f"langevin takes one loss, got {len(losses)}; pass loss= their mean")
        if getattr(self.rule, "replacement", True) is False and self.rule.batch_size > len(losses):
            # the finite-population factor (N - B)/(B (N - 1)) is negative there: a silently negative diffusion
            raise InvalidHyperparameterError(
                f"batch_size {self.rule.batch_size} of {self.rule.name} is larger than the {len(losses)} losses given, "
                "which sampling without replacement cannot draw; give at least batch_size losses, or derive with "
                "replacement=True"
            )
        problem = Problem.build(losses, list(params), reserved=self.rule.free_symbols)
        generator = evaluate_generator(self.generator[: order + 1], problem.losses, problem.params)
        return StochasticModifiedEquation.from_generator(
            self.rule, problem.params, problem.losses, order, generator,
            note=lambda l, k: self.obstruction.note if self.obstruction and l == self.obstruction.order else "",
        )
