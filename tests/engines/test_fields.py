"""Modified equations of rules applied to general vector fields, theta' = f(theta) (`field=`).

References, none sharing the field oracle's code path:
* Hairer, Lubich & Wanner, Geometric Numerical Integration, Sec. IX.1 (doi:10.1007/3-540-30666-8):
  explicit Euler has f~ = f - h/2 f'f + h^2 (1/12 f''(f, f) + 1/3 f'f'f) + O(h^3); f'f, f''(f, f), ...
  are computed here by SymPy differentiation of the field.
* the coordinate-free tree coefficients (trees and B-series engines), evaluated on the field by the
  elementary differentials F(t) written out below;
* brute-force series matching (tests/reference.py) with a substitution oracle for the field;
* closed forms: Euler on a linear field theta' = J theta has f~ = log(I + h J)/h theta.
"""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bea
from bea.rules import GD, MIDPOINT, RK4, HeavyBall, SimultaneousGD
from tests import reference

u, v, q, p, x, y = sp.symbols("u v q p x y")
h = bea.h
LV = ([u * (v - 2), v * (1 - u)], [u, v])  # Lotka-Volterra, HLW Sec. I.1.1 and IX.1
PENDULUM = ([p, -sp.sin(q)], [q, p])  # non-polynomial: exercises the atom algebra
ROTATION = ([-y, x], [x, y])  # the bilinear game min_x max_y x y: simultaneous gradient play


def _expand(m):
    return sp.Matrix(m).applyfunc(lambda e: sp.expand(sp.expand_trig(e)))


def _derivative(field, params, directions):
    """f^(m)(v_1, ..., v_m) = d^m/ds_1..ds_m f(theta + sum s_k v_k) at s = 0, by SymPy."""
    s = sp.symbols(f"s0:{len(directions)}")
    shifted = {pp: pp + sum((sk * d[i] for sk, d in zip(s, directions)), sp.S.Zero) for i, pp in enumerate(params)}
    out = sp.Matrix(field).xreplace(shifted)
    for sk in s:
        out = out.diff(sk)
    return out.xreplace(dict.fromkeys(s, 0))


def _elementary(field, params, tree, cache):
    """Butcher's F(t): F(.) = f, F([t_1..t_m]) = f^(m)(F(t_1), ..., F(t_m))."""
    if tree not in cache:
        if not tree:
            cache[tree] = sp.Matrix(field)
        else:
            cache[tree] = _derivative(field, params, [_elementary(field, params, c, cache) for c in tree])
    return cache[tree]


def _coordinate_free_on(rule, order, field, params):
    """f_0..f_order from the coordinate-free terms (in grad E, with F(t) = (-1)^|t| G(t) for f = -grad E)."""
    cf = bea.modified_equation(rule, order)
    cache: dict = {}
    out = []
    for term in cf.terms:
        total = sp.zeros(len(params), 1)
        for c, t in term:
            size = 1 + sum(_size(s) for s in t)
            total += (-1) ** size * c * _elementary(field, params, t, cache)
        out.append(_expand(total))
    return out


def _size(t):
    return 1 + sum(_size(c) for c in t)


def test_euler_on_lotka_volterra_matches_hairer_lubich_wanner():
    """HLW Sec. IX.1: explicit Euler's f_1 = -1/2 f'f and f_2 = 1/12 f''(f, f) + 1/3 f'f'f."""
    field, params = LV
    me = bea.modified_equation(GD(), 2, field=field, params=params)
    f = sp.Matrix(field)
    J = f.jacobian(params)
    fpf = J * f
    fppff = sp.Matrix([(sp.hessian(fi, params) * f).dot(f) for fi in f])
    assert _expand(me.terms[0] - f) == sp.zeros(2, 1)
    assert _expand(me.terms[1] + fpf / 2) == sp.zeros(2, 1)
    assert _expand(me.terms[2] - fppff / 12 - J * fpf / 3) == sp.zeros(2, 1)
    # the same, read off HLW's explicit form of f_1 for this field: -1/2 (u(v-2)^2 + u v(1-u), ...)
    assert sp.expand(me.terms[1][0] + (u * (v - 2) ** 2 + u * v * (1 - u)) / 2) == 0
    assert sp.expand(me.terms[1][1] + (-v * u * (v - 2) + v * (1 - u) ** 2) / 2) == 0


@pytest.mark.parametrize("problem", [LV, PENDULUM], ids=["lotka-volterra", "pendulum"])
@pytest.mark.parametrize(
    ("rule", "order"),
    [(GD(), 3), (MIDPOINT, 3), (RK4, 4), (HeavyBall(beta=sp.Rational(1, 2)), 2)],
    ids=["euler", "midpoint", "rk4", "heavy-ball"],
)
def test_concrete_terms_equal_elementary_differentials(problem, rule, order):
    field, params = problem
    me = bea.modified_equation(rule, order, field=field, params=params)
    expected = _coordinate_free_on(rule, order, field, params)
    for l in range(order + 1):
        assert _expand(me.terms[l] - expected[l]) == sp.zeros(len(params), 1), (rule, l)


def test_field_text_names_the_elementary_differentials():
    """The f-notation text of explicit Euler is HLW's, term for term."""
    cf = bea.modified_equation(GD(), 2)
    assert cf.text(0, notation="field") == "f"
    assert cf.text(1, notation="field") == "-1/2 f'f"
    assert cf.text(2, notation="field") == "1/12 f''(f, f) + 1/3 f'f'f"
    assert cf.text(1) == "-1/2 ∇²E ∇E"  # the gradient notation is unchanged (f_1 = -H grad E / 2)
    with pytest.raises(ValueError, match="notation"):
        cf.text(1, notation="tensor")


class _FieldSubstitutionOracle(reference.SubstitutionOracle):
    """reference.SubstitutionOracle with grad := -f and the Hessian := -f' (for the brute-force reference)."""

    def __init__(self, losses, params, truncation, index=0):
        self.losses, self.params, self.truncation, self.index = losses, list(params), truncation, index
        self.gradient = -sp.Matrix(losses[index])
        self.hessian = -sp.Matrix(losses[index]).jacobian(self.params)

    def __getitem__(self, k):
        return _FieldSubstitutionOracle(self.losses, self.params, self.truncation, k)

    def value(self, x):  # pragma: no cover - the rules tested here do not ask
        raise AssertionError("a field has no loss")


def _brute_force(rule, field, params, order):
    with mock.patch.object(reference, "SubstitutionOracle", _FieldSubstitutionOracle):
        return reference.brute_force_corrections(rule, [list(field)], params, order)


@st.composite
def polynomial_fields(draw, max_dim=3):
    """(field, params): n in 1..3 components, each 1..3 monomials of degree <= 3 with small rational coefficients."""
    n = draw(st.integers(1, max_dim))
    params = list(sp.symbols(f"q0:{n}"))
    field = []
    for _ in range(n):
        component = sp.S.Zero
        for _ in range(draw(st.integers(1, 3))):
            factors = draw(st.lists(st.sampled_from(params), min_size=0, max_size=3))
            component += sp.Rational(draw(st.integers(-2, 2)), draw(st.integers(1, 3))) * sp.Mul(*factors)
        field.append(sp.expand(component))
    return field, params


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=polynomial_fields(), order=st.integers(1, 2), rule=st.sampled_from([GD(), MIDPOINT]))
def test_random_polynomial_fields_match_brute_force(problem, order, rule):
    field, params = problem
    me = bea.modified_equation(rule, order, field=field, params=params)
    expected = _brute_force(rule, field, params, order)
    for l in range(order + 1):
        assert _expand(me.terms[l] - expected[l]) == sp.zeros(len(params), 1)


def test_field_with_an_h_part_matches_brute_force():
    """f = f^0 + h f^1 + h^2 f^2: each h^k part enters the step shifted by k powers of h."""
    field = [u * v - h * v**2 + h**2 * u, -u + h * u * v]
    for rule in (GD(), MIDPOINT):
        me = bea.modified_equation(rule, 3, field=field, params=[u, v])
        expected = _brute_force(rule, field, [u, v], 3)
        for l in range(4):
            assert _expand(me.terms[l] - expected[l]) == sp.zeros(2, 1), (rule, l)


def test_gd_on_gradient_plus_h_part():
    """GD on f = -grad E + h g. One step is theta - h grad E + h^2 g; matching the time-h flow of
    f_0 + h f_1, theta + h f_0 + h^2 (f_1 + f_0' f_0 / 2), gives f_0 = -grad E and
    f_1 = g - H grad E / 2: GD's modified equation on E (Barrett & Dherin) plus g."""
    E = u**4 / 4 + u * v**2 + v**2 / 2
    g = [v**2, u * v - 1]
    grad = sp.Matrix([E.diff(u), E.diff(v)])
    H = sp.hessian(E, [u, v])
    me = bea.modified_equation(GD(), 1, field=[-grad[0] + h * g[0], -grad[1] + h * g[1]], params=[u, v])
    assert _expand(me.terms[0] + grad) == sp.zeros(2, 1)
    assert _expand(me.terms[1] - sp.Matrix(g) + H * grad / 2) == sp.zeros(2, 1)
    on_loss = bea.modified_equation(GD(), 1, loss=E, params=[u, v])
    assert _expand(me.terms[1] - on_loss.terms[1] - sp.Matrix(g)) == sp.zeros(2, 1)
    assert me.fields[0][0] == -grad[0] + h * g[0]


def test_simultaneous_gradient_play_on_the_bilinear_game():
    """x' = -y, y' = x (f = J theta). Euler is theta -> (I + h J) theta, whose modified field is
    log(I + h J)/h theta = sum_l (-1)^l h^l J^(l+1)/(l+1) theta: f_1 = -J^2/2 theta = (x, y)/2 (the
    divergence of simultaneous play), f_2 = J^3/3 theta = (y, -x)/3."""
    field, params = ROTATION
    J = sp.Matrix([[0, -1], [1, 0]])
    theta = sp.Matrix(params)
    me = bea.modified_equation(GD(), 5, field=field, params=params)
    for l in range(6):
        assert _expand(me.terms[l] - (-1) ** l * J ** (l + 1) * theta / (l + 1)) == sp.zeros(2, 1)
    assert list(me.terms[1]) == [x / 2, y / 2]
    # the game rule, one field per player's loss (each player reads its own block)
    game = bea.modified_equation(SimultaneousGD(), 3, fields=[[-y, 0], [0, x]], params=[[x], [y]])
    assert game.terms == me.terms[:4]
    with pytest.raises(bea.NoModifiedLossError, match="order 0"):
        me.modified_loss()


def test_gradient_field_keeps_a_modified_loss():
    """A field that is -grad E still has GD's modified loss E + h/4 |grad E|^2 (Barrett & Dherin, Thm 3.1)."""
    E = u**2 / 2 + u * v**2
    grad = [E.diff(u), E.diff(v)]
    me = bea.modified_equation(GD(), 1, field=[-grad[0], -grad[1]], params=[u, v])
    loss = me.modified_loss().expr
    expected = E + h / 4 * (grad[0] ** 2 + grad[1] ** 2)
    difference = sp.expand(loss - expected)
    assert difference.free_symbols <= {h}  # equal up to an additive constant


def test_exports_of_a_field_result():
    field, params = LV
    me = bea.modified_equation(GD(), 1, field=field, params=params)
    assert me.losses == ()
    with pytest.raises(AttributeError, match="vector field"):
        me.loss
    data = json.loads(json.dumps(me.to_dict()))
    assert data["fields"] == [[str(c) for c in field]]
    assert [sp.sympify(c) for c in data["terms"][1]] == list(me.terms[1])
    assert r"\frac{d}{dt}" in me.latex()
    fn = me.to_jax()
    point, step = np.array([0.7, 1.3]), 0.05
    at = {u: sp.Rational(7, 10), v: sp.Rational(13, 10), h: sp.Rational(1, 20)}
    expected = [float(c.xreplace(at)) for c in me.field()]
    np.testing.assert_allclose(np.asarray(fn(point, step)), expected, rtol=1e-12)


def test_values_and_constants_on_a_field():
    a = sp.Symbol("a")
    me = bea.modified_equation(GD(), 1, field=[a * u, -v], params=[u, v], values={"a": 2}, constants=[a])
    assert list(me.terms[0]) == [2 * u, -v]
    with pytest.raises(bea.UnknownSymbolError, match="unknown symbol"):
        bea.modified_equation(GD(), 1, field=[a * u, -v], params=[u, v], constants=[])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(field=[u * v]), bea.UnknownSymbolError, "1 component"),
        (dict(field=[sp.Abs(u), v]), bea.NonSmoothLossError, "Abs"),
        (dict(field=[sp.exp(h) * u, v]), bea.UnknownSymbolError, "not a polynomial in h"),
        (dict(field="u*v"), bea.UnknownSymbolError, "list of components"),
        (dict(field=[u, v], loss=u**2), bea.UnknownSymbolError, "only one of"),
        (dict(fields=[[u, v], [v, u]]), bea.UnknownSymbolError, "2 field"),
        (dict(loss=h * u**2), bea.UnknownSymbolError, "reserved for the step size"),
    ],
    ids=["wrong-length", "abs", "h-not-polynomial", "not-a-list", "loss-and-field", "too-many-fields", "h-in-loss"],
)
def test_bad_input_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        bea.modified_equation(GD(), 1, params=[u, v], **kwargs)


def test_a_rule_that_evaluates_the_loss_is_refused_on_a_field():
    rule = bea.rules.rule(lambda theta, grad, step: theta - step * grad.value(theta) * grad(theta))
    with pytest.raises(bea.UnsupportedError, match="has no\\s+loss"):
        bea.modified_equation(rule, 1, field=[-v, u], params=[u, v])
    with pytest.raises(bea.UnknownSymbolError, match="params= is required"):
        bea.modified_equation(GD(), 1, field=[-v, u])


def test_command_line_field(capsys):
    from bea.cli import main

    code = main(["derive", "euler", "--field", "u*(v-2)", "--field", "v*(1-u)", "--params", "u,v", "--order", "2",
                 "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    f = sp.Matrix(LV[0])
    expected = -f.jacobian(LV[1]) * f / 2  # HLW Sec. IX.1: f_1 = -f'f/2
    assert [sp.expand(sp.sympify(c) - e) for c, e in zip(data["terms"][1], expected)] == [0, 0]
    assert main(["derive", "gd", "--field=-y", "--params", "x,y", "--order", "1"]) == 2
    assert "1 component" in capsys.readouterr().err
    assert main(["derive", "gd", "--field", "x", "--loss", "x**2", "--params", "x", "--order", "1"]) == 2
    assert "not both" in capsys.readouterr().err
