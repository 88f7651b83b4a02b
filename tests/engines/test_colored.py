"""Coordinate-free view of rules with several losses (coloured trees): SGD over batches, games, compositions.

References that share no code with the B-series route: the concrete engine on
random polynomial losses (series expansion + correction recursion), seed 003's
closed forms (Theorem 4, eqs 5-6 and 9-12) built here by hand, GD's rational
tree coefficients (full-batch limit), and fitted local-error slopes of the
initial-point flows against the discrete steps.
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from latex_check import check_latex

import bea
from bea.engines.trees._colored_trees import Colored, Label, colored_trees_up_to, to_plain
from bea.rules import GD, AlternatingGD, SGDSteps, SimultaneousGD, compose, flooding_crossing

R = sp.Symbol("r", positive=True)


@st.composite
def polynomial_losses(draw, count, dim):
    params = list(sp.symbols(f"q0:{dim}"))
    out = []
    for _ in range(count):
        loss = sum(sp.Rational(draw(st.integers(1, 3)), 2) * p**2 for p in params)
        for _ in range(draw(st.integers(1, 3))):
            factors = draw(st.lists(st.sampled_from(params), min_size=2, max_size=4))
            loss += sp.Rational(draw(st.integers(-2, 2)), draw(st.integers(1, 3))) * sp.Mul(*factors)
        out.append(sp.expand(loss))
    return out, params


def _assert_views_agree(rule, losses, params, order):
    concrete = bea.modified_equation(rule, order, losses=losses, params=params)
    evaluated = bea.modified_equation(rule, order).evaluate(losses=losses, params=params)
    for l in range(order + 1):
        assert sp.expand(evaluated[l] - concrete.terms[l]) == sp.zeros(concrete.terms[l].rows, 1), f"f_{l}"


@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(st.data(), st.sampled_from([SGDSteps(2), SGDSteps(3), compose(GD(), GD(), GD(), losses=(0, 1, 0))]))
def test_sgd_and_compositions_agree_with_the_concrete_engine(data, rule):
    losses, params = data.draw(polynomial_losses(rule.n_losses, data.draw(st.integers(1, 2))))
    _assert_views_agree(rule, losses, params, order=2)


@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(st.data(), st.sampled_from([SimultaneousGD, AlternatingGD]), st.sampled_from([1, sp.Rational(1, 2), 3]))
def test_games_agree_with_the_concrete_engine(data, game, ratio):
    sizes = data.draw(st.sampled_from([(1, 1), (1, 2), (2, 1)]))
    losses, params = data.draw(polynomial_losses(2, sum(sizes)))
    rule = game(players=sizes, ratio=ratio)
    _assert_views_agree(rule, losses, [params[: sizes[0]], params[sizes[0]:]], order=2)


def test_game_terms_hold_for_any_player_sizes():
    """The coordinate-free result does not depend on the block sizes it was derived with."""
    assert bea.modified_equation(SimultaneousGD(players=(1, 1)), 2).terms == \
        bea.modified_equation(SimultaneousGD(players=(3, 2)), 2).terms


def _tree(loss, *children, block=None):
    return Colored(Label(loss, block), tuple(sorted(children, key=lambda t: (t.label.loss, t.children))))


def _as_dict(terms):
    return {t: c for c, t in terms}


@pytest.mark.parametrize("n", [2, 3, 4])
def test_seed_003_theorem_4_field(n):
    """f_1 = (1/n) sum_{tau < mu} H_mu g_tau - (n/2) Hbar gbar (per step of size h), term by term."""
    cf = bea.modified_equation(SGDSteps(n), 1)
    expected = {}
    for mu in range(n):
        for tau in range(n):
            t = _tree(mu, _tree(tau))
            expected[t] = expected.get(t, 0) - sp.Rational(n, 2) / n**2 + (sp.Rational(1, n) if tau < mu else 0)
    assert _as_dict(cf.terms[1]) == {t: c for t, c in expected.items() if c != 0}
    assert _as_dict(cf.terms[0]) == {_tree(k): -sp.Rational(1, n) for k in range(n)}


def test_seed_003_eqs_9_10_in_words():
    cf = bea.modified_equation(SimultaneousGD(), 1)
    assert cf.text(0) == "-∇_φE_φ - ∇_θE_θ"
    assert cf.text(1) == ("-1/2 ∇_φ∇_φE_φ ∇_φE_φ - 1/2 ∇_φ∇_θE_φ ∇_θE_θ "
                          "- 1/2 ∇_θ∇_φE_θ ∇_φE_φ - 1/2 ∇_θ∇_θE_θ ∇_θE_θ")
    # alternating: the second player's interaction term flips sign (Rosca et al. 2021)
    alternating = bea.modified_equation(AlternatingGD(ratio=R), 1)
    assert "+ r/2 ∇_θ∇_φE_θ ∇_φE_φ" in alternating.text(1)


@pytest.mark.parametrize("n", [2, 3])
def test_full_batch_limit_is_gd(n):
    """n identical batches: merging the colours gives GD's rational tree coefficients (seed 003 B.3) to order 3."""
    merged = [dict() for _ in range(4)]
    for l, term in enumerate(bea.modified_equation(SGDSteps(n), 3).terms):
        for c, t in term:
            merged[l][to_plain(t)] = merged[l].get(to_plain(t), 0) + c
    gd = bea.modified_equation(GD(), 3)
    for l in range(4):
        assert {t: c for t, c in merged[l].items() if c != 0} == _as_dict(gd.terms[l])


def test_flooding_is_forward_gr_coordinate_free():
    """Karakida et al. Thm 5.1: ascent then descent = theta - h^2 (grad E(theta + h g) - g)/h (order 3)."""
    flooding = bea.modified_equation(flooding_crossing("forward"), 3)
    written = bea.rules.rule(lambda theta, grad, h: theta - h * (grad(theta + h * grad(theta)) - grad(theta)))
    assert flooding.terms == bea.modified_equation(written, 3).terms
    assert flooding.text(1) == "-∇²E ∇E"


def test_colored_tree_counts():
    """Trees with k labels: k, k^2, k (k^2 + k)/2 + k^3, ... (for k = 2: twice OEIS A000151)."""
    assert [sum(1 for t in colored_trees_up_to(n, [Label(0), Label(1)]) if _order(t) == n) for n in (1, 2, 3, 4)] == \
        [2, 4, 14, 52]


def _order(t):
    return 1 + sum(_order(c) for c in t.children)


def test_latex_of_several_losses():
    check_latex(bea.modified_equation(SGDSteps(3), 2).latex())
    check_latex(bea.modified_equation(SGDSteps(2), 2).latex("field"))
    check_latex(bea.modified_equation(AlternatingGD(ratio=R), 2).latex())
    check_latex(bea.modified_equation(SimultaneousGD(), 1).initial_point_loss().latex(1))


def test_plain_modified_loss_is_refused_with_advice():
    with pytest.raises(bea.exports.NoModifiedLossError, match="initial_point_loss"):
        bea.modified_equation(SGDSteps(2), 1).modified_loss()


# -- Rosca's initial-point-dependent losses ---------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4])
def test_seed_003_eqs_5_6_initial_point_loss(n):
    """E~ = Ebar + (n h/4)|grad Ebar|^2 - (h/n) sum_mu grad E_mu . sum_{tau<mu} grad E_tau(theta_0)."""
    from bea.results._initial_point import Potential

    (player,) = bea.modified_equation(SGDSteps(n), 1).initial_point_loss().players
    assert dict((p, c) for c, p in player[0]) == {Potential(k): sp.Rational(1, n) for k in range(n)}
    expected = {}
    for a in range(n):
        for b in range(a, n):  # (n h/4) |sum_k g_k/n|^2
            expected[Potential(a, b)] = sp.Rational(n, 4) / n**2 * (1 if a == b else 2)
    for mu in range(n):
        for tau in range(mu):
            expected[Potential(mu, tau, frozen=True)] = -sp.Rational(1, n)
    assert dict((p, c) for c, p in player[1]) == expected


def test_seed_003_eqs_11_12_initial_point_loss():
    """Self term 1/4 (eq. 2 of seed 003; its eqs 11-12 and Appendix C print 1/2), interaction 1/2 frozen."""
    ip = bea.modified_equation(SimultaneousGD(), 1).initial_point_loss()
    assert ip.text(0) == "E_φ + h (1/4 |∇_φE_φ|² + 1/2 ∇_θE_φ·∇_θE_θ(φ₀, θ₀))"
    assert ip.text(1) == "E_θ + h (1/2 ∇_φE_θ·∇_φE_φ(φ₀, θ₀) + 1/4 |∇_θE_θ|²)"


def test_initial_point_loss_is_first_order_only():
    with pytest.raises(bea.InvalidOrderError, match="order <= 1"):
        bea.modified_equation(SGDSteps(2), 2).initial_point_loss()


def test_single_loss_initial_point_loss_is_the_plain_one():
    assert bea.modified_equation(GD(), 1).initial_point_loss().text() == "E + h (1/4 |∇E|²)"


def _initial_point_flow_slope(rule, losses, theta0, players=None):
    """Fitted slope of |one step - flow of -grad E~(.; theta_0) over duration h| against h."""
    import jax
    import jax.numpy as jnp

    from bea.verify import flow_solver

    ip = bea.modified_equation(rule, 1).initial_point_loss()
    theta0 = jnp.asarray(theta0)
    if players is None:
        energy = ip.to_jax(loss=losses)

        def field(theta, h):
            return -jax.grad(lambda x: energy(x, theta0, h))(theta)
    else:
        energy = ip.to_jax(loss=[lambda p, f=f: f(jnp.concatenate(p)) for f in losses])
        split = players[0]
        start = (theta0[:split], theta0[split:])

        def field(theta, h):
            point = (theta[:split], theta[split:])
            grads = [jax.grad(lambda x, k=k: energy(x, start, h)[k])(point)[k] for k in range(2)]
            return -jnp.concatenate(grads)

    solve = flow_solver(field)
    hs = np.geomspace(0.01, 0.08, 5)
    errors = []
    for h in hs:
        step = np.asarray(bea.iterate(rule, losses, theta0, h=float(h), steps=1))[-1]
        exact = np.asarray(solve(theta0, h, [float(rule.duration) * h if hasattr(rule, "duration") else h])[-1])
        errors.append(np.linalg.norm(step - exact))
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


@pytest.mark.slow
def test_initial_point_flows_have_local_error_h3():
    import jax.numpy as jnp

    losses = [lambda t: t[0] ** 3 / 3 + t[0] * t[1] ** 2 / 2 + t[1] ** 2,
              lambda t: t[1] ** 3 / 3 - t[0] * t[1] + t[0] ** 2 / 2 + jnp.sin(t[0])]
    assert abs(_initial_point_flow_slope(SGDSteps(2), losses, [0.7, -0.4]) - 3) < 0.15
    assert abs(_initial_point_flow_slope(SimultaneousGD(), losses, [0.7, -0.4], players=(1, 1)) - 3) < 0.15
    assert abs(_initial_point_flow_slope(AlternatingGD(), losses, [0.7, -0.4], players=(1, 1)) - 3) < 0.15
