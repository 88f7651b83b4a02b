"""Finite-sum test problems for verifying stochastic modified equations.

A `FiniteSumModel` holds per-example losses E_1..E_N (exact SymPy, with JAX versions for
iterating), E = (1/N) sum_i E_i their mean, and an exact initial point. SGD draws batches of the
E_i; Langevin runs on their mean E. `linear` holds the data (x_i, y_i) of a linear regression,
E_i = (x_i . theta - y_i)^2 / 2, whose moments follow exact linear recursions (`weak_global_error`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import sympy as sp

from ..rules._base import exact

__all__ = ["STOCHASTIC_MODELS", "FiniteSumModel", "stochastic_model"]


@dataclasses.dataclass(frozen=True)
class FiniteSumModel:
    """Per-example losses `losses` (SymPy, in `params`), an exact initial point `theta0` (Rationals).

    `linear`: ((x_1, y_1), ..., (x_N, y_N)) with exact entries when E_i = (x_i . theta - y_i)^2 / 2,
    else None. Build your own with `FiniteSumModel.from_losses` or `FiniteSumModel.linear_regression`.
    """

    name: str
    description: str
    params: tuple[sp.Symbol, ...]
    losses: tuple[sp.Expr, ...]
    theta0: tuple[sp.Expr, ...]
    linear: tuple | None = None

    def __post_init__(self):
        from ._checks import VerificationError

        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "losses", tuple(sp.sympify(loss) for loss in self.losses))
        object.__setattr__(self, "theta0", tuple(exact(v, "theta0") for v in self.theta0))
        if not self.losses:
            raise VerificationError(f"model {self.name}: give at least one per-example loss")
        if len(self.theta0) != len(self.params):
            raise VerificationError(f"model {self.name}: {len(self.params)} params for a theta0 of {len(self.theta0)} entries")
        extra = set().union(*(loss.free_symbols for loss in self.losses)) - set(self.params)
        if extra:
            raise VerificationError(f"model {self.name}: the losses have symbols besides the params: "
                                    f"{', '.join(sorted(map(str, extra)))}; substitute numbers for them")

    @classmethod
    def from_losses(cls, name, losses, params, theta0, description="") -> FiniteSumModel:
        """A model of your own: per-example SymPy losses in `params`, an initial point (made exact)."""
        return cls(name, description or name, tuple(params), tuple(losses), tuple(theta0))

    @classmethod
    def linear_regression(cls, name, xs, ys, theta0, description="") -> FiniteSumModel:
        """E_i = (x_i . theta - y_i)^2 / 2 for the rows x_i of `xs` and the targets `ys` (made exact)."""
        xs = [[exact(v, "xs") for v in row] for row in xs]
        ys = [exact(v, "ys") for v in ys]
        params = sp.symbols(f"w0:{len(xs[0])}")
        losses = [sp.expand((sum(x * p for x, p in zip(row, params)) - y) ** 2 / 2) for row, y in zip(xs, ys)]
        return cls(name, description or name, params, tuple(losses), tuple(theta0),
                   tuple((tuple(row), y) for row, y in zip(xs, ys)))

    @property
    def n_losses(self) -> int:
        return len(self.losses)

    @property
    def mean_loss(self) -> sp.Expr:
        """E = (1/N) sum_i E_i."""
        return sp.expand(sum(self.losses, sp.Integer(0)) / self.n_losses)

    @property
    def polynomial(self) -> bool:
        """Whether every loss is a polynomial in the params (then every weak error here is exact)."""
        return all(loss.is_polynomial(*self.params) for loss in self.losses)

    def largest_hessian_norm(self) -> float:
        """The largest spectral norm of a per-example Hessian at theta0: the scale on which a step is small."""
        start = dict(zip(self.params, self.theta0))
        return max(float(np.linalg.norm(np.array(sp.hessian(loss, self.params).xreplace(start).evalf(), dtype=float), 2))
                   for loss in self.losses)

    def theta0_array(self) -> np.ndarray:
        return np.array([float(v) for v in self.theta0])

    def jax_losses(self) -> tuple[Callable, ...]:
        """One JAX function loss(theta) -> scalar per example."""
        out = []
        for loss in self.losses:
            fn = sp.lambdify([list(self.params)], loss, modules="jax")
            out.append(lambda theta, fn=fn: fn(list(theta)))
        return tuple(out)


def linear_regression() -> FiniteSumModel:
    """Linear regression, E_i = (x_i . w - y_i)^2 / 2 on 4 points in the plane (2 parameters, no bias)."""
    xs = [(1, 0), (1, 1), (sp.Rational(1, 2), -1), (-1, sp.Rational(1, 2))]
    ys = [1, 2, -sp.Rational(1, 2), 0]
    return FiniteSumModel.linear_regression("linear-regression", xs, ys, (sp.Rational(1, 2), -sp.Rational(1, 2)),
                                            linear_regression.__doc__)


def two_param_sum() -> FiniteSumModel:
    """Barrett & Dherin's two-parameter model as a finite sum, E_i = (y_i - a b x_i)^2 / 2, 3 data points."""
    a, b = sp.symbols("a b")
    data = [(1, sp.Rational(3, 5)), (sp.Rational(1, 2), 1), (-1, -sp.Rational(1, 5))]
    losses = [sp.expand((y - a * b * x) ** 2 / 2) for x, y in data]
    return FiniteSumModel("two-param-sum", two_param_sum.__doc__, (a, b), tuple(losses),
                          (sp.Rational(6, 5), sp.Rational(1, 2)))


#: Command-line names of the finite-sum models (`bea verify sgd --stochastic --model NAME`).
STOCHASTIC_MODELS: dict[str, Callable[[], FiniteSumModel]] = {
    "linear-regression": linear_regression,
    "two-param-sum": two_param_sum,
}


def stochastic_model(name: str) -> FiniteSumModel:
    """The finite-sum model of a command-line name (see `STOCHASTIC_MODELS`)."""
    from ._checks import registered

    return registered(STOCHASTIC_MODELS, name, "stochastic model",
                      "bea.verify.FiniteSumModel (the JAX models, bea.verify.JAX_MODELS, take only the Monte Carlo "
                      "check: monte_carlo_weak_error, --monte-carlo)")
