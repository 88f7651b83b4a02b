"""Rules with memory against closed forms, multistep relations and seed 002's formulas."""

import hypothesis.strategies as st
import pytest
import sympy as sp
from hypothesis import given, settings
from reference import SubstitutionOracle, flow_at, h, lowest_power

import bea
from bea.rules import Adam, HeavyBall, Nesterov, RMSProp, memory_rule, sqrt

a, b, x, y, q = sp.symbols("a b x y q")
beta, rho = sp.symbols("beta rho")
eps = sp.Symbol("epsilon", positive=True)
SMALL = a**3 / 3 + a * b**2 / 2 + b**2 / 2
TWO_PARAM = ((sp.Rational(3, 2) - 2 * a * b) ** 2) / 2  # seed 002 Section 6: x = 2, y = 3/2


def _grad(loss, params):
    return sp.Matrix([loss.diff(p) for p in params])


def _zero(column):
    return all(sp.simplify(c) == 0 for c in column)


def test_heavy_ball_ghosh_first_correction():
    loss = (y - a * b * x) ** 2 / 2
    me = bea.modified_equation(HeavyBall(), 1, loss=loss, params=[a, b])
    g, H = _grad(loss, [a, b]), sp.hessian(loss, [a, b])
    assert _zero(me.terms[0] + g / (1 - beta))
    assert _zero(me.terms[1] + (1 + beta) / (2 * (1 - beta) ** 3) * H * g)


def test_heavy_ball_quadratic_principal_root():
    """E = q a^2/2: theta_n = lambda^n theta_0 with lambda the principal root of
    lambda^2 - (1 + beta - h q) lambda + beta = 0, so f~ = log(lambda)/h * a exactly."""
    order = 4
    me = bea.modified_equation(HeavyBall(), order, loss=q * a**2 / 2, params=[a])
    gap = sp.Symbol("gap", positive=True)  # 1 - beta > 0 picks the principal branch of the root
    s = 2 - gap - h * q
    principal = (s + sp.sqrt(s**2 - 4 * (1 - gap))) / 2
    exact = sp.series(sp.log(principal) / h, h, 0, order + 1).removeO().subs(gap, 1 - beta)
    for l in range(order + 1):
        assert sp.simplify(me.terms[l][0] - exact.coeff(h, l) * a) == 0, l


@pytest.mark.parametrize("order", [1, 2, 3])
def test_heavy_ball_two_step_relation(order):
    """Along the modified flow, phi_h - (1 + beta) theta + beta phi_{-h} + h grad E = O(h^{order+2})."""
    b_ = sp.Rational(1, 3)
    me = bea.modified_equation(HeavyBall(beta=b_), order, loss=SMALL, params=[a, b])
    forward, backward = flow_at(me.terms, [a, b], order, 1), flow_at(me.terms, [a, b], order, -1)
    theta = sp.Matrix([a, b])
    residual = forward - (1 + b_) * theta + b_ * backward + h * _grad(SMALL, [a, b])
    assert lowest_power(residual, order) == order + 2


@pytest.mark.parametrize("order", [1, 2])
def test_nesterov_two_step_relation(order):
    """theta_{n+1} = theta_n + beta (theta_n - theta_{n-1}) - h grad E(theta_n + beta (theta_n - theta_{n-1}))."""
    b_ = sp.Rational(1, 2)
    me = bea.modified_equation(Nesterov(beta=b_), order, loss=SMALL, params=[a, b])
    forward, backward = flow_at(me.terms, [a, b], order, 1), flow_at(me.terms, [a, b], order, -1)
    theta = sp.Matrix([a, b])
    look_ahead = theta + b_ * (theta - backward)
    grad = SubstitutionOracle([SMALL], [a, b], order + 2)
    residual = forward - look_ahead + h * grad(look_ahead)
    assert lowest_power(residual, order) == order + 2


def _seed002_first_order(loss, params, beta_, rho_):
    """Seed 002 eqs (2)-(3): f_0 and f_1 of Adam (beta_ = 0: RMSProp) for large n."""
    beta_, rho_ = sp.sympify(beta_), sp.sympify(rho_)  # exact, also for beta_ = 0
    g = [loss.diff(p) for p in params]
    norm = sum(sp.sqrt(gi**2 + eps) for gi in g)  # the perturbed one-norm
    f0, f1 = [], []
    for j, p in enumerate(params):
        r = sp.sqrt(g[j] ** 2 + eps)
        bias = (
            sp.Rational(1, 2)
            * ((1 + beta_) / (1 - beta_) - (1 + rho_) / (1 - rho_) + (1 + rho_) / (1 - rho_) * eps / (g[j] ** 2 + eps))
            * norm.diff(p)
        )
        f0.append(-g[j] / r)
        f1.append(-bias / r)
    return f0, f1


def _agree(expr, reference, point):
    return abs(sp.N((expr - reference).subs(point), 60)) < 1e-40


def test_adam_reproduces_seed_002():
    me = bea.modified_equation(Adam(), 1, loss=TWO_PARAM, params=[a, b])
    f0, f1 = _seed002_first_order(TWO_PARAM, [a, b], beta, rho)
    point = {a: sp.Rational(3, 7), b: sp.Rational(-5, 4), eps: sp.Rational(1, 10)}
    point.update({rho: sp.Rational(1, 3), beta: sp.Rational(2, 3)})
    for j in range(2):
        assert _agree(me.terms[0][j], f0[j], point)
        assert _agree(me.terms[1][j], f1[j], point)


@settings(max_examples=4, deadline=None)
@given(
    beta_=st.integers(0, 19).map(lambda k: sp.Rational(k, 20)),
    rho_=st.integers(0, 19).map(lambda k: sp.Rational(k, 20)),
    coefficients=st.lists(st.integers(-3, 3), min_size=3, max_size=3),
)
def test_rmsprop_and_adam_random_losses(beta_, rho_, coefficients):
    c1, c2, c3 = coefficients
    loss = a**4 / 4 + c1 * a**2 * b + c2 * b**2 / 2 + c3 * a * b + a + b**3 / 3
    point = {a: sp.Rational(2, 3), b: sp.Rational(-1, 5), eps: sp.Rational(1, 7)}
    for rule_, beta_used in [(RMSProp(rho=rho_), 0), (Adam(beta=beta_, rho=rho_), beta_)]:
        me = bea.modified_equation(rule_, 1, loss=loss, params=[a, b])
        f0, f1 = _seed002_first_order(loss, [a, b], beta_used, rho_)
        for j in range(2):
            assert _agree(me.terms[0][j], f0[j], point)
            assert _agree(me.terms[1][j], f1[j], point)


def test_adam_table_1_limits():
    """Small eps: the bias is (1/2){(1+beta)/(1-beta) - (1+rho)/(1-rho)} grad ||grad E||_1 / |g_j|;
    large eps: f~ -> -(1/sqrt(eps)) grad (E + h/(4 sqrt(eps)) (1+beta)/(1-beta) |grad E|^2) (seed 002 eqs 5, 7)."""
    me = bea.modified_equation(Adam(), 1, loss=TWO_PARAM, params=[a, b])
    g = _grad(TWO_PARAM, [a, b])
    H = sp.hessian(TWO_PARAM, [a, b])
    point = {a: sp.Rational(3, 7), b: sp.Rational(5, 4), rho: sp.Rational(1, 3), beta: sp.Rational(2, 3)}
    gp = g.subs(point)
    one_norm = sum(sp.sqrt(gi**2) for gi in g)  # |g_1| + |g_2|, smooth where no component vanishes
    small = [
        -sp.Rational(1, 2) * ((1 + beta) / (1 - beta) - (1 + rho) / (1 - rho)) * one_norm.diff(p) / sp.sqrt(g[j] ** 2)
        for j, p in enumerate([a, b])
    ]
    large = -(1 + beta) / (2 * (1 - beta)) * H * g  # coefficient of 1/eps in f_1
    for j in range(2):
        assert all(gi != 0 for gi in gp)
        assert _agree(me.terms[1][j].subs(eps, 0), small[j], point)
        delta = sp.Symbol("delta", positive=True)  # eps = 1/delta^2
        scaled = sp.limit(me.terms[1][j].subs(point).subs(eps, 1 / delta**2) / delta**2, delta, 0)
        assert sp.simplify(scaled - large[j].subs(point)) == 0


def test_custom_memory_rule_adabelief_and_ema_of_weights():
    """The same mechanism on rules the papers do not treat: AdaBelief (state coupled through m)."""

    def adabelief(theta, state, grad, h, n, beta1, beta2, eps):
        m, s = state
        g = grad(theta)
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * (g - m) * (g - m)
        return theta - h * m / sqrt(s + eps), (m, s)

    rule_ = memory_rule(adabelief, decays=["beta1", "beta2"], beta1=sp.Rational(1, 2), beta2=sp.Rational(3, 4), eps=eps)
    me = bea.modified_equation(rule_, 2, loss=SMALL, params=[a, b])
    # On the slow manifold s = O(h^2): AdaBelief is GD with step 1/sqrt(eps), heavy-ball-like at first order.
    g = _grad(SMALL, [a, b])
    assert _zero(me.terms[0] + g / sp.sqrt(eps))
    b1 = sp.Rational(1, 2)
    H = sp.hessian(SMALL, [a, b])
    first = -(1 + b1) / (2 * (1 - b1)) * H * g / eps  # heavy ball with step h (1 - beta1)/sqrt(eps)
    assert _zero(me.terms[1] - first)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="slow manifold"):
        HeavyBall(beta=1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Adam(rho=-0.5)
    with pytest.raises(ValueError, match="eps"):
        RMSProp(eps=0)
    with pytest.raises(ValueError, match="eps_position"):
        Adam(eps_position="middle")


def test_wrong_declared_decay_is_reported():
    def hb(theta, state, grad, h, n):
        (v,) = state
        v = sp.Rational(1, 2) * v + grad(theta)
        return theta - h * v, (v,)

    with pytest.raises(ValueError, match="outside"):
        memory_rule(hb, decays=[sp.Rational(-3, 4)])
    # Declared 0 where the recursion contracts by 1/2: the sweeps cannot settle, and say so.
    with pytest.raises(bea.InconsistentRuleError, match="slow manifold"):
        bea.modified_equation(memory_rule(hb, decays=[0]), 1, loss=SMALL, params=[a, b])


def test_iterates_match_optax():
    """The rule's own iteration (bias correction, eps placement) is the optimizer of the libraries."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    optax = pytest.importorskip("optax")
    loss = sp.lambdify([[a, b]], TWO_PARAM, "jax")

    def fn(t):
        return loss(list(t))

    cases = [
        (Adam(beta=0.9, rho=0.999, eps=1e-8), optax.adam(0.01, b1=0.9, b2=0.999, eps=0.0, eps_root=1e-8)),
        (Adam(beta=0.9, rho=0.99, eps=1e-6, eps_position="outside"), optax.adam(0.01, b1=0.9, b2=0.99, eps=1e-6)),
        (HeavyBall(beta=0.9), optax.sgd(0.01, momentum=0.9)),
        (RMSProp(rho=0.9, eps=1e-8), optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=True)),
    ]
    for rule_, optimizer in cases:
        path = bea.iterate(rule_, TWO_PARAM, [1.0, 0.5], 0.01, 40, params=[a, b])
        theta = jnp.array([1.0, 0.5])
        state = optimizer.init(theta)
        for _ in range(40):
            updates, state = optimizer.update(jax.grad(fn)(theta), state)
            theta = theta + updates
        np.testing.assert_allclose(path[-1], theta, rtol=1e-12, atol=1e-14, err_msg=rule_.name)


def test_element_wise_rules_with_several_losses_are_refused_with_advice():
    """Element-wise operations have a coordinate-free view (tests/engines/test_elementwise.py), but not
    together with several losses: a clear error that points to the concrete view."""
    product = bea.rules.rule(lambda theta, grad, h: theta - h * grad[0](theta) * grad[1](theta), n_losses=2)
    with pytest.raises(bea.UnsupportedError, match="concrete losses"):
        bea.modified_equation(product, 1)
    assert isinstance(bea.modified_equation(Adam(), 1), bea.ElementwiseModifiedEquation)


@pytest.mark.parametrize("rule_, order", [(HeavyBall(), 2), (Nesterov(), 1)], ids=["heavy-ball", "nesterov"])
def test_coordinate_free_momentum_equals_concrete(rule_, order):
    """The B-series of the slow manifold, instantiated on a loss, equals the concrete engine (another code path)."""
    cf = bea.modified_equation(rule_, order)
    concrete = bea.modified_equation(rule_, order, loss=SMALL, params=[a, b])
    for got, want in zip(cf.evaluate(loss=SMALL, params=[a, b]), concrete.terms):
        assert _zero(got - want)
    g, H = _grad(SMALL, [a, b]), sp.hessian(SMALL, [a, b])
    if isinstance(rule_, HeavyBall) and not isinstance(rule_, Nesterov):
        assert _zero(cf.evaluate(loss=SMALL, params=[a, b])[1] + (1 + beta) / (2 * (1 - beta) ** 3) * H * g)


def test_finite_n_heavy_ball_closed_form_and_limit():
    """f^{(n)} = -c_n g - h (S_n + c_n^2/2) H g with c_n = (1 - beta^{n+1})/(1 - beta) and
    S_n = sum_k beta^{n-k} sum_{l=k}^{n-1} c_l (unrolling the EMA by hand); -> Ghosh et al. as n -> infinity."""
    g, H = _grad(SMALL, [a, b]), sp.hessian(SMALL, [a, b])

    def c(l):
        return (1 - beta ** (l + 1)) / (1 - beta)

    for n in (0, 1, 4):
        me = bea.finite_n_modified_equation(HeavyBall(), n, loss=SMALL, params=[a, b])
        S = sum(beta ** (n - k) * sum(c(l) for l in range(k, n)) for k in range(n + 1))
        assert _zero(me.terms[0] + c(n) * g)
        assert _zero(me.terms[1] + (S + c(n) ** 2 / 2) * H * g)
    half = {beta: sp.Rational(1, 2)}
    late = bea.finite_n_modified_equation(HeavyBall(beta=sp.Rational(1, 2)), 60, loss=SMALL, params=[a, b])
    limit = bea.modified_equation(HeavyBall(beta=sp.Rational(1, 2)), 1, loss=SMALL, params=[a, b])
    point = {a: sp.Rational(1, 3), b: sp.Rational(2, 5)}
    gap = max(abs(sp.N((late.terms[1][j] - limit.terms[1][j]).subs(point).subs(half))) for j in range(2))
    assert 0 < gap < 1e-15


@pytest.mark.parametrize("n", [0, 1, 3])
def test_finite_n_adam_seed_002_remark_3_2(n):
    """Seed 002 eq. (9) with the full-batch terms of Remark 3.2 (transients beta^{n+1}, rho^{n+1})."""
    me = bea.finite_n_modified_equation(Adam(), n, loss=TWO_PARAM, params=[a, b])
    g = [TWO_PARAM.diff(p) for p in (a, b)]
    norm = sum(sp.sqrt(gi**2 + eps) for gi in g)
    ell = beta / (1 - beta) - (n + 1) * beta ** (n + 1) / (1 - beta ** (n + 1))
    pee = rho / (1 - rho) - (n + 1) * rho ** (n + 1) / (1 - rho ** (n + 1))
    point = {a: sp.Rational(3, 7), b: sp.Rational(-5, 4), eps: sp.Rational(1, 10)}
    point.update({rho: sp.Rational(1, 3), beta: sp.Rational(2, 3)})
    for j, p in enumerate((a, b)):
        R, M, dnorm = sp.sqrt(g[j] ** 2 + eps), g[j], norm.diff(p)
        L, Lbar, P, Pbar = ell * dnorm, dnorm, pee * g[j] * dnorm, g[j] * dnorm
        f0 = -M / R
        f1 = M * (2 * P + Pbar) / (2 * R**3) - (2 * L + Lbar) / (2 * R)
        assert _agree(me.terms[0][j], f0, point)
        assert _agree(me.terms[1][j], f1, point)


def test_finite_n_bad_input():
    with pytest.raises(bea.InvalidOrderError, match="non-negative"):
        bea.finite_n_modified_equation(HeavyBall(), -1, loss=SMALL, params=[a, b])
    with pytest.raises(bea.InvalidOrderError, match="first order"):
        bea.finite_n_modified_equation(HeavyBall(), 2, order=2, loss=SMALL, params=[a, b])
    with pytest.raises(bea.UnknownSymbolError, match="no state"):
        bea.finite_n_modified_equation(bea.rules.GD(), 2, loss=SMALL, params=[a, b])


def test_adamw_decoupled_weight_decay():
    lam = sp.Symbol("lambda", positive=True)
    me = bea.modified_equation(Adam(weight_decay=lam), 0, loss=SMALL, params=[a, b])
    g = _grad(SMALL, [a, b])
    expected = [-(g[j] / sp.sqrt(g[j] ** 2 + eps) + lam * p) for j, p in enumerate((a, b))]
    assert _zero(me.terms[0] - sp.Matrix(expected))
