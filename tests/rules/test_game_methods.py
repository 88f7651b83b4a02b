"""Extragradient and optimistic GD in two-player games (bea.rules.Extragradient, OptimisticGD).

References: the bilinear game x' = -y, y' = x, where one step is multiplication by a complex number z(h) and the
modified field is log z(h)/h exactly (worked out below, independently of the engines); brute-force series matching
on a nonlinear game; fitted local-error slopes against the rules' own iterates.
"""

import sympy as sp
from reference import brute_force_corrections

import bea
from bea.rules import Extragradient, OptimisticGD, SimultaneousGD
from bea.verify import local_error, model

x, y, hh = sp.symbols("x y h")
BILINEAR = [x * y, -x * y]  # player x minimizes xy, player y minimizes -xy: f = (-y, x), a rotation


def _log_field(z, order):
    """Coefficients c_l of log z(h)/h = sum_l c_l h^l for a complex z(h) = 1 + i h + ...: the modified field of
    theta -> z theta on the bilinear game is Re(c_l) theta + Im(c_l) J theta, J theta = (-y, x)."""
    series = sp.series(sp.log(z) / hh, hh, 0, order + 1).removeO()
    return [sp.expand(series.coeff(hh, l)) for l in range(order + 1)]


def _columns(coefficients):
    return [sp.Matrix([sp.re(c) * x - sp.im(c) * y, sp.re(c) * y + sp.im(c) * x]) for c in coefficients]


def test_extragradient_on_the_bilinear_game_is_log_z():
    z = 1 - hh**2 + sp.I * hh  # theta - h g(theta - h g(theta)) with g = -J theta: (1 + hJ + h^2 J^2) theta
    me = bea.modified_equation(Extragradient(), 3, losses=BILINEAR, params=[[x], [y]])
    for got, want in zip(me.terms, _columns(_log_field(z, 3))):
        assert sp.expand(got - want) == sp.zeros(2, 1)
    assert list(me.terms[1]) == [-x / 2, -y / 2]  # inward: GD's +theta/2 changes sign


def test_optimistic_gd_on_the_bilinear_game_is_log_of_the_principal_root():
    """theta_{n+1} = theta_n + 2hJ theta_n - hJ theta_{n-1}: z^2 = (1 + 2ih) z - ih, the root near 1."""
    z = ((1 + 2 * sp.I * hh) + sp.sqrt(1 - 4 * hh**2)) / 2
    me = bea.modified_equation(OptimisticGD(), 3, losses=BILINEAR, params=[[x], [y]])
    for got, want in zip(me.terms, _columns(_log_field(z, 3))):
        assert sp.expand(got - want) == sp.zeros(2, 1)
    gd = bea.modified_equation(SimultaneousGD(), 1, losses=BILINEAR, params=[[x], [y]])
    assert list(gd.terms[1]) == [x / 2, y / 2] and list(me.terms[1]) == [-x / 2, -y / 2]


def test_extragradient_matches_brute_force_on_a_nonlinear_game():
    losses = [x**2 * y / 2 + x * y, x * y**2 / 3 - x * y + y**2 / 4]
    me = bea.modified_equation(Extragradient(ratio=sp.Rational(1, 2)), 2, losses=losses, params=[[x], [y]])
    reference = brute_force_corrections(Extragradient(ratio=sp.Rational(1, 2)), losses, [x, y], 2)
    for got, want in zip(me.terms, reference):
        assert sp.expand(got - want) == sp.zeros(2, 1)


def test_coordinate_free_first_correction_changes_sign():
    gd, eg, og = (bea.modified_equation(rule, 1) for rule in (SimultaneousGD(), Extragradient(), OptimisticGD()))
    assert gd.text(1).startswith("-1/2") and eg.text(1) == gd.text(1).replace("-1/2", "1/2").replace("- 1/2", "+ 1/2")
    assert og.text(1) == eg.text(1)


def test_local_error_slopes_against_the_iterates():
    game = model("bilinear-game")
    for rule in (Extragradient(), OptimisticGD()):
        for order in (0, 1, 2):
            result = local_error(rule, game, order)
            assert result.passes(), (rule.name, order, result.slope, result.expected)


def test_command_line(capsys):
    from bea.cli import main

    assert main(["derive", "extragradient", "--loss=phi*theta", "--loss=-phi*theta", "--params", "phi", "--params",
                 "theta", "--order", "1"]) == 0
    out = capsys.readouterr().out
    assert "f_1[phi] = -phi/2" in out and "f_1[theta] = -theta/2" in out
    assert main(["verify", "optimistic-gd", "--model", "bilinear-game", "--order", "0", "--json"]) == 0
