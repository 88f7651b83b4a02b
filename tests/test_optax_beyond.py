"""Optimizers beyond the symbolic engine: optax.lion, optax.adafactor, optax.contrib.muon, optax.contrib.ademamix.

For each, `bea.from_optax` on a 8-16-4 tanh MLP (212 parameters, two weight matrices) is checked against what can be
derived by hand, on a path that shares no code with the engine (no slow manifold, no series in h, no log of the
iterates), and its local-error slopes against the optimizer's own iterates (slow tests).

The hand derivation. Let a step be theta' = theta + h U(theta, s'), whose state is a set of moving averages updated
before they are used, s_i' = b_i s_i + (1 - b_i) phi_i(theta) (Adam's moments, Adafactor's factored moments,
momentum). At h = 0 the state sits at s = phi(theta); on the slow manifold s = phi + h S_1 + O(h^2), and invariance
(s' evaluated at theta' = theta + h f_0) gives S_1 = -phi' f_0 / (1 - b), so s' = phi - h b / (1 - b) phi' f_0.
Then theta' = theta + h f_0 + h^2 F_1 with f_0 = U(theta, phi(theta)) and F_1 = -sum_i b_i / (1 - b_i) d_{s_i}U phi_i' f_0,
and the modified field of theta + h f_0 + h^2 F_1 + ... has f_1 = F_1 - f_0' f_0 / 2 (Hairer, Lubich & Wanner,
doi:10.1007/3-540-30666-8, Sect. IX.1):

    f_1 = -1/2 f_0' f_0  -  sum_i b_i / (1 - b_i) d_{s_i}U(theta, phi) [phi_i' f_0]
          (Euler's correction)   (the lag of each moving average behind its target)

`first_correction_by_hand` evaluates this with jvps of hand-written U and phi.

Counters are held (`count`, bias corrections at their limit): Adafactor's decay 1 - (count + 1)^-0.8 tends to 1,
so it is held at count = 100 (decay 0.975).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from optax.contrib._muon import orthogonalize_via_newton_schulz  # not exported by optax.contrib (0.2.8)

import bea

jax.config.update("jax_enable_x64", True)


def tanh_mlp(seed, n_in, n_hidden, n_out, n_data=32):
    """(params, loss): a one-hidden-layer tanh MLP on fixed Gaussian data (no input is identically 0), squared loss."""
    rng = np.random.default_rng(seed)
    x, y = jnp.asarray(rng.normal(size=(n_data, n_in))), jnp.asarray(rng.normal(size=(n_data, n_out)))
    params = {"w1": jnp.asarray(rng.normal(size=(n_in, n_hidden)) / np.sqrt(n_in)),
              "b1": jnp.asarray(rng.normal(size=n_hidden) / 4),
              "w2": jnp.asarray(rng.normal(size=(n_hidden, n_out)) / np.sqrt(n_hidden)),
              "b2": jnp.asarray(rng.normal(size=n_out) / 4)}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2) / 2

    return params, loss


PARAMS, loss = tanh_mlp(0, 8, 16, 4)
grad = jax.grad(loss)
MATRICES, VECTORS = ("w1", "w2"), ("b1", "b2")


def tree(fn, *trees):
    return jax.tree_util.tree_map(fn, *trees)


def flat(t):
    return ravel_pytree(t)[0]


def relative(a, b) -> float:
    return float(jnp.linalg.norm(flat(a) - flat(b)) / jnp.linalg.norm(flat(b)))


def first_correction_by_hand(update, targets, rates, params):
    """(f_0, f_1) of theta' = theta + h update(theta, s'), s_i' = b_i s_i + (1 - b_i) targets(theta)_i (module docstring).

    `targets(theta)` returns a tuple of state pytrees, `rates` the b_i in the same order."""
    def leading(theta):
        return update(theta, targets(theta))

    f0, euler = jax.jvp(leading, (params,), (leading(params),))
    settled, moved = jax.jvp(targets, (params,), (f0,))
    lag = tuple(tree(lambda x, b=b: b / (1 - b) * x, m) for b, m in zip(rates, moved, strict=True))
    _, memory = jax.jvp(lambda state: update(params, state), (settled,), (lag,))
    return f0, tree(lambda e, m: -e / 2 - m, euler, memory)


def asymmetry(vector_field) -> float:
    """|v.J w - w.J v| / (|v| |w| max(|Jv|/|v|, |Jw|/|w|)) for J the Jacobian of `vector_field` at PARAMS and fixed
    Gaussian v, w: 0 (to round-off) for a gradient field, whose Jacobian is a Hessian."""
    y0, unravel = ravel_pytree(PARAMS)
    rng = np.random.default_rng(5)
    v, w = (jnp.asarray(rng.normal(size=y0.size)) for _ in range(2))

    @jax.jit
    def along(tangent):
        return jax.jvp(lambda y: flat(vector_field(unravel(y))), (y0,), (tangent,))[1]

    jv, jw = along(v), along(w)
    scale = max(float(jnp.linalg.norm(jv) / jnp.linalg.norm(v)), float(jnp.linalg.norm(jw) / jnp.linalg.norm(w)))
    return float(jnp.abs(v @ jw - w @ jv)) / (float(jnp.linalg.norm(v) * jnp.linalg.norm(w)) * scale)


# -- the optimizers, as used throughout ------------------------------------------------------------------------------

LION_DECAY = 0.3
ADAFACTOR_COUNT = 100
MUON_BETA = 0.9
ADEMAMIX = {"b1": 0.9, "b2": 0.99, "b3": 0.99, "alpha": 5.0, "eps": 0.0, "eps_root": 1e-8}


def adafactor(lr):  # factored for both matrices; no update clipping (its kink sits at RMS(update) = 1, where it runs)
    return optax.adafactor(lr, min_dim_size_to_factor=2, clipping_threshold=None)


def muon(lr):  # the bias vectors go to optax's Adam branch (Nesterov), with eps inside the root
    return optax.contrib.muon(lr, beta=MUON_BETA, adam_b1=0.9, adam_b2=0.99, adam_eps_root=1e-8)


def ademamix(lr, alpha=ADEMAMIX["alpha"]):
    return optax.contrib.ademamix(lr, **{**ADEMAMIX, "alpha": alpha})


FACTORIES = {"adafactor": (adafactor, {"count": ADAFACTOR_COUNT}), "muon": (muon, {}), "ademamix": (ademamix, {})}


@functools.cache
def field(name: str):
    """(the order-1 field of one of FACTORIES on the MLP, the warnings its first evaluation gave), once per session."""
    factory, options = FACTORIES[name]
    built = bea.from_optax(factory, 1, loss=loss, name=name, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built.terms(PARAMS)
    return built, tuple(str(w.message) for w in caught if issubclass(w.category, bea.NonSmoothStepWarning))


def adafactor_by_hand(theta, state):
    """Shazeer & Stern (arXiv:1804.04235), Alg. 4 with relative step size: for a matrix G the second moment is
    R C^T / mean(R) from the row means R and column means C of G^2 + 1e-30; vectors keep G^2 + 1e-30 whole;
    the update is scaled by max(1e-3, RMS(theta))."""
    rows, columns, whole = state
    g, out = grad(theta), {}
    for k in theta:
        second = jnp.outer(rows[k], columns[k]) / jnp.mean(rows[k]) if k in MATRICES else whole[k]
        out[k] = -jnp.maximum(jnp.sqrt(jnp.mean(theta[k] ** 2)), 1e-3) * g[k] / jnp.sqrt(second)
    return out


def adafactor_targets(theta):
    squares = tree(lambda x: x**2 + 1e-30, grad(theta))
    return ({k: jnp.mean(squares[k], axis=1) for k in MATRICES}, {k: jnp.mean(squares[k], axis=0) for k in MATRICES},
            {k: squares[k] for k in VECTORS})


def muon_by_hand(theta, state):
    """Jordan et al. 2024 (kellerjordan.github.io/posts/muon): the Nesterov average b m' + (1 - b) g of each matrix,
    orthogonalized by 5 quintic Newton-Schulz steps, scaled by sqrt(max(1, fan_out / fan_in)); vectors: Nesterov Adam."""
    momentum, first, second = state
    g, out, b = grad(theta), {}, MUON_BETA
    for k in MATRICES:
        fan_in, fan_out = theta[k].shape
        average = b * momentum[k] + (1 - b) * g[k]
        out[k] = -np.sqrt(max(1.0, fan_out / fan_in)) * orthogonalize_via_newton_schulz(
            average, jnp.asarray((3.4445, -4.7750, 2.0315)), 5, "frobenius", 1e-8)
    for k in VECTORS:
        out[k] = -(0.9 * first[k] + 0.1 * g[k]) / (jnp.sqrt(second[k] + 1e-8) + 1e-8)
    return out


def muon_targets(theta):
    g = grad(theta)
    return {k: g[k] for k in MATRICES}, {k: g[k] for k in VECTORS}, {k: g[k] ** 2 for k in VECTORS}


def ademamix_by_hand(theta, state):
    """Pagliardini et al. (arXiv:2409.03137): (m_fast + alpha m_slow) / sqrt(nu + eps_root), bias corrections at 1."""
    fast, slow, second = state
    return tree(lambda m1, m2, nu: -(m1 + ADEMAMIX["alpha"] * m2) / jnp.sqrt(nu + ADEMAMIX["eps_root"]), fast, slow, second)


def ademamix_targets(theta):
    g = grad(theta)
    return g, g, tree(lambda x: x**2, g)


# Adafactor's decay 1 - (count + 1)^-0.8, computed in float32 as optax does (0.97508...)
ADAFACTOR_DECAY = float(1 - jnp.asarray(ADAFACTOR_COUNT + 1, jnp.float32) ** -0.8)

BY_HAND = {
    "adafactor": (adafactor_by_hand, adafactor_targets, (ADAFACTOR_DECAY,) * 3),
    "muon": (muon_by_hand, muon_targets, (MUON_BETA, 0.9, 0.99)),
    "ademamix": (ademamix_by_hand, ademamix_targets, (ADEMAMIX["b1"], ADEMAMIX["b3"], ADEMAMIX["b2"])),
}


# -- lion: sign kills every derivative but weight decay's --------------------------------------------------------------

def test_lion_corrections_only_rescale_time():
    """update = -h (sign(c) + lam theta) and sign' = 0 away from c = 0: the step is Euler on the affine field
    f_0 = -(sign(g) + lam theta) (c = g at h = 0 on the slow manifold), whose modified field is
    log(1 - lam h) / (-lam h) f_0: f_k = lam^k / (k + 1) f_0, the orbits of f_0 at a faster clock."""
    with pytest.warns(bea.NonSmoothStepWarning, match="sign"):
        lion = bea.from_optax(lambda lr: optax.lion(lr, b1=0.9, b2=0.99, weight_decay=LION_DECAY), 2, loss=loss)
        f0, f1, f2 = lion.terms(PARAMS)
    expected = tree(lambda s, x: -(s + LION_DECAY * x), tree(jnp.sign, grad(PARAMS)), PARAMS)
    assert relative(f0, expected) < 1e-14
    assert relative(f1, tree(lambda x: LION_DECAY / 2 * x, f0)) < 1e-12
    assert relative(f2, tree(lambda x: LION_DECAY**2 / 3 * x, f0)) < 1e-12


def test_lion_without_weight_decay_has_no_correction():
    """f_0 = -sign(g) is locally constant: every correction vanishes exactly."""
    with pytest.warns(bea.NonSmoothStepWarning, match="sign"):
        lion = bea.from_optax(lambda lr: optax.lion(lr, b1=0.9, b2=0.99, weight_decay=0.0), 2, loss=loss)
        f0, f1, f2 = lion.terms(PARAMS)
    assert relative(f0, tree(lambda g: -jnp.sign(g), grad(PARAMS))) == 0.0
    assert float(jnp.max(jnp.abs(flat(f1)))) == 0.0 and float(jnp.max(jnp.abs(flat(f2)))) == 0.0


# -- adafactor, muon, ademamix: the engine against the hand derivation ---------------------------------------------

@pytest.mark.parametrize("name", ["adafactor", "muon", "ademamix"])
def test_first_correction_is_eulers_plus_the_lag_of_the_moving_averages(name):
    update, targets, rates = BY_HAND[name]
    f0, f1 = jax.jit(lambda p: first_correction_by_hand(update, targets, rates, p))(PARAMS)
    built, warned = field(name)
    terms = built.terms(PARAMS)
    if name == "adafactor":  # max(1e-3, RMS(theta)) of the relative step size: a kink, far from this point
        assert len(warned) == 1 and "safe_root_mean_squares" in warned[0] and "round-off" not in warned[0]
    else:
        assert not warned
    assert relative(terms[0], f0) < 1e-12
    assert relative(terms[1], f1) < 1e-10


def test_muon_newton_schulz_coefficients_are_held_as_constants():
    """optax.contrib.muon copies its Newton-Schulz coefficients from state to state (rate 1): the engine holds
    them, says so in the assumptions, and the state it solves for is the momentum alone."""
    f = field("muon")[0]
    f.terms(PARAMS)
    assert any("ns_coeffs" in line for line in f.assumptions)
    state = f.slow_manifold(PARAMS, 1e-3)
    fresh = optax.contrib.muon(1e-3).init(PARAMS)
    held = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0] if "ns_coeffs" in jax.tree_util.keystr(path)]
    initial = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(fresh)[0] if "ns_coeffs" in jax.tree_util.keystr(path)]
    assert held and all(np.array_equal(a, b) for a, b in zip(held, initial))
    assert not any("ns_coeffs" in path for path in f.step.state_paths(state))


def test_muon_correction_on_matrices_is_eulers_amplified_by_the_momentum():
    """For any map P of Nesterov momentum (update -h P(b m' + (1 - b) g), m' = b m + (1 - b) g) the formula of the
    module docstring reduces to f_1 = -(1 - b + 2 b^2) / (1 - b) f_0' f_0 / 2: Euler's correction of the
    orthogonalized flow, 17.2 times over at b = 0.9."""
    update, targets, _ = BY_HAND["muon"]
    f0 = jax.jit(lambda p: update(p, targets(p)))(PARAMS)
    euler = jax.jvp(lambda p: update(p, targets(p)), (PARAMS,), (f0,))[1]
    b, f1 = MUON_BETA, field("muon")[0].terms(PARAMS)[1]
    factor = -(1 - b + 2 * b**2) / (2 * (1 - b))
    for k in MATRICES:
        assert relative(f1[k], factor * euler[k]) < 1e-10


def test_ademamix_without_its_slow_average_is_adam():
    """alpha = 0: AdEMAMix is Adam (eps inside the root), whose field the symbolic engine derives exactly."""
    import dataclasses

    numeric = bea.from_optax(lambda lr: ademamix(lr, alpha=0.0), 1, loss=loss).terms(PARAMS)
    rule = bea.rules.Adam(beta=ADEMAMIX["b1"], rho=ADEMAMIX["b2"], eps=ADEMAMIX["eps_root"])
    symbolic = bea.modified_equation(rule, 1)
    f0 = dataclasses.replace(symbolic, order=0, terms=symbolic.terms[:1]).to_jax(loss=loss)(PARAMS, 0.0)
    f1 = tree(lambda a, b: a - b, symbolic.to_jax(loss=loss)(PARAMS, 1.0), f0)
    assert relative(numeric[0], f0) < 1e-10
    assert relative(numeric[1], f1) < 1e-10


def test_which_first_corrections_are_gradient_fields():
    """GD's f_1 = -grad |grad E|^2 / 4 and lion's f_1 = lam f_0 / 2 (Jacobian -lam^2/2 I) are gradient fields; the
    first corrections of adafactor, muon and ademamix are not (as their f_0 is not)."""
    gd = bea.from_optax(optax.sgd, 1, loss=loss)
    assert asymmetry(lambda p: gd.terms(p)[1]) < 1e-12
    with pytest.warns(bea.NonSmoothStepWarning):
        lion = bea.from_optax(lambda lr: optax.lion(lr, b1=0.9, b2=0.99, weight_decay=LION_DECAY), 1, loss=loss)
        lion.terms(PARAMS)
    assert asymmetry(lambda p: lion.terms(p)[1]) < 1e-12
    for name in BY_HAND:  # the engine's f_1 (equal to the hand derivation to 1e-10: the test above)
        assert asymmetry(lambda p, f=field(name)[0]: f.terms(p)[1]) > 1e-2, name


# -- local-error slopes against the optimizers' own iterates -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bea.NonSmoothStepWarning")  # adafactor's max(1e-3, RMS), far from its kink
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("name", ["adafactor", "muon", "ademamix"])
def test_local_error_slopes(name, order):
    result = bea.verify.local_error(field(name)[0], PARAMS, order)
    assert result.passes(), (result.slope, result.note)


@functools.cache
def small_lion():
    """(Lion's order-1 field on a 3-4-1 MLP, its parameters, the warnings its first evaluation gave), once."""
    params, small_loss = tanh_mlp(0, 3, 4, 1)
    lion = bea.from_optax(lambda lr: optax.lion(lr, b1=0.9, b2=0.9, weight_decay=1.0), 1, loss=small_loss)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lion.terms(params)
    return lion, params, tuple(str(w.message) for w in caught if issubclass(w.category, bea.NonSmoothStepWarning))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bea.NonSmoothStepWarning")  # checked once, on the first evaluation
@pytest.mark.parametrize("order", [0, 1])
def test_lion_local_error_slopes_until_a_sign_flips(order):
    """The expansion holds while no component of c = (1 - b1) g + b1 m changes sign over a step. On the slow manifold
    m lags g by O(h / (1 - b2)): on the 212-parameter MLP (b2 = 0.99) the first flip comes at h ~ 6e-6, where the
    order-1 error is below round-off. A 3-4-1 MLP (21 parameters) with b2 = 0.9 flips first at h ~ 4.5e-3; the
    decay lam = 1 (the scale of Lion's paper, arXiv:2302.06675) makes the affine part's error measurable."""
    lion, params, warned = small_lion()
    assert len(warned) == 1 and "sign" in warned[0]
    result = bea.verify.local_error(lion, params, order)
    assert result.passes(), (result.slope, result.note)
    assert max(result.h) < 5e-3
