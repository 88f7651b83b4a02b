"""Random-batch rules with state, in the scalings where they have stochastic modified equations.

A random rule with state is a Markov chain on (theta, state); its SME is an SDE for the joint
vector, and it exists only when every component moves O(h) in mean and O(sqrt h) in
fluctuation per step. With a fixed momentum beta the state moves O(1) per step (the engine
refuses `minibatch(HeavyBall(...))` for that reason); the published SMEs scale the
hyperparameters with the step, and these rules carry that scaling, with the scaled constants
as hyperparameters:

- momentum SGD and Nesterov: Li, Tai & E, JMLR 20 (2019), arXiv:1811.01558, the momentum
  section: learning rate eta, momentum mu = 1 - c sqrt(eta), velocity V = v / sqrt(eta), time
  sqrt(eta) per step. Here h = sqrt(eta).
- RMSProp and Adam: Malladi, Lyu, Panigrahi & Arora, NeurIPS 2022, arXiv:2205.10287, the
  RMSprop and Adam SDEs: time eta^2 per step, 1 - beta = c eta^2, gradient noise of scale
  sigma = sigma0 / eta, eps = eps0 / eta (their sigma0 = sigma eta, eps0 = eps eta), state
  u = v / sigma^2. Here h = eta^2.

Each batch gradient g_B is the mean over a uniform batch (as `bea.rules.SGD`, `batch_size`,
`replacement`); Sigma below is its covariance, Sigma_1 / B with replacement for Sigma_1 the
covariance of the per-example gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sympy as sp

from .._errors import InvalidHyperparameterError
from ._operations import sqrt
from ._stochastic import BatchOracle, NoiseLaw, StochasticRule, batch_law, check_batch, root, sample_batch

__all__ = ["AdamSDE", "RMSPropSDE", "SGDMomentum", "SGDNesterov"]


def _check_sign(rule, name, value, strict):
    value = sp.sympify(value)
    if value.is_number and (value <= 0 if strict else value < 0):
        raise InvalidHyperparameterError(
            f"{name} of {rule.name} must be {'> 0' if strict else '>= 0'}, got {value} (a scaled constant: see the "
            f"docstring of bea.rules.{type(rule).__name__} for the scaling)"
        )


@dataclasses.dataclass(frozen=True)
class _RandomBatch(StochasticRule):
    batch_size: int = dataclasses.field(default=1, metadata={"hyper": False})
    replacement: bool = dataclasses.field(default=True, metadata={"hyper": False})

    def validate(self):
        check_batch(self.name, self.batch_size, self.replacement)

    def law(self, n_losses: int, dim: int) -> NoiseLaw:
        batches = batch_law(self.batch_size, self.replacement, n_losses, self.name)
        p = sp.Rational(1, len(batches))
        return NoiseLaw(tuple((p, b) for b in batches))

    def sample(self, key, n_losses: int, dim: int):
        return sample_batch(key, self.batch_size, self.replacement, n_losses)

    def step(self, theta, grad, h, noise=None):
        raise TypeError(f"{self.name} keeps state; call update(theta, state, grad, h, noise) (the engine and iterate do)")


@dataclasses.dataclass(frozen=True)
class SGDMomentum(_RandomBatch):
    """Heavy-ball momentum SGD in Li, Tai & E's scaling (arXiv:1811.01558, momentum SGD), h = sqrt(eta):

        V' = (1 - c h) V - h g_B(theta),    theta' = theta + h V',

    i.e. v' = mu v - eta g_B, x' = x + v' with eta = h^2, mu = 1 - c h, v = h V (optax.sgd with
    learning_rate=h^2, momentum=1 - c h, trace = -V/h). State V ("v"); `friction` is c.
    SME to leading order: dtheta = V dt, dV = -(c V + grad E) dt + (h Sigma)^{1/2} dW, which is
    Li, Tai & E's momentum SME with their time step sqrt(eta) = h (diffusion sqrt(eta) Sigma).
    """

    friction: Any = sp.Symbol("c", positive=True)
    name = "sgd-momentum"
    state_names = ("v",)

    def validate(self):
        super().validate()
        _check_sign(self, "friction", self.friction, strict=False)

    def update(self, theta, state, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        (v,) = state
        v = (1 - self.friction * h) * v - h * BatchOracle(grad, noise)(theta)
        return theta + h * v, (v,)


@dataclasses.dataclass(frozen=True)
class SGDNesterov(SGDMomentum):
    """Nesterov momentum SGD (Sutskever et al. form) in Li, Tai & E's scaling, h = sqrt(eta):

        V' = (1 - c h) V - h g_B(theta + h (1 - c h) V),    theta' = theta + h V',

    (v' = mu v - eta g_B(x + mu v), x' = x + v'; the same batch for the look-ahead gradient).
    Its SME agrees with `SGDMomentum`'s to leading order; they differ from order 1 on.
    """

    name = "sgd-nesterov"

    def update(self, theta, state, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        (v,) = state
        mu = 1 - self.friction * h
        v = mu * v - h * BatchOracle(grad, noise)(theta + h * mu * v)
        return theta + h * v, (v,)


@dataclasses.dataclass(frozen=True)
class _Adaptive(_RandomBatch):
    """Malladi et al.'s noise and eps scaling, shared by RMSPropSDE and AdamSDE."""

    sigma0: Any = sp.Symbol("sigma_0", positive=True)
    eps0: Any = sp.Symbol("epsilon_0", positive=True)

    def validate(self):
        super().validate()
        _check_sign(self, "sigma0", self.sigma0, strict=True)
        _check_sign(self, "eps0", self.eps0, strict=True)

    def _scaled_gradient(self, theta, grad, h, noise):
        """eta g^ = eta grad E + sigma0 (g_B - grad E): the noise is O(1) here, with no division by eta."""
        full = grad(theta)
        return root(h) * full + self.sigma0 * (BatchOracle(grad, noise)(theta) - full)

    def _second_moment(self, u, scaled, c, h):
        """u' = (1 - c h) u + c h g^^2 / sigma^2 = (1 - c h) u + c h (eta g^)^2 / sigma0^2."""
        return (1 - c * h) * u + c * h * (scaled * scaled) / self.sigma0**2


@dataclasses.dataclass(frozen=True)
class RMSPropSDE(_Adaptive):
    """RMSProp on random batches in Malladi et al.'s scaling (arXiv:2205.10287, RMSprop SDE), h = eta^2:

        g^ = grad E + (sigma0 / eta) (g_B - grad E)                    (noise of scale sigma = sigma0/eta),
        v' = beta v + (1 - beta) g^^2,   theta' = theta - eta g^ / (sqrt(v') + eps),
        1 - beta = c eta^2,   eps = eps0 / eta,   state u = v eta^2 / sigma0^2,

    which in u reads u' = (1 - c h) u + c h (eta g^)^2 / sigma0^2, theta' = theta - h g^ / (sigma0 sqrt(u') + eps0).
    State u ("u"). SME to leading order (their Definition of the RMSprop SDE):
    dtheta = -P^{-1} (grad E dt + sigma0 Sigma^{1/2} dW), du = c (diag Sigma - u) dt,
    P = sigma0 diag(u)^{1/2} + eps0. The fluctuation is O(sqrt h): with a skewed batch noise
    (non-zero third moments) the weak expansion goes in powers of sqrt(h) and no SDE series in h
    exists beyond order 0; with a symmetric one it goes on.
    """

    c: Any = sp.Symbol("c", positive=True)
    name = "rmsprop-sde"
    state_names = ("u",)

    def validate(self):
        super().validate()
        _check_sign(self, "c", self.c, strict=False)

    def update(self, theta, state, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        (u,) = state
        scaled = self._scaled_gradient(theta, grad, h, noise)
        u = self._second_moment(u, scaled, self.c, h)
        return theta - root(h) * scaled / (self.sigma0 * sqrt(u) + self.eps0), (u,)


@dataclasses.dataclass(frozen=True)
class AdamSDE(_Adaptive):
    """Adam (no bias correction: the large-n limit) on random batches in Malladi et al.'s scaling
    (arXiv:2205.10287, Adam SDE), h = eta^2, g^ as for `RMSPropSDE`:

        m' = beta1 m + (1 - beta1) g^,   v' = beta2 v + (1 - beta2) g^^2,   theta' = theta - eta m' / (sqrt(v') + eps),
        1 - beta1 = c1 eta^2,   1 - beta2 = c2 eta^2,   eps = eps0 / eta,   u = v eta^2 / sigma0^2.

    States m, u ("m", "u"). SME to leading order (their Adam SDE at t -> infinity, gamma_i -> 1):
    dtheta = -P^{-1} m dt, dm = c1 (grad E - m) dt + sigma0 c1 Sigma^{1/2} dW,
    du = c2 (diag Sigma - u) dt, P = sigma0 diag(u)^{1/2} + eps0.
    """

    c1: Any = sp.Symbol("c_1", positive=True)
    c2: Any = sp.Symbol("c_2", positive=True)
    name = "adam-sde"
    state_names = ("m", "u")

    def validate(self):
        super().validate()
        _check_sign(self, "c1", self.c1, strict=False)
        _check_sign(self, "c2", self.c2, strict=False)

    def update(self, theta, state, grad, h, noise=None):
        if noise is None:
            self._deterministic()
        m, u = state
        scaled = self._scaled_gradient(theta, grad, h, noise)  # eta g^
        m = (1 - self.c1 * h) * m + self.c1 * root(h) * scaled  # c1 h g^ = c1 eta (eta g^)
        u = self._second_moment(u, scaled, self.c2, h)
        return theta - h * m / (self.sigma0 * sqrt(u) + self.eps0), (m, u)
