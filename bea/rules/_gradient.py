"""One-step gradient rules: GD, explicit gradient regularization, SAM, finite-difference GR."""

from __future__ import annotations

import dataclasses
from typing import Any

import sympy as sp

from .._errors import InvalidHyperparameterError
from ._base import Rule

__all__ = ["EGR", "GD", "SAM", "FiniteDifferenceGR"]


@dataclasses.dataclass(frozen=True)
class GD(Rule):
    """Gradient descent, theta_{n+1} = theta_n - h grad E(theta_n).

    Its modified equation starts f~ = -grad E - (h/4) grad |grad E|^2 + O(h^2)
    (Barrett & Dherin, "Implicit Gradient Regularization", ICLR 2021,
    arXiv:2009.11162, Theorem 3.1).
    """

    name = "gd"

    def step(self, theta, grad, h):
        return theta - h * grad(theta)


@dataclasses.dataclass(frozen=True)
class EGR(Rule):
    """Explicit gradient regularization: GD on E_mu = E + mu |grad E|^2.

    theta_{n+1} = theta_n - h (grad E + 2 mu H grad E)(theta_n)
    (Barrett & Dherin 2021, arXiv:2009.11162, eq. 8).
    """

    mu: Any = sp.Symbol("mu")
    name = "egr"

    def step(self, theta, grad, h):
        g = grad(theta)
        return theta - h * (g + 2 * self.mu * grad.hvp(theta, g))


@dataclasses.dataclass(frozen=True)
class SAM(Rule):
    """Sharpness-aware minimization without gradient normalization.

    theta_{n+1} = theta_n - h grad E(theta_n + rho grad E(theta_n))
    (Foret et al., ICLR 2021, arXiv:2010.01412; the unnormalized form analysed by
    Andriushchenko & Flammarion 2022 and by Karakida et al., arXiv:2210.02720,
    Section 5.2). rho is an independent hyperparameter by default (the
    modified field is then exact in rho); tie it to the step with
    `SAM(rho=c * bea.h)`.
    """

    rho: Any = sp.Symbol("rho")
    name = "sam"

    def step(self, theta, grad, h):
        return theta - h * grad(theta + self.rho * grad(theta))


@dataclasses.dataclass(frozen=True)
class FiniteDifferenceGR(Rule):
    """Gradient regularization with a finite-difference Hessian-vector product.

    GD on E + (gamma/2)|grad E|^2 with H grad E replaced by (Karakida et al.,
    "Understanding gradient regularization in deep learning", ICLR 2023,
    arXiv:2210.02720, eqs 3-4):

        forward  (F-GR): (grad E(theta + eps grad E) - grad E(theta)) / eps
        backward (B-GR): (grad E(theta) - grad E(theta - eps grad E)) / eps

    theta_{n+1} = theta_n - h (grad E + gamma Delta R). eps may be tied to the
    step (eps = c*h); gamma = eps gives SAM's step.
    """

    gamma: Any = sp.Symbol("gamma")
    eps: Any = sp.Symbol("epsilon")
    kind: str = dataclasses.field(default="forward", metadata={"choice": True})
    name = "fd-gr"

    def validate(self):
        if self.kind not in ("forward", "backward"):
            raise InvalidHyperparameterError(f"kind must be 'forward' or 'backward', got {self.kind!r}")
        if isinstance(self.eps, sp.Expr) and self.eps.is_zero:
            raise InvalidHyperparameterError(
                "eps = 0 divides by zero; use EGR (double backpropagation) for the exact Hessian product"
            )

    def step(self, theta, grad, h):
        g = grad(theta)
        if self.kind == "forward":
            delta = (grad(theta + self.eps * g) - g) / self.eps
        else:
            delta = (g - grad(theta - self.eps * g)) / self.eps
        return theta - h * (g + self.gamma * delta)
