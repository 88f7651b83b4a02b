"""Coordinate-free SME terms lowered to pytrees by autodiff, against the concrete engine's lowering."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import bea
from bea.lowering._networks import network_vector

a, b = sp.symbols("a b")
T = sp.Symbol("T", positive=True)
LOSS = (a * b - 1) ** 2 / 2 + a**4 / 4 + sp.exp(b) / 3


def jax_loss(p):
    return (p["a"] * p["b"] - 1) ** 2 / 2 + p["a"] ** 4 / 4 + jnp.exp(p["b"]) / 3


def _matrix(noise, params, h, **values):
    columns = [noise(params, h, {"a": e[0], "b": e[1]}, **values) for e in jnp.eye(2)]
    return jnp.stack([jnp.stack([c["a"], c["b"]]) for c in columns], axis=1)


@pytest.mark.parametrize("point", [(0.7, -0.4), (-1.2, 0.5)])
def test_langevin_drift_and_noise_on_a_pytree(point):
    """b_0 + h b_1 (with T/2 grad Laplacian E, a trace) equals the concrete lowering; the noise's square
    is D~ up to O(h^2) (the truncated square-root series): halving h divides the gap by 4."""
    drift, noise = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=T), 1).to_jax(jax_loss)
    concrete_drift, concrete_diffusion = bea.stochastic_modified_equation(
        bea.rules.Langevin(temperature=T), 1, loss=LOSS, params=[a, b]).to_jax()
    theta = jnp.array(point)
    params = {"a": theta[0], "b": theta[1]}
    value = drift(params, 0.05, T=0.3)
    assert np.allclose([value["a"], value["b"]], concrete_drift(theta, 0.05, T=0.3), rtol=1e-12, atol=1e-14)
    gaps = []
    for h in (0.04, 0.02):
        s = _matrix(noise, params, h, T=0.3)
        gaps.append(float(jnp.max(jnp.abs(s @ s.T - concrete_diffusion(theta, h, T=0.3)))))
    assert 3.8 < gaps[0] / gaps[1] < 4.2


def test_order_zero_is_the_langevin_equation():
    """b_0 = -grad E and D_0^{1/2} = sqrt(2T) I, whatever h."""
    drift, noise = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=T), 1).to_jax(jax_loss, order=0)
    params = {"a": jnp.array(0.7), "b": jnp.array(-0.4)}
    gradient = [-(0.7 * -0.4 - 1) * -0.4 - 0.7**3, -(0.7 * -0.4 - 1) * 0.7 - np.exp(-0.4) / 3]
    value = drift(params, 0.3, T=0.5)
    assert np.allclose([value["a"], value["b"]], gradient, rtol=1e-13)
    assert np.allclose(_matrix(noise, params, 0.3, T=0.5), np.eye(2), rtol=1e-13)  # sqrt(2 * 0.5) = 1


def test_double_contractions_and_traces_match_the_concrete_terms():
    """b_2 of Langevin (nabla^3 E : nabla^2 E, traces of nabla^4 E, nabla^5 E) term by term on a loss, summed,
    equals the concrete evaluation of the same coordinate-free terms (`.on`)."""
    cf = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=T), 2, allow_generator=True)
    concrete = cf.on(loss=LOSS, params=[a, b])
    theta = jnp.array([0.6, -0.3])

    def flat(x):
        return jax_loss({"a": x[0], "b": x[1]})

    total = sum(float(c.xreplace({T: sp.Rational(1, 4)})) * network_vector(n, flat, 0)(theta)
                for n, c in cf.drift[2].items())
    point = {a: sp.Rational(3, 5), b: -sp.Rational(3, 10), T: sp.Rational(1, 4)}
    expected = [float(sp.N(component.xreplace(point), 30)) for component in concrete.drift[2]]
    assert np.allclose(total, expected, rtol=1e-11)
    assert any(len(n.edges) > len(n.nodes) - 1 for n in cf.drift[2])  # the check has cut edges in it


def test_refusals():
    with pytest.raises(bea.UnsupportedError, match="bea.sgd_sde"):
        bea.stochastic_modified_equation(bea.rules.SGD(), 1).to_jax(jax_loss)
    with pytest.raises(bea.NoStochasticModifiedEquationError, match="order=1"):
        bea.stochastic_modified_equation(bea.rules.Langevin(), 2, allow_generator=True).to_jax(jax_loss)
    with pytest.raises(bea.InvalidOrderError):
        bea.stochastic_modified_equation(bea.rules.Langevin(), 1).to_jax(jax_loss, order=3)
    drift, _ = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=T), 1).to_jax(jax_loss)
    with pytest.raises(bea.UnsupportedError, match="give values for T"):
        drift({"a": 0.1, "b": 0.2}, 0.1)
