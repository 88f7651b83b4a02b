"""Composite rules and games against brute force and seed 003 / seed 001 closed forms."""

import pytest
import sympy as sp
from reference import brute_force_corrections

import bea
from bea.rules import GD, AlternatingGD, SGDSteps, SimultaneousGD, compose, flooding_crossing, rule

a, b, c = sp.symbols("a b c")
E1 = a**3 / 3 + a * b**2 / 2 + b**2
E2 = b**3 / 3 - a * b + a**2 / 2
E3 = a**2 * b + b**2 / 2 - a


def _zero(column):
    return all(sp.expand(x) == 0 for x in column)


def _grad(loss, params=(a, b)):
    return sp.Matrix([loss.diff(p) for p in params])


@pytest.mark.parametrize(
    "rule_, losses",
    [
        (SGDSteps(2), [E1, E2]),
        (SGDSteps(3), [E1, E2, E3]),
        (SimultaneousGD(ratio=sp.Rational(1, 2)), [E1, E2]),
        (AlternatingGD(ratio=2), [E1, E2]),
        (flooding_crossing("forward"), [E1]),
        (flooding_crossing("backward"), [E1]),
    ],
    ids=["sgd2", "sgd3", "simultaneous", "alternating", "flood-f", "flood-b"],
)
def test_brute_force_order_2(rule_, losses):
    """The brute force matches the flow over time h; one step of the rule spans duration * h,
    so its field is duration times ours: G_l = duration * f_l."""
    me = bea.modified_equation(rule_, 2, losses=losses, params=[a, b])
    reference = brute_force_corrections(rule_, losses, [a, b], 2)
    duration = getattr(rule_, "duration", 1)
    for l in range(3):
        assert _zero(reference[l] - duration * me.terms[l]), l


def test_sgd_steps_rosca_theorem_4():
    """f_1 = (1/n) sum_{tau < mu} H_mu g_tau - (n/2) Hbar gbar (the field of seed 003 eqs 5-6 with theta_{t-1} = theta)."""
    losses = [E1, E2, E3]
    n = 3
    me = bea.modified_equation(SGDSteps(n), 1, losses=losses, params=[a, b])
    g = [_grad(E) for E in losses]
    H = [sp.hessian(E, [a, b]) for E in losses]
    gbar, Hbar = sum(g, sp.zeros(2, 1)) / n, sum(H, sp.zeros(2, 2)) / n
    alignment = sum((H[m] * g[t] for m in range(n) for t in range(m)), sp.zeros(2, 1)) / n
    assert _zero(me.terms[0] + gbar)
    assert _zero(me.terms[1] - (alignment - sp.Rational(n, 2) * Hbar * gbar))


def test_full_batch_limit_is_gd():
    """n identical batches: the field of GD (seed 003 B.3)."""
    for n in (2, 3):
        me = bea.modified_equation(SGDSteps(n), 3, losses=[E1] * n, params=[a, b])
        gd = bea.modified_equation(GD(), 3, loss=E1, params=[a, b])
        assert all(_zero(m - r) for m, r in zip(me.terms, gd.terms))


def test_shuffle_average_smith_et_al():
    """Averaged over orderings: -grad(Ebar + h/(4n) sum_k |grad E_k|^2) (seed 003 eq. 8)."""
    losses = [E1, E2, E3]
    n = 3
    me = bea.average_over_orderings(SGDSteps(n), 2, losses=losses, params=[a, b])
    ebar = sum(losses) / n
    modified = ebar + bea.h / (4 * n) * sum(sum(d**2 for d in _grad(E)) for E in losses)
    expected = -_grad(modified)
    assert _zero(me.terms[0] - expected.applyfunc(lambda e: e.coeff(bea.h, 0)))
    assert _zero(me.terms[1] - expected.applyfunc(lambda e: e.coeff(bea.h, 1)))
    assert me.terms[2] != sp.zeros(2, 1)  # second order is new: computed, not typed in


def test_simultaneous_gd_seed_003_eqs_9_10():
    """Self term -(1/4) grad |grad E|^2 (eq. 2's coefficient; Appendix C's 1/2 is a typo) and
    interaction term -(1/2) (d grad_phi E_phi/d theta) grad_theta E_theta."""
    phi, theta = a, b
    me = bea.modified_equation(SimultaneousGD(), 1, losses=[E1, E2], params=[[phi], [theta]])
    g_phi, g_theta = E1.diff(phi), E2.diff(theta)
    f_phi = -sp.Rational(1, 4) * (g_phi**2).diff(phi) - sp.Rational(1, 2) * g_phi.diff(theta) * g_theta
    f_theta = -sp.Rational(1, 4) * (g_theta**2).diff(theta) - sp.Rational(1, 2) * g_theta.diff(phi) * g_phi
    assert _zero(me.terms[0] - sp.Matrix([-g_phi, -g_theta]))
    assert _zero(me.terms[1] - sp.Matrix([f_phi, f_theta]))


def test_alternating_gd_rosca_2021():
    """Player 2 sees the moved player 1: its interaction term flips sign (Rosca et al. 2021, Thm 3.2)."""
    lam = sp.Symbol("lambda", positive=True)
    me = bea.modified_equation(AlternatingGD(ratio=lam), 1, losses=[E1, E2], params=[[a], [b]])
    g_phi, g_theta = E1.diff(a), E2.diff(b)
    f_phi = -sp.Rational(1, 4) * (g_phi**2).diff(a) - lam / 2 * g_phi.diff(b) * g_theta
    f_theta = -lam**2 / 4 * (g_theta**2).diff(b) + lam / 2 * g_theta.diff(a) * g_phi
    assert _zero(me.terms[1] - sp.Matrix([f_phi, f_theta]))


def test_zero_sum_bilinear_game():
    """E_phi = a b = -E_theta: simultaneous GD spirals out (f_1 = theta/2);
    alternating GD is volume-preserving at first order."""
    sim = bea.modified_equation(SimultaneousGD(), 1, losses=[a * b, -a * b], params=[[a], [b]])
    alt = bea.modified_equation(AlternatingGD(), 1, losses=[a * b, -a * b], params=[[a], [b]])
    assert sim.terms[1] == sp.ImmutableMatrix([a / 2, b / 2])
    divergence = sum(sp.diff(alt.terms[1][i], p) for i, p in enumerate([a, b]))
    assert divergence == 0


def test_common_payoff_game_has_a_modified_loss():
    """Both players minimize the same E: simultaneous GD is GD, with E + h/4 |grad E|^2."""
    me = bea.modified_equation(SimultaneousGD(), 1, losses=[E1, E1], params=[[a], [b]])
    loss = me.modified_loss()
    assert sp.expand(loss.terms[1] - sum(d**2 for d in _grad(E1)) / 4) == 0


def test_flooding_is_finite_difference_gr():
    """Karakida et al. Theorem 5.1: ascent then descent = theta - h^2 (grad E(theta + h g) - g)/h, exactly."""
    written = rule(lambda theta, grad, h: theta - h * (grad(theta + h * grad(theta)) - grad(theta)))
    flood = bea.modified_equation(flooding_crossing(), 3, loss=E1, params=[a, b])
    fgr = bea.modified_equation(written, 3, loss=E1, params=[a, b])
    assert all(_zero(m - r) for m, r in zip(flood.terms, fgr.terms))
    # the leading term: gradient descent on R = |grad E|^2/2 at rate h
    assert _zero(flood.terms[1] + sp.hessian(E1, [a, b]) * _grad(E1))


def test_compose_general():
    sam_then_gd = compose(bea.rules.SAM(rho=c * bea.h), GD(), losses=(0, 1), duration=2)
    me = bea.modified_equation(sam_then_gd, 1, losses=[E1, E2], params=[a, b])
    assert _zero(me.terms[0] + (_grad(E1) + _grad(E2)) / 2)


def test_bad_input():
    with pytest.raises(bea.UnknownSymbolError, match="2 loss"):
        bea.modified_equation(SGDSteps(2), 1, losses=[E1], params=[a, b])
    with pytest.raises(bea.UnknownSymbolError, match="players"):
        bea.modified_equation(SimultaneousGD(players=(1, 1)), 1, losses=[E1, E2], params=[[a, b], [c]])
    with pytest.raises(bea.UnknownSymbolError, match="parameters"):
        bea.modified_equation(SimultaneousGD(), 1, losses=[E1, E2], params=[a, b, c])
    with pytest.raises(ValueError, match="at least one"):
        compose()
    with pytest.raises(ValueError, match="positive number"):
        SGDSteps(0)
    with pytest.raises(ValueError, match="block sizes"):
        SimultaneousGD(players=(0, 2))
