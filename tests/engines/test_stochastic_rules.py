"""SMEs of the stochastic rules beyond SGD and Langevin (issue 14): momentum SGD and Nesterov in Li, Tai & E's
scaling, RMSProp and Adam in Malladi et al.'s, SAM on a random batch, user-written rules, and the published
modified equations they reproduce. Every check is against a hand computation that shares no code with
bea.engines.stochastic: the papers' formulas, and exact finite averages of the step written out here."""

import pytest
import sympy as sp
from reference import sde_expectation_series

import bea
from bea.rules import SAMSGD, SGD, AdamSDE, Langevin, RMSPropSDE, SGDMomentum, SGDNesterov

h = bea.h
a, b, u = sp.symbols("a b u")
s = sp.Symbol("s", positive=True)  # sqrt(h) in the hand computations
LOSSES = [u**3 / 6 + u**2 / 2 + u, u**2 - 2 * u, u**4 / 12 + 3 * u**2 / 2 + u / 3]  # skewed per-example gradients
SYMMETRIC = [u**3 / 6 + u**2 / 2 + u, u**2 - 2 * u]  # two points: symmetric about their mean


def _mean_grad_and_var(losses):
    gs = [sp.diff(E, u) for E in losses]
    mean = sum(gs) / len(gs)
    return sp.expand(mean), sp.expand(sum((g - mean) ** 2 for g in gs) / len(gs))


def _weak_error_order(sme, outcomes, phi, point, order):
    """Lowest power of h in E[phi(step)] - exp(h L~) phi at `point`, the step's law given by hand as
    equally likely outcomes {param: expression in s = sqrt(h)}; asserts the odd powers of s cancel."""
    params = sme.params
    step = sum(phi.xreplace(o) for o in outcomes) / len(outcomes)
    step = sp.series(step.xreplace(point), s, 0, 2 * order + 6).removeO()
    flow = sde_expectation_series(sme.drift_field(), sme.diffusion_matrix(), phi, params, order + 2).xreplace(point)
    error = sp.expand(step - flow.xreplace({h: s**2}))
    powers = [k for (k,), c in sp.Poly(error, s).terms() if sp.nsimplify(c) != 0]
    assert all(k % 2 == 0 for k in powers if k < 2 * order + 6)
    return min(powers) // 2


# --- Li, Tai & E: SGD's SMEs of their orders 1 and 2 --------------------------------------------------------


def test_li_tai_e_orders_one_and_two_are_bea_orders_zero_and_one():
    """Li, Tai & E (JMLR 20, 2019, arXiv:1811.01558, Thm 3) count weak orders: their order-1 SME
    dX = -grad E dt + (h Sigma)^{1/2} dW and their order-2 SME dX = -grad(E + h/4 |grad E|^2) dt + (h Sigma)^{1/2} dW
    have local weak errors O(h^2) and O(h^3). bea counts the powers of h kept in b~ and D~: their order 2 is
    bea's order 1 exactly (b_0 + h b_1, D_0 + h D_1); their order 1 is bea's order 0 plus the O(h) diffusion,
    which does not change the local error order (bea's order 0 is the gradient flow, D_0 = 0)."""
    g, var = _mean_grad_and_var(LOSSES)
    E = sum(LOSSES) / 3
    sme1 = bea.stochastic_modified_equation(SGD(), 1, losses=LOSSES, params=[u])
    lte2_drift = -sp.diff(E + h / 4 * sp.diff(E, u) ** 2, u)
    assert sp.expand(sme1.drift_field()[0] - lte2_drift) == 0
    assert sp.expand(sme1.diffusion_matrix()[0, 0] - h * var) == 0
    point = {u: sp.Rational(1, 3)}
    outcomes = [{u: u - s**2 * sp.diff(Ei, u)} for Ei in LOSSES]
    for phi in (u, u**2, u**3):
        assert _weak_error_order(sme1, outcomes, phi, point, 1) == 3
    # Li-Tai-E's order 1: bea's order-0 drift with h Sigma; local error h^2 as bea's order 0
    sme0 = bea.stochastic_modified_equation(SGD(), 0, losses=LOSSES, params=[u])
    assert sme0.drift[0][0] == -g and sme0.diffusion[0][0, 0] == 0
    lte1 = type(sme0)(sme0.rule, sme0.params, sme0.losses, 0, sme0.drift, (sp.ImmutableMatrix([[h * var]]),),
                      sme0.generator)
    for sme in (sme0, lte1):
        assert _weak_error_order(sme, outcomes, u**2, point, 0) == 2


# --- momentum SGD and Nesterov (Li, Tai & E's scaling) ------------------------------------------------------


def _momentum_outcomes(losses, c, nesterov):
    v = sp.Symbol("v_u", real=True)
    out = []
    for Ei in losses:
        gi = sp.diff(Ei, u)
        mu = 1 - c * s  # eta = s^4 (h = s^2 = sqrt(eta)), mu = 1 - c sqrt(eta); V = v / sqrt(eta)
        eta = s**4
        x, vel = u, v * s**2  # Li-Tai-E's v = sqrt(eta) V
        look = x + mu.xreplace({s: s**2}) * vel if nesterov else x
        vel_next = (1 - c * s**2) * vel - eta * gi.xreplace({u: look})
        out.append({u: x + vel_next, v: vel_next / s**2})
    return out, v


@pytest.mark.parametrize("rule_class", [SGDMomentum, SGDNesterov])
def test_momentum_sme_is_li_tai_e(rule_class):
    """Leading order: dX = V dt, dV = -(c V + grad E) dt + (h Sigma)^{1/2} dW (Li, Tai & E, arXiv:1811.01558,
    momentum SGD / NAG with mu = 1 - c sqrt(eta), time sqrt(eta) = h per step)."""
    c = sp.Symbol("c", positive=True)
    g, var = _mean_grad_and_var(LOSSES)
    sme = bea.stochastic_modified_equation(rule_class(), 1, losses=LOSSES, params=[u])
    v = sp.Symbol("v_u", real=True)
    assert sme.params == (u, v)
    assert sp.expand(sme.drift[0] - sp.Matrix([v, -c * v - g])) == sp.zeros(2, 1)
    assert sme.diffusion[0] == sp.zeros(2)
    assert sp.expand(sme.diffusion[1] - sp.Matrix([[0, 0], [0, var]])) == sp.zeros(2)
    # beyond leading order, against the exact finite average of the step (in eta and mu, written out here)
    outcomes, v = _momentum_outcomes(LOSSES, c, rule_class is SGDNesterov)
    point = {u: sp.Rational(1, 3), v: sp.Rational(-1, 2), c: sp.Rational(3, 2)}
    sme_c = bea.stochastic_modified_equation(rule_class(friction=sp.Rational(3, 2)), 1, losses=LOSSES, params=[u])
    for phi in (u, v, u * v, v**2):
        assert _weak_error_order(sme_c, [{k: e.xreplace({c: sp.Rational(3, 2)}) for k, e in o.items()}
                                          for o in outcomes], phi, point, 1) == 3


def test_nesterov_and_heavy_ball_differ_at_order_one():
    m = bea.stochastic_modified_equation(SGDMomentum(), 1, losses=LOSSES, params=[u])
    n = bea.stochastic_modified_equation(SGDNesterov(), 1, losses=LOSSES, params=[u])
    assert m.drift[0] == n.drift[0] and m.diffusion[1] == n.diffusion[1]
    assert sp.expand(m.drift[1] - n.drift[1]) != sp.zeros(2, 1)


# --- RMSProp and Adam (Malladi, Lyu, Panigrahi & Arora's scaling) --------------------------------------------


def _rmsprop_outcomes(losses, c, sigma0, eps0):
    """RMSProp in its own variables: eta = s, beta = 1 - c eta^2, sigma = sigma0/eta, eps = eps0/eta, v = sigma^2 u."""
    uu = sp.Symbol("u_u", real=True)
    eta = s
    beta, sigma, eps = 1 - c * eta**2, sigma0 / eta, eps0 / eta
    mean = sum(sp.diff(E, u) for E in losses) / len(losses)
    out = []
    for Ei in losses:
        g_hat = mean + sigma * (sp.diff(Ei, u) - mean)
        v_next = beta * sigma**2 * uu + (1 - beta) * g_hat**2
        out.append({u: u - eta * g_hat / (sp.sqrt(v_next) + eps), uu: v_next / sigma**2})
    return out, uu


def test_rmsprop_sde_is_malladi_et_al():
    """dtheta = -P^{-1}(grad E dt + sigma0 Sigma^{1/2} dW), du = c (diag Sigma - u) dt, P = sigma0 sqrt(u) + eps0
    (Malladi et al., NeurIPS 2022, arXiv:2205.10287, RMSprop SDE)."""
    c, sigma0, eps0 = sp.symbols("c sigma_0 epsilon_0", positive=True)
    g, var = _mean_grad_and_var(LOSSES)
    sme = bea.stochastic_modified_equation(RMSPropSDE(), 0, losses=LOSSES, params=[u])
    uu = sme.params[1]
    P = sigma0 * sp.sqrt(uu) + eps0
    assert sp.simplify(sme.drift[0][0] + g / P) == 0
    assert sp.expand(sme.drift[0][1] - c * (var - uu)) == 0
    assert sp.simplify(sme.diffusion[0] - sp.Matrix([[sigma0**2 * var / P**2, 0], [0, 0]])) == sp.zeros(2)
    values = {c: 2, sigma0: sp.Rational(1, 2), eps0: sp.Rational(1, 3)}
    point = {u: sp.Rational(1, 3), uu: sp.Rational(4, 9)}
    # skewed noise: local weak error O(h^2) at order 0, and a term in h^{3/2} that no SDE series has beyond it
    sme0 = bea.stochastic_modified_equation(RMSPropSDE(c=2, sigma0=sp.Rational(1, 2), eps0=sp.Rational(1, 3)),
                                            0, losses=LOSSES, params=[u])
    outcomes, _ = _rmsprop_outcomes(LOSSES, *values.values())
    step = sp.series((sum(u.xreplace(o) for o in outcomes) / 3).xreplace(point), s, 0, 4).removeO()
    flow = sde_expectation_series(sme0.drift_field(), sme0.diffusion_matrix(), u, sme0.params, 1).xreplace(point)
    error = sp.expand(step - flow.xreplace({h: s**2}))
    assert abs(sp.N(error.coeff(s, 2), 30)) < 1e-25  # O(h^2) is matched
    assert abs(sp.N(error.coeff(s, 3), 30)) > 1e-3  # the skewness's h^{3/2}: only order 0 has an SDE


def _generator_exp(sme, phi, n_max):
    """sum_{n <= n_max} h^n L~^n phi / n! with every term of the generator (differential order >= 3 included)."""
    total, term = sp.Integer(0), phi
    for n in range(n_max + 1):
        total += h**n * term / sp.factorial(n)
        term = sum((sme.apply_generator(term).coeff(h, k) * h**k for k in range(n_max - n)), sp.Integer(0))
    return sp.expand(total)


@pytest.mark.slow
def test_rmsprop_sde_stops_at_leading_order():
    """Beyond Malladi et al.'s order: the O(sqrt h) batch noise is not Gaussian. Skewed, it puts h^{3/2} in the
    one-step law (refused at order 1); symmetric, its fourth cumulant enters L_1 as kappa_4(sigma0 zeta/P)/24 d^4,
    so no SDE exists at order 1 either, while the generator series still matches the exact average to O(h^3)."""
    values = dict(c=2, sigma0=sp.Rational(1, 2), eps0=sp.Rational(1, 3))
    with pytest.raises(bea.InconsistentRuleError, match=r"h\^3/2.*skewed.*order=0"):
        bea.stochastic_modified_equation(RMSPropSDE(**values), 1, losses=LOSSES, params=[u])
    # one derivation (each takes ~15 s): the obstruction it records is what the error without allow_generator names
    sme = bea.stochastic_modified_equation(RMSPropSDE(**values), 1, losses=SYMMETRIC, params=[u], allow_generator=True)
    assert (sme.obstruction.order, sme.obstruction.differential_order) == (1, 4)
    uu = sme.params[1]
    gs = [sp.diff(E, u) for E in SYMMETRIC]
    d = (gs[0] - gs[1]) / 2  # the batch noise is +-d
    P = values["sigma0"] * sp.sqrt(uu) + values["eps0"]
    kappa4 = (values["sigma0"] * d / P) ** 4 * (1 - 3)  # E X^4 - 3 (E X^2)^2 for X = +-sigma0 d / P
    point = {u: sp.Rational(1, 3), uu: sp.Rational(4, 9)}
    assert abs(sp.N((sme.generator[1][(4, 0)] - kappa4 / 24).xreplace(point), 30)) < 1e-25
    outcomes, _ = _rmsprop_outcomes(SYMMETRIC, values["c"], values["sigma0"], values["eps0"])
    for phi in (u,):
        step = sp.series((sum(phi.xreplace(o) for o in outcomes) / 2).xreplace(point), s, 0, 6).removeO()
        flow = _generator_exp(sme, phi, 2).xreplace(point).xreplace({h: s**2})
        error = sp.expand(step - flow)
        assert all(abs(sp.N(error.coeff(s, k), 30)) < 1e-25 for k in range(6))


def test_adam_sde_is_malladi_et_al():
    """dtheta = -P^{-1} m dt, dm = c1 (grad E - m) dt + sigma0 c1 Sigma^{1/2} dW, du = c2 (diag Sigma - u) dt
    (Malladi et al., arXiv:2205.10287, Adam SDE without bias correction)."""
    c1, c2, sigma0, eps0 = sp.symbols("c_1 c_2 sigma_0 epsilon_0", positive=True)
    g, var = _mean_grad_and_var(LOSSES)
    sme = bea.stochastic_modified_equation(AdamSDE(), 0, losses=LOSSES, params=[u])
    m, uu = sme.params[1:]
    assert [str(p) for p in sme.params] == ["u", "m_u", "u_u"]
    P = sigma0 * sp.sqrt(uu) + eps0
    expected_b = sp.Matrix([-m / P, c1 * (g - m), c2 * (var - uu)])
    assert sp.simplify(sme.drift[0] - expected_b) == sp.zeros(3, 1)
    expected_d = sp.zeros(3)
    expected_d[1, 1] = sigma0**2 * c1**2 * var
    assert sp.expand(sme.diffusion[0] - expected_d) == sp.zeros(3)


# --- SAM on a random batch ----------------------------------------------------------------------------------


def test_sam_sgd_against_the_batch_average():
    rho = sp.Symbol("rho")
    gs = [sp.diff(E, u) for E in LOSSES]
    same = [g.xreplace({u: u + rho * g}) for g in gs]  # ascent and descent on the same example
    sme = bea.stochastic_modified_equation(SAMSGD(), 1, losses=LOSSES, params=[u])
    mean = sum(same) / 3
    assert sp.expand(sme.drift[0][0] + mean) == 0
    assert sme.diffusion[0][0, 0] == 0
    assert sp.expand(sme.diffusion[1][0, 0] - sum((d - mean) ** 2 for d in same) / 3) == 0
    independent = bea.stochastic_modified_equation(SAMSGD(independent=True), 0, losses=LOSSES, params=[u])
    cross = sum(gj.xreplace({u: u + rho * gi}) for gi in gs for gj in gs) / 9
    assert sp.expand(independent.drift[0][0] + cross) == 0


@pytest.mark.parametrize("order", [0, 1])
def test_one_loss_is_the_deterministic_rule(order):
    """Zero noise: SAM-SGD, minibatch(GD()) and a user rule on one loss are the deterministic engine's result."""
    E = (1 - a * b) ** 2 / 2 + a**3 / 3
    for stochastic, deterministic in [(SAMSGD(), bea.rules.SAM()),
                                      (bea.rules.minibatch(bea.rules.GD()), bea.rules.GD()),
                                      (bea.rules.stochastic_rule(lambda t, g, h, xi: t - h * g(t), batch_size=1),
                                       bea.rules.GD())]:
        sme = bea.stochastic_modified_equation(stochastic, order, loss=E, params=[a, b])
        me = bea.modified_equation(deterministic, order, loss=E, params=[a, b])
        for l in range(order + 1):
            assert sp.expand(sme.drift[l] - me.terms[l]) == sp.zeros(2, 1)
            assert sme.diffusion[l] == sp.zeros(2)


def test_hyperparameters_tied_to_the_step_are_expanded_in_h():
    """rho = c * bea.h is the step's h: it was left a constant, so b_0 of SAM-SGD held h (drift[l] not the
    coefficient of h^l), and a decay scaled as 1 - c h was refused as "not O(h)"."""
    c = sp.Symbol("c", positive=True)
    E = (1 - a * b) ** 2 / 2 + a**3 / 3
    sme = bea.stochastic_modified_equation(SAMSGD(rho=c * h), 1, loss=E, params=[a, b])
    me = bea.modified_equation(bea.rules.SAM(rho=c * h), 1, loss=E, params=[a, b])
    for l in range(2):
        assert sp.expand(sme.drift[l] - me.terms[l]) == sp.zeros(2, 1)
    assert h not in sme.drift[0].free_symbols
    rms = bea.stochastic_modified_equation(bea.rules.minibatch(bea.rules.RMSProp(rho=1 - c * h)), 0,
                                           losses=[u**2, u], params=[u])
    s1 = rms.params[1]
    assert sp.expand(rms.drift[0][1] - c * ((4 * u**2 + 1) / 2 - s1)) == 0  # c (E[g_I^2] - s), g_I = 2u or 1


# --- user-written rules -------------------------------------------------------------------------------------


def test_user_rules_reproduce_the_built_in_ones():
    T = sp.Symbol("T", positive=True)
    langevin = bea.rules.stochastic_rule(lambda t, g, h, xi, sigma: t - h * g(t) + h**0.5 * sigma * xi,
                                         gaussians=1, sigma=sp.sqrt(2 * T))
    built_in = bea.stochastic_modified_equation(Langevin(temperature=T), 2, loss=u**4 / 4 - u, params=[u],
                                                allow_generator=True)
    custom = bea.stochastic_modified_equation(langevin, 2, loss=u**4 / 4 - u, params=[u], allow_generator=True)
    assert custom.generator == built_in.generator
    sgd = bea.rules.stochastic_rule(lambda t, g, h, xi: t - h * g(t), batch_size=2, replacement=False)
    assert bea.stochastic_modified_equation(sgd, 2, losses=LOSSES, params=[u], allow_generator=True).generator == \
        bea.stochastic_modified_equation(SGD(batch_size=2, replacement=False), 2, losses=LOSSES, params=[u],
                                         allow_generator=True).generator

    def momentum(theta, state, grad, h, xi, c):
        (v,) = state
        v = (1 - c * h) * v - h * grad(theta)
        return theta + h * v, (v,)

    user = bea.rules.stochastic_rule(momentum, batch_size=1, state=["v"], c=None)
    assert bea.stochastic_modified_equation(user, 1, losses=LOSSES, params=[u]).generator == \
        bea.stochastic_modified_equation(SGDMomentum(friction=sp.Symbol("c")), 1, losses=LOSSES, params=[u]).generator


def test_sgld_adds_the_two_noises():
    """SGLD (batch 1 plus sigma sqrt(h) xi): D_0 = sigma^2, D_1 = Sigma + Langevin's own D_1 (independent draws)."""
    sigma = sp.Symbol("sigma", positive=True)
    sgld = bea.rules.stochastic_rule(lambda t, g, h, xi, sigma: t - h * g(t) + h**0.5 * sigma * xi,
                                     batch_size=1, gaussians=1, sigma=sigma)
    sme = bea.stochastic_modified_equation(sgld, 1, losses=LOSSES, params=[u])
    E = sum(LOSSES) / 3
    _, var = _mean_grad_and_var(LOSSES)
    langevin = bea.stochastic_modified_equation(Langevin(temperature=sigma**2 / 2), 1, loss=E, params=[u])
    assert sme.diffusion[0][0, 0] == sigma**2
    assert sp.expand(sme.diffusion[1][0, 0] - langevin.diffusion[1][0, 0] - var) == 0
    assert sp.expand(sme.drift[1][0] - langevin.drift[1][0]) == 0


def test_draws_and_scalings_the_engine_refuses():
    def refused(step, error, match, **options):
        rule = bea.rules.stochastic_rule(step, **{"gaussians": 1, **options})
        with pytest.raises(error, match=match):
            bea.stochastic_modified_equation(rule, 1, losses=LOSSES, params=[u])

    scaling = r"increments O\(h\) in mean and O\(sqrt h\) in fluctuation"
    refused(lambda t, g, h, xi: t + xi, bea.InconsistentRuleError, "does not vanish.*" + scaling)
    refused(lambda t, g, h, xi: t - h * g(t) + h * sp.exp(xi[0]), bea.UnsupportedError, r"exp\(.*polynomially")
    refused(lambda t, g, h, xi: t - h * g(t) + h * bea.rules.sqrt(xi), bea.UnsupportedError, r"sqrt|\*\*")
    refused(lambda t, g, h, xi: t - h * g(t) + h**0.25 * xi, bea.InconsistentRuleError, "power series in sqrt")
    refused(lambda t, g, h, xi: t - h**0.5 * g(t), bea.InconsistentRuleError, "mean increment of size sqrt")
    refused(lambda t, g, h, xi: t - h * g(t) + h**0.5 * xi * xi, bea.InconsistentRuleError, "mean increment",
            gaussians=1)
    with pytest.raises(bea.InconsistentRuleError, match=r"state s1_u moves .*1 - beta = c h.*SGDMomentum"):
        bea.stochastic_modified_equation(bea.rules.minibatch(bea.rules.HeavyBall(beta=sp.Rational(9, 10))), 1,
                                         losses=LOSSES, params=[u])


def test_state_symbols_must_not_clash():
    v_u = sp.Symbol("v_u")
    with pytest.raises(bea.UnknownSymbolError, match="v_u names a state"):
        bea.stochastic_modified_equation(SGDMomentum(), 0, losses=[u**2 + v_u * u, u], params=[u])


def test_two_states_must_not_share_a_symbol():
    # state v on param a_b and state v_a on param b are both v_a_b: one row of (theta, state) for two states
    a_b = sp.Symbol("a_b")

    def step(theta, state, grad, h, xi):
        return theta - h * grad(theta), state

    rule = bea.rules.stochastic_rule(step, batch_size=1, state=["v", "v_a"])
    with pytest.raises(bea.UnknownSymbolError, match="v_a_b names two states"):
        bea.stochastic_modified_equation(rule, 0, losses=[a_b**2, b**2], params=[a_b, b])


def test_ula_is_zygalakis_modified_equation():
    """Zygalakis (SIAM J. Sci. Comput. 33, 2011, "On the existence and the applications of modified equations for
    stochastic differential equations"): Euler-Maruyama for dX = f dt + sigma dW with additive noise is weakly
    matched to O(h^3) by dX = (f + h f_1) dt + (sigma + h sigma_1) dW with
        f_1 = -1/2 (f' f + 1/2 sum_jk (sigma sigma^T)_jk d_j d_k f),   sigma_1 = -1/2 f' sigma.
    For ULA f = -grad E, sigma = sqrt(2T) I: b_1 = -1/2 (H grad E - T grad(Laplacian E)), D_1 = 2 sigma sigma_1^T
    symmetrized = 2T H."""
    T = sp.Symbol("T", positive=True)
    E = a**4 / 4 + a * b**3 / 3 - a * b + b**2
    params = [a, b]
    sme = bea.stochastic_modified_equation(Langevin(temperature=T), 1, loss=E, params=params)
    f = -sp.Matrix([sp.diff(E, p) for p in params])
    jac = f.jacobian(params)
    sigma = sp.sqrt(2 * T) * sp.eye(2)
    second = sp.Matrix([sum((sigma * sigma.T)[j, k] * sp.diff(f[i], params[j], params[k])
                            for j in range(2) for k in range(2)) for i in range(2)])
    f1 = -(jac * f + second / 2) / 2
    sigma1 = -jac * sigma / 2
    assert sme.drift[0] == f and sme.diffusion[0] == 2 * T * sp.eye(2)
    assert (sme.drift[1] - f1).applyfunc(sp.expand) == sp.zeros(2, 1)
    assert (sme.diffusion[1] - (sigma * sigma1.T + sigma1 * sigma.T)).applyfunc(sp.expand) == sp.zeros(2)
