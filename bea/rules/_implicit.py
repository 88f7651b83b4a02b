"""Implicit gradient rules: proximal point (implicit GD), implicit midpoint, implicit SGD steps.

Each step is an implicit equation for theta', written with `bea.rules.fixed_point`: the engine solves it
exactly as a power series in h, `bea.iterate` to round-off. Implicit Runge-Kutta tableaus (backward
Euler, Gauss, Radau IIA, Lobatto) are `bea.rules.RungeKutta` rules (`bea.rules.IMPLICIT_TABLEAUS`).
"""

from __future__ import annotations

import dataclasses

from ._base import Rule
from ._composite import SGDSteps
from ._operations import fixed_point

__all__ = ["ImplicitGD", "ImplicitMidpoint", "ImplicitSGDSteps"]


@dataclasses.dataclass(frozen=True)
class ImplicitGD(Rule):
    """Implicit gradient descent, the proximal point method: theta' = theta - h grad E(theta').

    theta' = argmin_x E(x) + |x - theta|^2/(2h) where that is strictly convex (Rockafellar,
    "Monotone operators and the proximal point algorithm", SIAM J. Control Optim. 14 (1976) 877,
    doi:10.1137/0314056); on any field it is backward Euler (`bea.rules.BACKWARD_EULER`, the same
    map). Expanding theta' = theta - h g + h^2 H g + O(h^3) (g = grad E, H its Hessian) and matching
    the flow gives the modified field

        f~ = -grad E + (h/2) H grad E + O(h^2) = -grad (E - (h/4) |grad E|^2) + O(h^2),

    the opposite of GD's implicit gradient regularization (Barrett & Dherin, arXiv:2009.11162):
    an anti-regularizer. Its modified coefficients are explicit Euler's with h -> -h (backward
    Euler is explicit Euler's adjoint, and the adjoint's modified field is f~(y, -h); Hairer, Lubich &
    Wanner, Geometric Numerical Integration, Sec. IX.2, doi:10.1007/3-540-30666-8): f_j = (-1)^j f_j(GD).
    """

    name = "implicit-gd"

    def step(self, theta, grad, h):
        return fixed_point(lambda x: theta - h * grad(x), theta)


@dataclasses.dataclass(frozen=True)
class ImplicitMidpoint(Rule):
    """The implicit midpoint rule on the gradient flow: theta' = theta - h grad E((theta + theta')/2).

    The 1-stage Gauss method (`bea.rules.GAUSS2`): symmetric, so its modified field has only even
    powers of h, and symplectic (Hairer, Lubich & Wanner 2006, Sec. IX.1, doi:10.1007/3-540-30666-8):
    with f = -grad E,

        f~ = f + h^2 (-(1/24) f''(f, f) + (1/12) f'f'f) + O(h^4)
           = -grad E + h^2 ((1/24) D^3E[grad E, grad E] - (1/12) H^2 grad E) + O(h^4).
    """

    name = "implicit-midpoint"

    def step(self, theta, grad, h):
        return fixed_point(lambda x: theta - h * grad((theta + x) / 2), theta)


@dataclasses.dataclass(frozen=True)
class ImplicitSGDSteps(SGDSteps):
    """n implicit SGD steps, step i on batch loss E_i: theta_{i+1} = theta_i - h grad E_i(theta_{i+1}).

    Implicit (proximal) stochastic gradient steps (Toulis & Airoldi, "Asymptotic and finite-sample
    properties of estimators based on stochastic gradients", Ann. Statist. 45 (2017) 1694,
    doi:10.1214/16-AOS1506) with the batches in a fixed order: `SGDSteps` (n losses, one step per batch,
    duration n h) with each step solved implicitly. With n = 1 it is `ImplicitGD`.
    """

    name = "implicit-sgd-steps"

    def step(self, theta, grad, h):
        for i in range(self.n):
            theta = fixed_point(lambda x, start=theta, loss=grad[i]: start - h * loss(x), theta)
        return theta
