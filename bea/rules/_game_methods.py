"""Extragradient and optimistic gradient descent in two-player games: explicit methods built against the
rotation of simultaneous GD.

Write g(theta) = (P_1 grad_1 E_1, ratio P_2 grad_2 E_2)(theta) for the game's simultaneous gradient (player 1
owns parameters [0, players[0]), player 2 the rest), so simultaneous GD is theta' = theta - h g(theta).

    extragradient:   theta' = theta - h g(theta - h g(theta))          (Korpelevich 1976)
    optimistic GD:   theta_{n+1} = theta_n - 2 h g(theta_n) + h g(theta_{n-1})   (Popov 1980; Daskalakis et
                     al., "Training GANs with optimism", ICLR 2018, arXiv:1711.00141)

With f = -g, both have f_1 = +1/2 f'f where simultaneous GD has -1/2 f'f: the first correction changes sign,
which turns the outward spiral of GD on a bilinear game into an inward one (Rosca, Wu, Dherin & Barrett,
"Discretization drift in two-player games", ICML 2021, arXiv:2105.13922, Sec. 6; Korpelevich, Ekonomika i
Matematicheskie Metody 12, 1976). Optimistic GD carries the previous gradient as state (decay 0): its
modified equation describes the iterates on the slow manifold, as for every rule with memory.
"""

from __future__ import annotations

import dataclasses

from ._composite import _Game, block
from ._memory import MemoryRule

__all__ = ["Extragradient", "OptimisticGD"]


def _simultaneous_gradient(rule: _Game, theta, grad):
    """g(theta): each player's gradient of its own loss on its own block (player 2's scaled by ratio)."""
    n1, n = rule.players[0], sum(rule.players)
    return block(grad[0](theta), 0, n1) + rule.ratio * block(grad[1](theta), n1, n)


@dataclasses.dataclass(frozen=True)
class Extragradient(_Game):
    """Extragradient (Korpelevich 1976): theta' = theta - h g(theta - h g(theta)), g the simultaneous gradient."""

    name = "extragradient"

    def step(self, theta, grad, h):
        look_ahead = theta - h * _simultaneous_gradient(self, theta, grad)
        return theta - h * _simultaneous_gradient(self, look_ahead, grad)


@dataclasses.dataclass(frozen=True)
class OptimisticGD(MemoryRule, _Game):
    """Optimistic GD (Popov 1980; Daskalakis et al. 2018): theta' = theta - 2 h g(theta) + h s, s' = g(theta),
    with s the previous step's simultaneous gradient (zero at the start, as in implementations)."""

    name = "optimistic-gd"

    def decays(self):
        return (0,)  # s' = g(theta) does not depend on s

    def _decay_names(self):
        return ("previous gradient",)

    def update(self, theta, state, grad, h, n):
        (previous,) = state
        current = _simultaneous_gradient(self, theta, grad)
        return theta - 2 * h * current + h * previous, (current,)
