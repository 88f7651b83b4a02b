"""The stochastic rules of issue 14 as objects: construction errors, laws, and iterates that run the very step
the engine averages (each iterate is one of the law's outcomes, computed here by hand)."""

import itertools

import pytest
import sympy as sp

import bea
from bea.rules import SAMSGD, AdamSDE, RMSPropSDE, SGDMomentum, SGDNesterov

u = sp.Symbol("u")
LOSSES = [(u - 1) ** 2 / 2, (u + 1) ** 2 / 2]


def test_construction_errors():
    with pytest.raises(bea.InvalidHyperparameterError, match="friction of sgd-momentum must be >= 0"):
        SGDMomentum(friction=-1)
    with pytest.raises(bea.InvalidHyperparameterError, match="sigma0 of rmsprop-sde must be > 0"):
        RMSPropSDE(sigma0=0)
    with pytest.raises(bea.InvalidHyperparameterError, match="eps0 of adam-sde must be > 0"):
        AdamSDE(eps0=0)
    with pytest.raises(bea.InvalidHyperparameterError, match="batch_size of sam-sgd"):
        SAMSGD(batch_size=0)
    with pytest.raises(bea.InvalidHyperparameterError, match="replacement=True"):
        bea.stochastic_modified_equation(SGDNesterov(batch_size=3, replacement=False), 0, losses=LOSSES, params=[u])
    with pytest.raises(bea.InvalidRuleError, match="needs a random draw.*batch_size=B.*gaussians=k"):
        bea.rules.stochastic_rule(lambda t, g, h, xi: t)
    with pytest.raises(bea.InvalidRuleError, match=r"must accept \(theta, grad, h, xi"):
        bea.rules.stochastic_rule(lambda t, g, h: t, batch_size=1)
    with pytest.raises(bea.InvalidRuleError, match="deterministic bea.rules rule"):
        bea.rules.minibatch(bea.rules.SGD())
    bad_state = bea.rules.stochastic_rule(lambda t, st, g, h, xi: t - h * g(t), batch_size=1, state=["v"])
    with pytest.raises(bea.InvalidRuleError, match="pair of the new theta and the tuple of new states"):
        bea.stochastic_modified_equation(bad_state, 0, losses=LOSSES, params=[u])


def test_laws():
    assert len(SAMSGD(independent=True).law(3, 1).outcomes) == 9  # two independent batches of one
    rule = bea.rules.stochastic_rule(lambda t, g, h, xi: t - h * g(t) + h**0.5 * xi[0] + h * xi[1], batch_size=2,
                                     replacement=False, gaussians=2)
    law = rule.law(3, 2)
    assert len(law.outcomes) == 3 and len(law.gaussians) == 4
    assert sum(p for p, _ in law.outcomes) == 1


def _one_of(x_next, candidates):
    return min(max(abs(float(p) - float(q)) for p, q in zip(x_next, c)) for c in candidates) < 1e-12


def test_momentum_iterates_are_outcomes_of_the_law():
    jax = pytest.importorskip("jax")
    step, c = 0.1, 2.0
    path = SGDMomentum(friction=c).iterate(LOSSES, [0.5], step, 4, jax.random.PRNGKey(0), params=[u])
    assert path.shape == (5, 2) and float(path[0, 1]) == 0.0  # rows (u, v_u), the velocity starts at 0
    for (x, v), nxt in zip(path[:-1].tolist(), path[1:].tolist()):
        candidates = []
        for sign in (-1, 1):  # grad E_i = u -/+ 1
            v_next = (1 - c * step) * v - step * (x + sign)
            candidates.append((x + step * v_next, v_next))
        assert _one_of(nxt, candidates)


def test_adam_and_user_rule_iterates():
    jax = pytest.importorskip("jax")
    path = AdamSDE(c1=1, c2=1, sigma0=1, eps0=1).iterate(LOSSES, [0.5], 0.01, 3, jax.random.PRNGKey(1), params=[u])
    assert path.shape == (4, 3) and bool(jax.numpy.all(jax.numpy.isfinite(path)))
    sgld = bea.rules.stochastic_rule(lambda t, g, h, xi, sigma: t - h * g(t) + h**0.5 * sigma * xi,
                                     batch_size=1, gaussians=1, sigma=0)
    path = sgld.iterate(LOSSES, [0.5], 0.1, 3, jax.random.PRNGKey(2), params=[u])
    for x, y in itertools.pairwise(path[:, 0].tolist()):  # sigma = 0: an SGD step on one of the two losses
        assert _one_of([y], [(x - 0.1 * (x - 1),), (x - 0.1 * (x + 1),)])
    sam = SAMSGD(rho=0.5).iterate(LOSSES, [0.5], 0.1, 2, jax.random.PRNGKey(3), params=[u])
    for x, y in itertools.pairwise(sam[:, 0].tolist()):
        assert _one_of([y], [(x - 0.1 * ((x + 0.5 * (x + k)) + k),) for k in (-1, 1)])
