"""Stochastic modified equations (issue 14): every check against a hand computation that shares no code
with bea.engines.stochastic (sympy.diff, explicit averages, closed forms of the Ornstein-Uhlenbeck process)."""

import itertools
import random

import pytest
import sympy as sp
from reference import sde_expectation_series

import bea
from bea.rules import SGD, Langevin

h = bea.h
a, b, u = sp.symbols("a b u")


def _random_losses(n, seed):
    rng = random.Random(seed)
    monomials = [a, b, a**2, a * b, b**2, a**2 * b, a * b**2, a**3]
    return [sum(sp.Rational(rng.randint(-5, 5), rng.randint(1, 4)) * m for m in monomials) + a**2 + b**2
            for _ in range(n)]


def _grad(E, params):
    return sp.Matrix([sp.diff(E, p) for p in params])


def _expand(m):
    return sp.Matrix(m).applyfunc(sp.expand)


def _sigma(losses, params):
    """(1/N) sum g_i g_i^T - grad E grad E^T, by hand."""
    gs = [_grad(E, params) for E in losses]
    mean = sum(gs, sp.zeros(len(params), 1)) / len(gs)
    return sum((g * g.T for g in gs), sp.zeros(len(params))) / len(gs) - mean * mean.T


def test_sgd_batch_one_is_li_tai_e():
    losses = _random_losses(3, seed=1)
    sme = bea.stochastic_modified_equation(SGD(), 1, losses=losses, params=[a, b])
    E = sum(losses) / 3
    g = _grad(E, [a, b])
    H = sp.hessian(E, [a, b])
    assert _expand(sme.drift[0] + g) == sp.zeros(2, 1)
    assert _expand(sme.drift[1] + H * g / 2) == sp.zeros(2, 1)
    assert sme.diffusion[0] == sp.zeros(2)
    assert _expand(sme.diffusion[1] - _sigma(losses, [a, b])) == sp.zeros(2)
    assert sme.obstruction is None


def test_batch_size_scales_the_covariance():
    losses = _random_losses(3, seed=2)
    sigma = _sigma(losses, [a, b])
    with_replacement = bea.stochastic_modified_equation(SGD(batch_size=2), 1, losses=losses, params=[a, b])
    assert _expand(with_replacement.diffusion[1] - sigma / 2) == sp.zeros(2)
    # without replacement the batch mean's covariance carries the finite-population factor (N - B)/(B (N - 1))
    without = bea.stochastic_modified_equation(SGD(batch_size=2, replacement=False), 1, losses=losses, params=[a, b])
    assert _expand(without.diffusion[1] - sigma * sp.Rational(3 - 2, 2 * (3 - 1))) == sp.zeros(2)
    full = bea.stochastic_modified_equation(SGD(batch_size=3, replacement=False), 1, losses=losses, params=[a, b])
    assert full.diffusion[1] == sp.zeros(2)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_one_loss_is_gradient_descent(order):
    E = (1 - a * b) ** 2 / 2 + a**3 / 3
    sme = bea.stochastic_modified_equation(SGD(batch_size=2), order, loss=E, params=[a, b])
    me = bea.modified_equation(bea.rules.GD(), order, loss=E, params=[a, b])
    for l in range(order + 1):
        assert _expand(sme.drift[l] - me.terms[l]) == sp.zeros(2, 1)
        assert sme.diffusion[l] == sp.zeros(2)
        assert all(sum(alpha) == 1 for alpha in sme.generator[l])  # the log of a pullback is a vector field


def test_langevin_on_a_quadratic_is_ornstein_uhlenbeck():
    lam, T = sp.symbols("lambda T", positive=True)
    sme = bea.stochastic_modified_equation(Langevin(temperature=T), 4, loss=lam * u**2 / 2, params=[u])
    # u' = (1 - h lam) u + sqrt(2 h T) xi is the OU flow over time h with exp(-lam~ h) = 1 - h lam and
    # D~ (1 - exp(-2 lam~ h)) / (2 lam~) = 2 h T.
    lam_t = -sp.log(1 - h * lam) / h
    D_t = 4 * h * T * lam_t / (1 - (1 - h * lam) ** 2)
    lam_series = sp.series(lam_t, h, 0, 5).removeO()
    D_series = sp.series(D_t, h, 0, 5).removeO()
    for l in range(5):  # through order 4
        assert sp.expand(sme.drift[l][0] + lam_series.coeff(h, l) * u) == 0
        assert sp.expand(sme.diffusion[l][0, 0] - D_series.coeff(h, l)) == 0
        assert all(sum(alpha) <= 2 for alpha in sme.generator[l])  # a linear-Gaussian step stays Gaussian
    assert sme.diffusion[0][0, 0] == 2 * T


def _cumulants(values):
    n = len(values)
    mean = sum(values) / n
    central = [sp.expand(sum((v - mean) ** k for v in values) / n) for k in range(5)]
    return sp.expand(central[3]), sp.expand(central[4] - 3 * central[2] ** 2)


def test_sgd_third_cumulant_obstructs_at_order_two():
    coefficients = [(1, 2), (-3, 1), (5, 4)]  # E_i = a_i u + b_i u^2/2: skewed per-example gradients
    losses = [sp.Rational(p) * u + sp.Rational(q) * u**2 / 2 for p, q in coefficients]
    kappa3, kappa4 = _cumulants([sp.diff(E, u) for E in losses])
    assert kappa3 != 0
    assert bea.stochastic_modified_equation(SGD(), 1, losses=losses, params=[u]).obstruction is None
    obstruction = r"at order 2: .*differential-order-3.*cumulant of order 3.*order=1"
    with pytest.raises(bea.NoStochasticModifiedEquationError, match=obstruction):
        bea.stochastic_modified_equation(SGD(), 2, losses=losses, params=[u])
    sme = bea.stochastic_modified_equation(SGD(), 3, losses=losses, params=[u], allow_generator=True)
    assert sme.obstruction.order == 2 and sme.obstruction.differential_order == 3
    # top-order terms: log E[exp(-h g d)] = sum_k kappa_k (-h d)^k / k!
    assert sp.expand(sme.generator[2][(3,)] + kappa3 / 6) == 0
    assert sp.expand(sme.generator[3][(4,)] - kappa4 / 24) == 0
    assert max(sum(alpha) for alpha in sme.generator[3]) == 4


def test_two_symmetric_losses_have_no_third_cumulant():
    # uniform on two points is symmetric about its mean: kappa_3 = 0, the obstruction moves to order 3 (kappa_4)
    losses = [u + u**2 / 2, -2 * u + u**2]
    assert bea.stochastic_modified_equation(SGD(), 2, losses=losses, params=[u]).obstruction is None
    with pytest.raises(bea.NoStochasticModifiedEquationError, match="at order 3"):
        bea.stochastic_modified_equation(SGD(), 3, losses=losses, params=[u])


@pytest.mark.parametrize("order", [0, 1])
def test_local_weak_error(order):
    # small non-quadratic losses keep the hand-made exp(h L) phi fast
    losses = [a**2 * b / 2 + a - b**2, a * b + 2 * b - a**2 / 3, a**2 + b**2 / 2 - 3 * a * b**2]
    params = [a, b]
    point = {a: sp.Rational(1, 3), b: sp.Rational(-2, 5)}
    sme = bea.stochastic_modified_equation(SGD(), order, losses=losses, params=params)
    for phi in (a, a * b, b**2, a**2 * b):  # a cubic phi exercises the third moments of the batch gradient
        step_mean = sum(phi.xreplace({p: p - h * sp.diff(E, p) for p in params}) for E in losses) / 3
        flow_mean = sde_expectation_series(sme.drift_field(), sme.diffusion_matrix(), phi, params, order + 2)
        error = sp.Poly(sp.expand((step_mean - flow_mean).xreplace(point)), h)
        assert min(k for (k,), c in error.terms() if c != 0) == order + 2


def test_langevin_generator_needs_its_third_order_terms():
    # E = u^4/4: E[phi(u - h u^3 + sqrt(2hT) xi)] averaged by hand over the Gaussian moments
    T = sp.Rational(1, 2)
    xi = sp.Symbol("xi")
    sme = bea.stochastic_modified_equation(Langevin(temperature=T), 2, loss=u**4 / 4, params=[u], allow_generator=True)
    assert sme.obstruction.order == 2 and sme.obstruction.differential_order == 3
    assert sp.expand(sme.generator[2][(3,)] + T**2 * sp.diff(u**4 / 4, u, 3) / 3) == 0  # -(T^2/3) E''' d^3
    for phi in (u**3, u**4):
        sample = sp.expand(phi.xreplace({u: u - h * u**3 + sp.sqrt(2 * h * T) * xi}))
        mean = sum(c * sp.factorial2(k - 1) for (k,), c in sp.Poly(sample, xi).terms() if k % 2 == 0)
        series, term = sp.Integer(0), phi
        for n in range(4):
            series += h**n * term / sp.factorial(n)
            term = sme.apply_generator(term)
        error = sp.Poly(sp.expand(mean - series), h)
        assert min(k for (k,), c in error.terms() if c != 0) >= 4
    # without its third-order term, L_2 misses the one-step law at h^3 already
    truncated = {alpha: c for alpha, c in sme.generator[2].items() if sum(alpha) <= 2}
    def L(f):
        return sp.expand(sum(h**l * c * sp.diff(f, u, alpha[0])
                             for l, op in enumerate(sme.generator[:2] + (truncated,)) for alpha, c in op.items()))

    phi = u**3
    sample = sp.expand(phi.xreplace({u: u - h * u**3 + sp.sqrt(2 * h * T) * xi}))
    mean = sum(c * sp.factorial2(k - 1) for (k,), c in sp.Poly(sample, xi).terms() if k % 2 == 0)
    series, term = sp.Integer(0), phi
    for n in range(4):
        series += h**n * term / sp.factorial(n)
        term = L(term)
    assert sp.expand(mean - series).coeff(h, 3) != 0
    assert bea.stochastic_modified_equation(Langevin(temperature=T), 1, loss=u**4 / 4, params=[u]).obstruction is None
    with pytest.raises(bea.NoStochasticModifiedEquationError, match="at order 2"):
        bea.stochastic_modified_equation(Langevin(temperature=T), 2, loss=u**4 / 4, params=[u])


def test_input_errors():
    with pytest.raises(bea.InvalidHyperparameterError, match="replacement=True"):
        bea.stochastic_modified_equation(SGD(batch_size=3, replacement=False), 1, losses=[u, u**2], params=[u])
    with pytest.raises(bea.InvalidHyperparameterError, match="temperature"):
        Langevin(temperature=-1)
    with pytest.raises(bea.InvalidHyperparameterError, match="temperature"):
        bea.stochastic_modified_equation(Langevin(), 1, loss=u**2, params=[u], values={"T": -2})
    with pytest.raises(bea.InvalidHyperparameterError, match="batch_size"):
        SGD(batch_size=0)
    with pytest.raises(bea.NonSmoothLossError):
        bea.stochastic_modified_equation(SGD(), 1, losses=[sp.Abs(u), u**2], params=[u])
    with pytest.raises(bea.UnknownSymbolError, match="one loss"):
        bea.stochastic_modified_equation(Langevin(), 1, losses=[u**2, u], params=[u])
    with pytest.raises(bea.UnknownSymbolError, match="exactly one of"):
        bea.stochastic_modified_equation(SGD(), 1, params=[u])
    with pytest.raises(bea.InvalidRuleError, match="bea.modified_equation"):
        bea.stochastic_modified_equation(bea.rules.GD(), 1, loss=u**2, params=[u])
    with pytest.raises(bea.UnsupportedError, match="stochastic_modified_equation"):
        bea.modified_equation(SGD(), 1, loss=u**2, params=[u])


def test_iterates_use_the_same_step():
    jax = pytest.importorskip("jax")
    losses = [(u - 1) ** 2 / 2, (u + 1) ** 2 / 2]
    path = SGD().iterate(losses, [0.5], 0.1, 3, jax.random.PRNGKey(0), params=[u])
    assert path.shape == (4, 1)
    # each step is u - h (u -/+ 1): one of the law's two outcomes
    for x, y in itertools.pairwise(path[:, 0].tolist()):
        assert min(abs(y - (x - 0.1 * (x - 1))), abs(y - (x - 0.1 * (x + 1)))) < 1e-12


# --- lowering to JAX and the JSON export (issue 18) ---------------------------------------------------------


def _at(expr, point):
    return float(sp.N(sp.sympify(expr).xreplace(point), 30))


def test_to_jax_matches_li_tai_e_by_hand():
    """SGD batch 1: b~ = -g - (h/2) H g, D~ = h Sigma, computed here from the losses, not from the result."""
    jnp = pytest.importorskip("jax.numpy")
    c = sp.Symbol("c")
    losses = [(a * b - 1) ** 2 / 2, (a * b + c) ** 2 / 2, a**2 * b**2 / 2 + c * a]
    sme = bea.stochastic_modified_equation(SGD(), 1, losses=losses, params=[a, b])
    drift, diffusion = sme.to_jax()
    assert drift.symbols == diffusion.symbols == ("c",)
    E = sum(losses) / 3
    g, H = _grad(E, [a, b]), sp.hessian(E, [a, b])
    point, step, cv = {a: 0.3, b: -0.7}, 0.05, 1.5
    values = {**point, c: cv, h: step}
    by_hand_b = [_at(e, values) for e in -g - h * H * g / 2]
    by_hand_d = [[_at(e, values) for e in row] for row in (h * _sigma(losses, [a, b])).tolist()]
    theta = jnp.array([0.3, -0.7])
    got_b, got_d = drift(theta, step, c=cv), diffusion(theta, step, c=cv)
    assert got_b.shape == (2,) and got_d.shape == (2, 2) and got_b.dtype == jnp.float64
    assert jnp.allclose(got_b, jnp.array(by_hand_b), rtol=1e-13, atol=1e-15)
    assert jnp.allclose(got_d, jnp.array(by_hand_d), rtol=1e-13, atol=1e-15)


def test_to_jax_matches_sympy_and_vmaps():
    """Langevin on a quartic with a loss constant: values at a point equal SymPy's, jax.vmap over theta; at
    order 0 the drift does not use T nor the diffusion c, yet both take the same keywords."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    T, c = sp.symbols("T c")
    sme = bea.stochastic_modified_equation(Langevin(temperature=T), 1, loss=c * u**4 / 4 + u**2 / 2, params=[u])
    drift, diffusion = sme.to_jax()
    assert drift.symbols == diffusion.symbols == ("T", "c")
    points = jnp.array([[-0.4], [0.1], [0.9]])
    step, tv, cv = 0.02, 0.3, 2.0
    batch_b = jax.vmap(lambda t: drift(t, step, T=tv, c=cv))(points)
    batch_d = jax.vmap(lambda t: diffusion(t, step, T=tv, c=cv))(points)
    assert batch_b.shape == (3, 1) and batch_d.shape == (3, 1, 1)
    for k, x in enumerate([-0.4, 0.1, 0.9]):
        subs = {u: x, h: step, T: tv, c: cv}
        assert batch_b[k, 0] == pytest.approx(_at(sme.drift_field()[0], subs), rel=1e-13)
        assert batch_d[k, 0, 0] == pytest.approx(_at(sme.diffusion_matrix()[0, 0], subs), rel=1e-13)
    order_zero, diffusion_zero = sme.to_jax(order=0)
    assert order_zero.symbols == diffusion_zero.symbols == ("T", "c")
    assert float(diffusion_zero(jnp.array([0.5]), step, T=tv, c=cv)[0, 0]) == pytest.approx(2 * tv, rel=1e-14)
    assert float(order_zero(jnp.array([0.5]), step, T=tv, c=cv)[0]) == pytest.approx(-(cv * 0.5**3 + 0.5), rel=1e-14)


def test_to_jax_stops_at_the_obstruction():
    pytest.importorskip("jax")
    losses = [(a * b - 1) ** 2 / 2, (a * b + 1) ** 2 / 2, a**2 * b**2 / 2 + a]
    sme = bea.stochastic_modified_equation(SGD(), 2, losses=losses, params=[a, b], allow_generator=True)
    with pytest.raises(bea.NoStochasticModifiedEquationError, match="order=1"):
        sme.to_jax()
    drift, diffusion = sme.to_jax(order=1)
    assert diffusion([0.1, 0.2], 0.1).shape == (2, 2)
    with pytest.raises(bea.InvalidArrayError, match="shape"):
        drift([0.1, 0.2, 0.3], 0.1)


def test_to_dict_parses_back():
    import json

    losses = [(a * b - 1) ** 2 / 2, (a * b + 1) ** 2 / 2, a**2 * b**2 / 2 + a]
    sme = bea.stochastic_modified_equation(SGD(), 2, losses=losses, params=[a, b], allow_generator=True)
    data = json.loads(json.dumps(sme.to_dict()))
    assert data["view"] == "stochastic modified equation" and data["params"] == ["a", "b"] and data["order"] == 2
    names = {"a": a, "b": b}
    for l in range(3):
        assert [sp.sympify(s, locals=names) for s in data["drift"][l]] == list(sme.drift[l])
        assert sp.Matrix(data["diffusion"][l]).applyfunc(lambda s: sp.sympify(s, locals=names)) == sme.diffusion[l]
        assert {tuple(t["multi_index"]): sp.sympify(t["coefficient"], locals=names) for t in data["generator"][l]} \
            == sme.generator[l]
    assert data["obstruction"]["order"] == 2 and data["obstruction"]["differential_order"] == 3
    assert {tuple(t["multi_index"]) for t in data["obstruction"]["terms"]} == {(3, 0), (2, 1), (1, 2)}
    assert "cumulant" in data["obstruction"]["note"]


# --- sample paths (issue 14) --------------------------------------------------------------------------------


def test_sample_paths_match_the_ornstein_uhlenbeck_law():
    """Langevin on lam u^2/2 to order 1: dX = -lam~ X dt + D~^{1/2} dW with constant lam~, D~ (read off the
    result), so X_t is Gaussian with mean u0 e^{-lam~ t} and variance D~ (1 - e^{-2 lam~ t}) / (2 lam~)."""
    jax = pytest.importorskip("jax")
    import numpy as np

    lam, T = sp.symbols("lam T", positive=True)
    sme = bea.stochastic_modified_equation(Langevin(temperature=T), 1, loss=lam * u**2 / 2, params=[u])
    point = {lam: 1.5, T: 0.2, h: 0.1}
    rate = _at(-sme.drift_field()[0] / u, point)
    d = _at(sme.diffusion_matrix()[0, 0], point)
    assert rate == pytest.approx(1.5 + 0.1 * 1.5**2 / 2) and d == pytest.approx(0.4 * (1 + 0.15))
    times = [0.0, 0.5, 1.0]
    paths = sme.sample_paths([1.0], 0.1, times, key=jax.random.PRNGKey(0), n_paths=4000, lam=1.5, T=0.2)
    assert paths.shape == (4000, 3, 1) and paths.dtype == np.float64
    assert np.all(paths[:, 0, 0] == 1.0)
    for k, t in enumerate(times[1:], start=1):
        x = np.asarray(paths[:, k, 0])
        mean, var = np.exp(-rate * t), d * (1 - np.exp(-2 * rate * t)) / (2 * rate)
        centred = x - x.mean()
        se_mean = np.sqrt(x.var() / x.size)
        se_var = np.sqrt((np.mean(centred**4) - x.var() ** 2) / x.size)  # fourth-moment formula
        assert abs(x.mean() - mean) < 4 * se_mean
        assert abs(x.var(ddof=1) - var) < 4 * se_var


def test_sample_paths_of_sgd_in_two_parameters():
    jax = pytest.importorskip("jax")
    import numpy as np

    losses = [(a * b - 1) ** 2 / 2, (a * b + 1) ** 2 / 2, a**2 * b**2 / 2 + a]
    sme = bea.stochastic_modified_equation(SGD(), 1, losses=losses, params=[a, b])
    paths = sme.sample_paths([0.5, 1.0], 0.1, [0.0, 0.1, 0.3], key=jax.random.PRNGKey(1), n_paths=8)
    assert paths.shape == (8, 3, 2) and np.all(np.isfinite(paths))
    assert np.allclose(paths[:, 0], [0.5, 1.0])
    assert np.std(np.asarray(paths[:, -1, 0])) > 0  # D~ = h Sigma != 0: the paths differ
    import diffrax

    with pytest.raises(bea.UnsupportedError, match="Stratonovich"):  # D~ depends on (a, b)
        sme.sample_paths([0.5, 1.0], 0.1, [0.3], key=jax.random.PRNGKey(1), n_paths=2, solver=diffrax.Heun())
    with pytest.raises(bea.InvalidArrayError, match="non-decreasing"):
        sme.sample_paths([0.5, 1.0], 0.1, [0.3, 0.1], key=jax.random.PRNGKey(1), n_paths=2)


def test_sample_paths_warn_when_the_diffusion_is_not_psd():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    from bea.lowering._sde import sample_paths

    def drift(theta, h):
        return -theta

    def diffusion(theta, h):  # eigenvalues 1 and -0.5: no covariance
        return jnp.array([[0.25, 0.75], [0.75, 0.25]])

    with pytest.warns(RuntimeWarning, match="negative eigenvalues .* along 3 of 3 paths"):
        paths = sample_paths(drift, diffusion, [1.0, 0.0], 0.1, [0.2], key=jax.random.PRNGKey(0), n_paths=3, dt0=0.05)
    assert paths.shape == (3, 1, 2)
    # clipped, the root is rank one along (1, 1): X1 - X2 gets no noise, only Euler's 4 steps of d(.) = -(.) dt
    assert jnp.allclose(paths[:, 0, 0] - paths[:, 0, 1], 0.95**4, rtol=1e-12)
    assert float(jnp.std(paths[:, 0, 0])) > 0
