"""Modifying equations (inverse BEA), against independent references: the exact flow's Taylor series
(explicit Euler's modifying field is (phi_h - id)/h), BSeries.jl's `modifying_integrator` values, the
coordinate-free B-series evaluated on concrete losses, hand derivations, Rosca et al.'s explicit
regularizers (google-deepmind/discretisation_drift), and local-error slopes in arbitrary precision."""

import itertools
import json
from math import factorial

import mpmath as mp
import pytest
import sympy as sp

import bea
from bea._modifying import modifying_equation
from bea.engines.trees._trees import gamma, symmetry, trees_up_to
from bea.engines.trees._trees import order as tree_order
from bea.results._modifying import CoordinateFreeModifyingEquation, ModifyingEquation

R = sp.Rational
h = bea.h
a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2
POLY = (a * b - 1) ** 2 / 2 + a**4 / 12  # a concrete model without free constants (numerics)


def grad(E, params):
    return sp.Matrix([sp.diff(E, p) for p in params])


def lie_series(field, params, order):
    """[D^1, ..., D^{order}] of the flow of `field` at t = 0: D^{k+1} = (D^k)' field."""
    out = [sp.Matrix(field)]
    for _ in range(order - 1):
        out.append((out[-1].jacobian(params) * sp.Matrix(field)).applyfunc(sp.expand))
    return out


def elementary_differential(tree, f, u):
    """F(t) of a field f(u): F(.) = f, F([t_1..t_m]) = f^(m)(F(t_1), ..., F(t_m))."""
    children = [elementary_differential(c, f, u) for c in tree]
    out = []
    for component in f:
        total = 0
        for indices in itertools.product(range(len(u)), repeat=len(children)):
            term = sp.diff(component, *[u[j] for j in indices]) if indices else component
            for child, j in zip(children, indices):
                term *= child[j]
            total += term
        out.append(total)
    return sp.Matrix(out)


def assert_zero(column):
    assert all(sp.cancel(sp.expand(c)) == 0 for c in column), column


# ---------------------------------------------------------------- gradient descent


def test_gd_order_1_is_the_negative_implicit_regularizer():
    """E^ = E - (h/4)|grad E|^2 (by hand: GD on E^ has modified loss E^ + (h/4)|grad E^|^2 = E + O(h^2))."""
    me = modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b])
    g = grad(TWO_PARAM, [a, b])
    expected = TWO_PARAM - h / 4 * (g.T * g)[0]
    assert sp.expand(me.modified_loss().expr - expected) == 0
    assert isinstance(me, ModifyingEquation) and me.kind == "field"


def test_gd_is_the_exact_flow_divided_by_h():
    """Euler run on f^ is theta + h f^ = phi_h(theta), so f^_l = D^{l+1}/(l+1)! of the gradient flow."""
    me = modifying_equation(bea.rules.GD(), 3, loss=TWO_PARAM, params=[a, b])
    series = lie_series(-grad(TWO_PARAM, [a, b]), [a, b], 4)
    for l in range(4):
        assert_zero(me.terms[l] - series[l] / factorial(l + 1))


def test_gd_has_no_modifying_loss_at_order_2():
    """f^_2 = -(1/6)(nabla^3 E[grad E, grad E] + H H grad E) is not a gradient (grad of grad E^T H grad E has 2 H H)."""
    me = modifying_equation(bea.rules.GD(), 2, loss=TWO_PARAM, params=[a, b])
    with pytest.raises(bea.NoModifiedLossError, match="order 2"):
        me.modified_loss()
    assert me.modified_loss(1).terms[0] == TWO_PARAM


def test_coordinate_free_gd_is_the_exact_flow():
    """b^(t) = 1/gamma(t) for explicit Euler; the terms carry (-1)^{|t|}/sigma(t)."""
    cf = modifying_equation(bea.rules.GD(), 3)
    assert isinstance(cf, CoordinateFreeModifyingEquation)
    got = {t: c for term in cf.terms for c, t in term}
    for t in trees_up_to(4):
        assert got.get(t, 0) == R((-1) ** tree_order(t), gamma(t) * symmetry(t)), t
    assert cf.text(1) == "1/2 ∇²E ∇E"
    with pytest.raises(bea.NoModifiedLossError, match="order 2"):
        cf.modified_loss()
    first = modifying_equation(bea.rules.GD(), 1)
    (u0,), (u1,) = first.modified_loss()
    assert (u0[0], u0[2]) == (1, "E") and u1[0] == R(-1, 4) and u1[2] == "|∇E|²"
    assert r"\hat{f}" in cf.latex() and r"\hat{E}" in first.modified_loss_latex()


# BSeries.jl's test values for modifying_integrator of the explicit midpoint method (level sequences)
MIDPOINT_MODIFYING = {(1,): 1, (1, 2): 0, (1, 2, 2): R(1, 12), (1, 2, 3): R(1, 6), (1, 2, 2, 2): 0,
                      (1, 2, 2, 3): 0, (1, 2, 3, 3): R(-1, 8), (1, 2, 3, 4): R(-1, 8)}


def _tree(sequence):
    from bea.engines.trees._bseries_algebra import tree_from_level_sequence

    return tree_from_level_sequence(list(sequence))


def test_coordinate_free_midpoint_matches_bseries_jl():
    cf = modifying_equation(bea.rules.MIDPOINT, 3)
    got = {t: c for term in cf.terms for c, t in term}
    for sequence, value in MIDPOINT_MODIFYING.items():
        t = _tree(sequence)
        assert got.get(t, 0) == R((-1) ** tree_order(t)) * value / symmetry(t), sequence


def test_midpoint_on_the_nonlinear_oscillator_matches_bseries_jl():
    """BSeries.jl's nonlinear oscillator f = (-u2, u1)/(u1^2 + u2^2) under the explicit midpoint method: the concrete
    modifying field equals sum h^{|t|-1} b^(t)/sigma(t) F(t) with BSeries.jl's b^ (F(t) by plain differentiation)."""
    u = sp.symbols("u1 u2")
    f = [-u[1] / (u[0] ** 2 + u[1] ** 2), u[0] / (u[0] ** 2 + u[1] ** 2)]
    me = modifying_equation(bea.rules.MIDPOINT, 3, field=f, params=list(u))
    for l in range(4):
        expected = sp.zeros(2, 1)
        for sequence, value in MIDPOINT_MODIFYING.items():
            if len(sequence) == l + 1 and value != 0:
                t = _tree(sequence)
                expected += value / symmetry(t) * elementary_differential(t, f, u)
        assert_zero(me.terms[l] - expected)
    with pytest.raises(bea.NoModifiedLossError, match="order 2"):
        me.modified_loss()  # f = grad(angle) is curl-free away from 0; f^_2 = f/(12 r^4) is not


@pytest.mark.parametrize("rule", [bea.rules.GD(), bea.rules.MIDPOINT, bea.rules.HeavyBall(beta=R(1, 2))],
                         ids=["gd", "midpoint", "heavy-ball"])
def test_coordinate_free_equals_concrete(rule):
    """Two paths: the B-series substitution inverse evaluated on the loss (elementary differentials in SymPy) and the
    order-by-order recursion of the series engine on vector fields."""
    cf = modifying_equation(rule, 3)
    concrete = modifying_equation(rule, 3, loss=TWO_PARAM, params=[a, b])
    for l, column in enumerate(cf.evaluate(loss=TWO_PARAM, params=[a, b])):
        assert_zero(concrete.terms[l] - column)


def test_heavy_ball_follows_its_limiting_flow():
    """Heavy ball: f^_0 = -grad E (target -grad E/(1-beta)) and f^_1 = (1+beta)/(2(1-beta)^2) H grad E: the negative
    of its modified equation's f_1 = -(1+beta)/(2(1-beta)^3) H grad E scaled by 1 - beta (by hand)."""
    beta = sp.Symbol("beta")
    me = modifying_equation(bea.rules.HeavyBall(), 1, loss=TWO_PARAM, params=[a, b])
    g = grad(TWO_PARAM, [a, b])
    hessian = sp.hessian(TWO_PARAM, [a, b])
    assert_zero(me.terms[0] + g)
    assert_zero(me.terms[1] - (1 + beta) / (2 * (1 - beta) ** 2) * hessian * g)


# ---------------------------------------------------------------- local error slopes (mpmath, independent)


def _slope(step, flow_field, start, sizes):
    errors = []
    with mp.workdps(40):
        for hh in sizes:
            hh = mp.mpf(hh)
            flow = mp.odefun(lambda t, z: flow_field(*z), 0, [mp.mpf(s) for s in start])(hh)
            moved = step(hh, start)
            errors.append(mp.sqrt(sum((flow[i] - moved[i]) ** 2 for i in range(len(start)))))
        return float(mp.log(errors[0] / errors[1]) / mp.log(mp.mpf(sizes[0]) / mp.mpf(sizes[1])))


@pytest.mark.parametrize("p", [0, 1, 2])
def test_gd_on_the_modifying_field_has_local_error_slope_p_plus_2(p):
    me = modifying_equation(bea.rules.GD(), p, loss=POLY, params=[a, b])
    H = sp.Symbol("H")
    field = sp.lambdify([a, b, H], list(me.field().subs(h, H)), "mpmath")
    target = sp.lambdify([a, b], list(-grad(POLY, [a, b])), "mpmath")

    def step(hh, start):
        s = [mp.mpf(v) for v in start]
        g = field(*s, hh)
        return [s[i] + hh * g[i] for i in range(2)]

    slope = _slope(step, target, ["0.7", "-0.4"], ["0.01", "0.005"])
    assert abs(slope - (p + 2)) < 0.15, slope


# ---------------------------------------------------------------- design direction: a chosen implicit regularizer


def test_gd_implicitly_minimizing_a_chosen_regularizer():
    """target_loss = E + lam h |grad E|^2: E^ = E + h (lam - 1/4)|grad E|^2 (by hand), and GD on E^ has modified
    equation -grad E_target through order 1 (the forward engine)."""
    lam = sp.Symbol("lam")
    g = grad(TWO_PARAM, [a, b])
    norm = (g.T * g)[0]
    me = modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b], target_loss=TWO_PARAM + lam * h * norm)
    E_hat = me.modified_loss().expr
    assert sp.expand(E_hat - TWO_PARAM - h * (lam - R(1, 4)) * norm) == 0
    forward = bea.modified_equation(bea.rules.GD(), 1, field=list(-grad(E_hat, [a, b])), params=[a, b])
    assert_zero(forward.terms[0] + g)
    assert_zero(forward.terms[1] + grad(lam * norm, [a, b]))


# ---------------------------------------------------------------- games (Rosca, Wu, Dherin & Barrett, ICML 2021)

p1, q1 = sp.symbols("p1 q1")
E_PHI = p1 * q1 + p1**2 / 2 + p1**3 * q1 / 3
E_THETA = -p1 * q1 + q1**2 / 3 + p1**2 * q1**2 / 4


def _stop_gradient_grad(first, second, wrt, frozen):
    """grad_wrt(first . stop_gradient(second)) for columns of expressions (second frozen)."""
    copies = {s: sp.Dummy(str(s)) for s in frozen}
    held = [c.xreplace(copies) for c in second]
    value = sum((u * v for u, v in zip(first, held)), sp.S.Zero)
    return sp.Matrix([sp.diff(value, w).xreplace({v: k for k, v in copies.items()}) for w in wrt])


def _rosca(coefficients, player, other, own_loss, other_loss):
    """The regularization gradient of drift_utils.get_dd_coeffs (self_norm, other_dot_prod) as
    gan_grads_calculator applies it: c_s grad(grad_self E_self . sg(grad_self E_self)) + c_o grad(grad_other
    E_self . sg(grad_other E_other))."""
    c_self, c_other = coefficients
    both = [p1, q1]
    self_term = _stop_gradient_grad([sp.diff(own_loss, player)], [sp.diff(own_loss, player)], [player], both)
    cross = _stop_gradient_grad([sp.diff(own_loss, other)], [sp.diff(other_loss, other)], [player], both)
    return c_self * self_term + c_other * cross


def test_simultaneous_gd_cancelling_regularizers_match_rosca_et_al_for_equal_rates():
    """Equal rates: h f^_1 is minus the implicit regularization gradient with the repository's coefficients
    self_norm = other_dot_prod = lr/2 (lr = h)."""
    me = modifying_equation(bea.rules.SimultaneousGD(), 1, losses=[E_PHI, E_THETA], params=[[p1], [q1]])
    assert me.kind == "game"
    assert_zero(me.terms[0] - sp.Matrix([-sp.diff(E_PHI, p1), -sp.diff(E_THETA, q1)]))
    phi = _rosca((R(1, 2), R(1, 2)), p1, q1, E_PHI, E_THETA)
    theta = _rosca((R(1, 2), R(1, 2)), q1, p1, E_THETA, E_PHI)
    assert_zero(me.terms[1] - sp.Matrix([phi[0], theta[0]]))
    with pytest.raises(bea.NoModifiedLossError, match="order 0"):
        me.modified_loss()


def test_simultaneous_gd_unequal_rates_cross_term_uses_the_other_players_rate():
    """Rates h (phi) and r h (theta): by hand, h f^_1 for phi is (h/2) H_pp grad_p E_phi + (r h/2) grad_pq E_phi
    grad_q E_theta: the cross coefficient is the *other* player's lr/2, where drift_utils uses the player's own
    lr/2 for simultaneous updates (they agree only for equal rates)."""
    r = sp.Symbol("r", positive=True)
    me = modifying_equation(bea.rules.SimultaneousGD(ratio=r), 1, losses=[E_PHI, E_THETA], params=[[p1], [q1]])
    phi = _rosca((R(1, 2), r / 2), p1, q1, E_PHI, E_THETA)
    theta = _rosca((r / 2, R(1, 2)), q1, p1, E_THETA, E_PHI)  # theta's field is divided by its rate r
    assert_zero(me.terms[1] - sp.Matrix([phi[0], theta[0]]))
    repository = _rosca((R(1, 2), R(1, 2)), p1, q1, E_PHI, E_THETA)
    assert sp.expand(me.terms[1][0] - repository[0]) != 0


def test_alternating_gd_cancelling_regularizers_match_rosca_et_al_for_equal_rates():
    """Alternating, phi first, equal rates, one update each: the second player's other_dot_prod is
    -(lr/2)(2 lr_ratio - 1) = -lr/2 (drift_utils.get_dd_coeffs)."""
    me = modifying_equation(bea.rules.AlternatingGD(), 1, losses=[E_PHI, E_THETA], params=[[p1], [q1]])
    phi = _rosca((R(1, 2), R(1, 2)), p1, q1, E_PHI, E_THETA)
    theta = _rosca((R(1, 2), R(-1, 2)), q1, p1, E_THETA, E_PHI)
    assert_zero(me.terms[1] - sp.Matrix([phi[0], theta[0]]))


def test_sgd_steps_get_one_shared_regularizer():
    """Two SGD steps over batches E_1, E_2: one correction added to both losses cancels the drift, checked by the
    forward engine run on both corrected fields (it sees -grad E_k + correction)."""
    E1, E2 = (a - 1) ** 2 / 2 + a * b, (b + 1) ** 2 / 2 - a * b**2 / 3
    rule = bea.rules.SGDSteps(n=2)
    me = modifying_equation(rule, 1, losses=[E1, E2], params=[a, b])
    assert me.kind == "shared"
    correction = me.field()
    fields = [list(-grad(E, [a, b]) + correction) for E in (E1, E2)]
    forward = bea.modified_equation(rule, 1, fields=fields, params=[a, b])
    assert_zero(forward.terms[0] + grad((E1 + E2) / 2, [a, b]))
    assert_zero(forward.terms[1])


# ---------------------------------------------------------------- outputs and bad input


def test_exports():
    me = modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b])
    assert me.latex().startswith("\\begin{aligned}\n  \\hat{f}")
    data = json.loads(json.dumps(me.to_dict()))
    assert data["view"] == "modifying equation" and data["kind"] == "field"
    assert sp.expand(sp.sympify(data["terms"][1][0], locals={"a": a, "b": b, "x": x, "y": y}) - me.terms[1][0]) == 0
    pytest.importorskip("jax")
    import numpy as np

    field = me.to_jax()
    value = np.asarray(field(np.array([0.3, 0.5]), 0.1, x=1.0, y=0.4))
    exact = [float(c.subs({a: 0.3, b: 0.5, x: 1, y: 0.4, h: 0.1})) for c in me.field()]
    assert np.allclose(value, exact, rtol=1e-12)
    loss = me.modified_loss().to_jax()
    assert np.isclose(float(loss(np.array([0.3, 0.5]), 0.1, x=1.0, y=0.4)),
                      float(me.modified_loss().expr.subs({a: 0.3, b: 0.5, x: 1, y: 0.4, sp.Symbol("h", positive=True): 0.1})))


def test_bad_input():
    with pytest.raises(bea.BeaError, match="component"):
        modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b], target=[a])
    with pytest.raises(bea.BeaError, match="not both"):
        modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b], target=[a, b], target_loss=TWO_PARAM)
    with pytest.raises(bea.UnsupportedError, match="concrete"):
        modifying_equation(bea.rules.GD(), 1, target=[a, b])
    with pytest.raises(bea.UnsupportedError, match="coordinate-free"):
        modifying_equation(bea.rules.SimultaneousGD(), 1)
    with pytest.raises(bea.InvalidOrderError):
        modifying_equation(bea.rules.GD(), -1, loss=TWO_PARAM, params=[a, b])
    me = modifying_equation(bea.rules.GD(), 1, loss=TWO_PARAM, params=[a, b])
    with pytest.raises(bea.InvalidOrderError):
        me.field(3)


def test_explicit_target_on_a_linear_limit():
    """target = -2 grad E for heavy ball with beta = 1/2 (limit -2 grad E): the same field as the default;
    target = -grad E: f^_0 = -(1/2) grad E."""
    rule = bea.rules.HeavyBall(beta=R(1, 2))
    g = grad(TWO_PARAM, [a, b])
    default = modifying_equation(rule, 1, loss=TWO_PARAM, params=[a, b])
    explicit = modifying_equation(rule, 1, loss=TWO_PARAM, params=[a, b], target=list(-2 * g))
    assert explicit.terms == default.terms
    slower = modifying_equation(rule, 0, loss=TWO_PARAM, params=[a, b], target=list(-g))
    assert_zero(slower.terms[0] + g / 2)


# -- review of cf3a25c ------------------------------------------------------------------------------------

def test_symbolic_hyperparameters_at_higher_orders_match_the_closed_form():
    """Heavy ball on E = lam x^2/2 is linear: theta' = z(h) theta with z the slow root of
    z^2 = (1 + beta - h mu) z - beta for the field -mu x. Run on the modifying field (a linear field -mu(h) x), the
    slow root must be exp(h f_0) with f_0 = -lam/(1 - beta): solve z(h; mu(h)) = exp(-h lam/(1 - beta)) for mu by
    series (independent of the engines) and compare with f^ through h^2."""
    beta, lam, hh, mu = sp.symbols("beta lam h mu")
    me = modifying_equation(bea.rules.HeavyBall(beta=beta), 2, loss=lam * x**2 / 2, params=[x])
    coefficients = [sp.cancel(t[0] / -x) for t in me.terms]  # f^_l = -mu_l x
    slow = ((1 + beta - hh * mu) + sp.sqrt((1 + beta - hh * mu) ** 2 - 4 * beta)) / 2  # the root -> 1 as h -> 0
    for values in ({beta: sp.Rational(1, 3), lam: 2}, {beta: sp.Rational(1, 2), lam: 1}, {beta: sp.Rational(4, 5), lam: 3}):
        mu_h = sum(c * hh**l for l, c in enumerate(coefficients)).subs(values)
        residual = sp.series((slow.subs(mu, mu_h) - sp.exp(-hh * lam / (1 - beta))).subs(values), hh, 0, 4)
        assert sp.expand(residual.removeO()) == 0, values


def test_rules_that_evaluate_the_field_away_from_theta_are_refused():
    """SAM with an independent rho evaluates the field at theta + O(1): its limiting flow is not a pointwise map
    of the field, so the order-by-order solution does not apply; refused instead of returning a wrong field."""
    with pytest.raises(bea.UnsupportedError, match="not a pointwise map of the field.*rho = c\\*h"):
        modifying_equation(bea.rules.SAM(rho=sp.Rational(1, 3)), 1, loss=x**3 / 3 + x**2 / 2, params=[x])


def test_a_field_with_h_parts_is_split_by_powers_of_h():
    me = modifying_equation(bea.rules.GD(), 2, field=[-x + bea.h * x**2], params=[x])
    # target: the field's own limit -x; GD on f^ is the time-h flow of -x: f^ = (e^{-h} - 1)/h x
    assert [list(t) for t in me.terms] == [[-x], [x / 2], [-x / 6]]
    me.to_jax(term=0)  # each term is free of h


def test_command_line_modifying(capsys):
    from bea.cli import main

    assert main(["derive", "gd", "--loss", "(y - a*b*x)**2/2", "--params", "a,b", "--order", "1", "--modifying",
                 "--modified-loss"]) == 0
    out = capsys.readouterr().out
    assert "modifying field f^" in out and "f^_1[a] = " in out and "E^_1 = " in out
    assert main(["derive", "heavy-ball", "--loss", "a**4/4 + a**2/2", "--params", "a", "--order", "2",
                 "--modifying"]) == 0  # symbolic beta at order 2 (it was refused as a clash before)


def test_small_review_items():
    me = modifying_equation(bea.rules.GD(), 1, loss=x**4 / 4, params=[x])
    with pytest.raises(bea.InvalidOrderError):
        me.to_jax(term=True)  # a bool is not a term index
    with pytest.raises(bea.UnsupportedError, match="give losses="):
        modifying_equation(bea.rules.SimultaneousGD(), 1, field=[-y, x], params=[[x], [y]])
