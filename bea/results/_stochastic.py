"""The stochastic modified equation of a stochastic rule, on concrete losses."""

from __future__ import annotations

import dataclasses

import sympy as sp

from .._errors import InvalidArrayError, InvalidOrderError, NoStochasticModifiedEquationError
from ..engines.series._jet import STEP_SIZE

__all__ = ["Obstruction", "StochasticModifiedEquation"]


def sorted_terms(op: dict) -> list:
    """The (alpha, c) of an operator by differential order, then d_p before d_q for p before q."""
    return sorted(op.items(), key=lambda item: (sum(item[0]), tuple(-k for k in item[0])))


def _operator_text(op: dict, params) -> str:
    parts = []
    for alpha, c in sorted_terms(op):
        d = "*".join(f"d_{p}" + (f"^{k}" if k > 1 else "") for p, k in zip(params, alpha) if k)
        parts.append(f"({sp.sstr(c)})*{d}")
    return " + ".join(parts) if parts else "0"


@dataclasses.dataclass(frozen=True)
class Obstruction:
    """Where no Brownian SDE matches the one-step law: the first order with differential-order >= 3 terms.

    `order` is l (the terms sit in L_l, at h^l of the generator), `terms` the coefficients
    {alpha: c_alpha} of those terms with |alpha| >= 3, `differential_order` the largest |alpha|.
    """

    order: int
    differential_order: int
    terms: dict
    note: str = ""

    def text(self, params) -> str:
        """`order l: c d^alpha + ...`, with the rule's reading of the leading term when it has one."""
        body = _operator_text(self.terms, params)
        return f"order {self.order}: {body}" + (f" ({self.note})" if self.note else "")


@dataclasses.dataclass(frozen=True)
class StochasticModifiedEquation:
    """dX = b~ dt + D~^{1/2} dW, b~ = b_0 + h b_1 + ..., D~ = D_0 + h D_1 + ..., on concrete losses.

    Its generator b~ . grad + 1/2 D~ : hess matches the rule's one-step expectation operator:
    for every smooth phi, E[phi(Phi_h(theta))] - E[phi(X_h) | X_0 = theta] = O(h^{order+2}) when
    b~, D~ are truncated after h^order (Li, Tai & E, JMLR 2019, arXiv:1811.01558, Thm 3 to
    first order; Debussche & Faou, SIAM J. Numer. Anal. 50, 2012, for the operator logarithm).

    `drift[l]` is b_l (a column), `diffusion[l]` is D_l (a symmetric matrix), exact.
    `generator[l]` is L_l = b_l . grad + 1/2 D_l : hess + (terms of differential order >= 3),
    as {alpha: coefficient of d^alpha}: the full modified generator log(P_h)/h, SDE or not.
    `obstruction` is None when every L_l is of order <= 2 (an SDE exists to this order); else
    the first order with higher terms (the result exists only when asked for with
    allow_generator=True; drift and diffusion are then the first- and second-order parts).
    D~ is a covariance only as a series: its positive semi-definiteness is not checked.
    """

    rule: object
    params: tuple[sp.Symbol, ...]
    losses: tuple[sp.Expr, ...]
    order: int
    drift: tuple[sp.ImmutableMatrix, ...]
    diffusion: tuple[sp.ImmutableMatrix, ...]
    generator: tuple[dict, ...]
    obstruction: Obstruction | None = None

    @classmethod
    def from_generator(cls, rule, params, losses, order, generator, note=lambda l, k: ""):
        """Read b_l and D_l off L_l: c_{e_i} = b_i, c_{2 e_i} = D_ii / 2, c_{e_i + e_k} = D_ik (i != k)."""
        dim = len(params)
        drift, diffusion, obstruction = [], [], None
        for l, op in enumerate(generator):
            b = [sp.Integer(0)] * dim
            d = sp.zeros(dim, dim)
            higher = {}
            for alpha, c in op.items():
                support = [i for i, k in enumerate(alpha) for _ in range(k)]
                if len(support) == 1:
                    b[support[0]] = c
                elif len(support) == 2:
                    i, k = support
                    if i == k:
                        d[i, i] = 2 * c  # 1/2 D_ii d_i^2
                    else:
                        d[i, k] = d[k, i] = c  # 1/2 (D_ik + D_ki) d_i d_k
                else:
                    higher[alpha] = c
            if higher and obstruction is None:
                k = max(sum(a) for a in higher)
                obstruction = Obstruction(l, k, higher, note(l, k))
            drift.append(sp.ImmutableMatrix(b))
            diffusion.append(sp.ImmutableMatrix(d))
        return cls(rule, tuple(params), tuple(losses), order, tuple(drift), tuple(diffusion), tuple(generator), obstruction)

    @property
    def h(self) -> sp.Symbol:
        """The step-size symbol."""
        return STEP_SIZE

    def drift_field(self, order: int | None = None) -> sp.ImmutableMatrix:
        """b_0 + h b_1 + ... + h^order b_order."""
        order = self._order(order)
        return sp.ImmutableMatrix(sum((STEP_SIZE**l * sp.Matrix(self.drift[l]) for l in range(order + 1)),
                                      sp.zeros(len(self.params), 1)))

    def diffusion_matrix(self, order: int | None = None) -> sp.ImmutableMatrix:
        """D_0 + h D_1 + ... + h^order D_order."""
        order = self._order(order)
        n = len(self.params)
        return sp.ImmutableMatrix(sum((STEP_SIZE**l * sp.Matrix(self.diffusion[l]) for l in range(order + 1)),
                                      sp.zeros(n, n)))

    def apply_generator(self, phi: sp.Expr, order: int | None = None) -> sp.Expr:
        """(L_0 + h L_1 + ... + h^order L_order) phi, every term of the generator included."""
        order = self._order(order)
        total = sp.Integer(0)
        for l in range(order + 1):
            for alpha, c in self.generator[l].items():
                spec = [x for p, k in zip(self.params, alpha) for x in (p, k) if k]
                total += STEP_SIZE**l * c * sp.diff(phi, *spec)
        return sp.expand(total)

    def _order(self, order):
        order = self.order if order is None else order
        if not 0 <= order <= self.order:
            raise InvalidOrderError(f"order {order} is outside 0..{self.order} derived")
        return order

    def text(self) -> str:
        """b_l and D_l per order, one line per component; the obstruction if any."""
        lines = []
        for l in range(self.order + 1):
            for i, p in enumerate(self.params):
                lines.append(f"b_{l}[{p}] = {sp.sstr(self.drift[l][i])}")
            for i, p in enumerate(self.params):
                for k in range(i, len(self.params)):
                    lines.append(f"D_{l}[{p},{self.params[k]}] = {sp.sstr(self.diffusion[l][i, k])}")
        if self.obstruction is not None:
            lines.append(f"no SDE beyond order {self.obstruction.order - 1}: {self.obstruction.text(self.params)}")
        return "\n".join(lines)

    def latex(self) -> str:
        """b~ and D~ as LaTeX (aligned), truncated after h^order."""
        b = sp.latex(self.drift_field())
        d = sp.latex(self.diffusion_matrix())
        return rf"\begin{{aligned}} \tilde b &= {b} \\ \tilde D &= {d} \end{{aligned}}"

    def generator_latex(self) -> str:
        """L_0, L_1, ... as LaTeX (aligned), every differential order."""
        rows = []
        for l, op in enumerate(self.generator):
            parts = []
            for alpha, c in sorted_terms(op):
                d = " ".join(rf"\partial_{{{sp.latex(p)}}}" + (f"^{{{k}}}" if k > 1 else "")
                             for p, k in zip(self.params, alpha) if k)
                parts.append(rf"\left({sp.latex(c)}\right) {d}")
            rows.append(rf"L_{{{l}}} &= {' + '.join(parts) if parts else '0'}")
        return r"\begin{aligned} " + r" \\ ".join(rows) + r" \end{aligned}"

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """Every symbol in the drift, diffusion and generator other than the parameters and h."""
        found = set()
        for op in self.generator:
            for c in op.values():
                found |= c.free_symbols
        for m in (*self.drift, *self.diffusion):
            found |= m.free_symbols
        return tuple(sorted(found - set(self.params) - {STEP_SIZE}, key=str))

    def to_jax(self, *, order: int | None = None, allow_float32: bool = False):
        """(drift, diffusion): jitted JAX functions `drift(theta, h, **symbols) -> (n,)` and
        `diffusion(theta, h, **symbols) -> (n, n)` of b~ and D~ truncated after h^order.

        Both take the same keywords (the symbols left in either: hyperparameters, loss constants),
        traced, so new values do not recompile; jax.vmap over a call for a batch. Needs JAX's x64
        mode unless allow_float32 (see `bea.lowering.lower_expressions`). Raises
        `NoStochasticModifiedEquationError` for an order at or past the obstruction, where b~ and D~
        are only parts of the generator and no SDE has it.
        """
        from ..lowering import lower_expressions

        order = self._order(order)
        if self.obstruction is not None and order >= self.obstruction.order:
            raise NoStochasticModifiedEquationError(
                f"no SDE matches {getattr(self.rule, 'name', self.rule)} at order {self.obstruction.order} (its "
                f"generator has differential-order-{self.obstruction.differential_order} terms); pass "
                f"order={self.obstruction.order - 1} to lower the SDE that exists"
            )
        n = len(self.params)
        common = dict(allow_float32=allow_float32, extra_symbols=self.symbols)
        drift = lower_expressions(list(self.drift_field(order)), self.params, scalar=False,
                                  description="b_0 + h b_1 + ... (truncated drift)", **common)
        diffusion = lower_expressions(list(self.diffusion_matrix(order)), self.params, scalar=False, shape=(n, n),
                                      description="D_0 + h D_1 + ... (truncated diffusion matrix)", **common)
        return drift, diffusion

    def sample_paths(self, theta0, h: float, times, *, key, n_paths: int, solver=None, dt0: float | None = None,
                     order: int | None = None, **values):
        """Array (n_paths, len(times), n): X at `times` (>= 0, non-decreasing) on independent paths of
        dX = b~ dt + D~^{1/2} dW from X_0 = theta0, b~ and D~ truncated after h^order (`to_jax`).

        Solved by diffrax on a fixed grid through `times` with steps of at most `dt0` (default
        min(h, h^(order+1))/4, so the solver's weak error O(dt0) stays below the SME's own
        O(h^(order+1))), one `VirtualBrownianTree` per path from `jax.random.split(key, n_paths)`.
        `solver` defaults to `diffrax.Euler()` (Euler–Maruyama, Itô, weak order 1); a Stratonovich
        solver (Heun, ShARK, SRA1, ...) is accepted only when D~ does not depend on the parameters.
        D~^{1/2} is the PSD square root by eigendecomposition; D~ is a covariance only as a series,
        so negative eigenvalues are clipped to 0, with a RuntimeWarning when one is below -1e-12
        relative to the largest. `values`: the symbols left (`symbols`), as for `to_jax`. Needs float64.
        """
        import math

        from ..lowering._sde import sample_paths

        order = self._order(order)
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
            raise InvalidArrayError(f"h must be a positive number (the step size), got {h!r}")
        drift, diffusion = self.to_jax(order=order)
        if dt0 is None:
            dt0 = min(h, h ** (order + 1)) / 4
        constant = not (self.diffusion_matrix(order).free_symbols & set(self.params))
        return sample_paths(drift, diffusion, theta0, float(h), times, key=key, n_paths=n_paths, solver=solver,
                            dt0=dt0, constant_diffusion=constant, values=values,
                            what=f"the stochastic modified equation of {getattr(self.rule, 'name', self.rule)}")

    def to_dict(self) -> dict:
        """A JSON-serializable summary (see `bea.exports._json.stochastic_to_dict`)."""
        from ..exports._json import stochastic_to_dict

        return stochastic_to_dict(self)

    def generator_text(self) -> str:
        """L_0, L_1, ... as sums of coefficient * d_p^k (every differential order)."""
        return "\n".join(f"L_{l} = {_operator_text(op, self.params)}" for l, op in enumerate(self.generator))
