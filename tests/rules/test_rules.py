"""Every one-step rule against brute-force series matching, and against known facts about it."""

import numpy as np
import pytest
import sympy as sp
from reference import brute_force_corrections

import bea
from bea.rules import EGR, EULER, GD, HEUN, MIDPOINT, RK4, SAM, FiniteDifferenceGR, RungeKutta, rule

a, b, c, x, y = sp.symbols("a b c x y")
SMALL = a**3 / 3 + a * b**2 / 2 + b**2 / 2  # non-quadratic, so no accidental symmetry
TWO_PARAM = (y - a * b * x) ** 2 / 2

RULES = {
    "gd": GD(),
    "egr": EGR(),
    "sam-independent": SAM(),
    "sam-tied": SAM(rho=c * bea.h),
    "fd-gr-forward": FiniteDifferenceGR(),
    "fd-gr-backward": FiniteDifferenceGR(kind="backward"),
    "fd-gr-tied": FiniteDifferenceGR(eps=c * bea.h),
    "euler": EULER,
    "midpoint": MIDPOINT,
    "heun": HEUN,
    "rk4": RK4,
    "custom": rule(lambda theta, grad, h, beta: theta - h * grad(theta - beta * h * grad(theta)), beta=None),
}


def _equal(terms, reference):
    return all(sp.expand(m - r) == sp.zeros(m.rows, 1) for m, r in zip(terms, reference))


@pytest.mark.parametrize("name", sorted(RULES))
def test_brute_force_order_2(name):
    rule_ = RULES[name]
    me = bea.modified_equation(rule_, 2, loss=SMALL, params=[a, b])
    assert _equal(me.terms, brute_force_corrections(rule_, [SMALL], [a, b], 2))


@pytest.mark.parametrize("name", ["gd", "sam-tied", "rk4", "custom"])
def test_brute_force_two_parameter_model_order_3(name):
    rule_ = RULES[name]
    me = bea.modified_equation(rule_, 3, loss=TWO_PARAM, params=[a, b])
    assert _equal(me.terms, brute_force_corrections(rule_, [TWO_PARAM], [a, b], 3))


def _grad(loss, params):
    return sp.Matrix([loss.diff(p) for p in params])


def test_runge_kutta_orders():
    """A method of order q has f_1 = ... = f_{q-1} = 0 (Hairer-Lubich-Wanner, Thm IX.1.2)."""
    for tableau, q in [(EULER, 1), (MIDPOINT, 2), (HEUN, 2), (RK4, 4)]:
        me = bea.modified_equation(tableau, q, loss=TWO_PARAM, params=[a, b])
        assert me.terms[0] == -_grad(TWO_PARAM, [a, b]).applyfunc(sp.expand)
        for l in range(1, q):
            assert me.terms[l] == sp.zeros(2, 1), (tableau.label, l)
        assert me.terms[q] != sp.zeros(2, 1)


def test_sam_tied_first_correction():
    """rho = c h: Phi = theta - h g - c h^2 H g + O(h^3), so f_1 = -(1/2 + c) H g."""
    me = bea.modified_equation(SAM(rho=c * bea.h), 1, loss=TWO_PARAM, params=[a, b])
    g = _grad(TWO_PARAM, [a, b])
    hg = sp.hessian(TWO_PARAM, [a, b]) * g
    assert sp.expand(me.terms[1] + (sp.Rational(1, 2) + c) * hg) == sp.zeros(2, 1)


def test_egr_leading_field_is_regularized_gradient():
    mu = sp.Symbol("mu")
    me = bea.modified_equation(EGR(), 0, loss=TWO_PARAM, params=[a, b])
    g = _grad(TWO_PARAM, [a, b])
    regularized = TWO_PARAM + mu * (g.T * g)[0]
    assert sp.expand(me.terms[0] + _grad(regularized, [a, b])) == sp.zeros(2, 1)


def test_forward_gr_with_gamma_equal_eps_is_sam():
    """Karakida et al., eq. 19: F-GR with gamma = eps is SAM with rho = eps."""
    eps = sp.Symbol("epsilon")
    fgr = bea.modified_equation(FiniteDifferenceGR(gamma=eps, eps=eps), 2, loss=SMALL, params=[a, b])
    sam = bea.modified_equation(SAM(rho=eps), 2, loss=SMALL, params=[a, b])
    assert _equal(fgr.terms, sam.terms)


def test_backward_gr_is_forward_gr_with_negative_eps():
    eps = sp.Symbol("epsilon")
    forward = bea.modified_equation(FiniteDifferenceGR(eps=-eps), 2, loss=SMALL, params=[a, b])
    backward = bea.modified_equation(FiniteDifferenceGR(eps=eps, kind="backward"), 2, loss=SMALL, params=[a, b])
    assert _equal(forward.terms, backward.terms)


def test_non_polynomial_loss_first_correction():
    loss = sp.log(1 + sp.exp(-a * b)) + a**2 / 2
    me = bea.modified_equation(GD(), 1, loss=loss, params=[a, b])
    g = _grad(loss, [a, b])
    expected = -sp.hessian(loss, [a, b]) * g / 2
    assert all(sp.simplify(e) == 0 for e in me.terms[1] - expected)


@pytest.mark.parametrize("name", sorted(RULES))
def test_numeric_iteration_runs_the_same_step(name):
    """One step on arrays equals the symbolic step expansion evaluated at the same point."""
    rule_ = RULES[name]
    values = {s.name: 0.3 for s in rule_.free_symbols}
    h_value, point = 1e-2, {a: 0.7, b: -0.4}
    path = bea.iterate(rule_, SMALL, [point[a], point[b]], h_value, 1, params=[a, b], values=values)
    me = bea.modified_equation(rule_, 7, loss=SMALL, params=[a, b], values=values)
    step = sp.Matrix([a, b]) + sum((bea.h ** (k + 1) * d for k, d in enumerate(me.expansion)), sp.zeros(2, 1))
    expected = np.array(step.subs({**point, bea.h: h_value}), dtype=float).ravel()
    np.testing.assert_allclose(np.asarray(path[1]), expected, rtol=0, atol=1e-13)


def test_tableau_validation():
    # Implicit tableaus are accepted since issue 16 (backward Euler, [[1]], [1]); a non-square A is not.
    assert RungeKutta.from_tableau([[1]], [1]).A == ((1,),)
    with pytest.raises(ValueError, match="must be 2 x 2"):
        RungeKutta.from_tableau([[0, 1]], [1, 0])
    with pytest.raises(ValueError, match="row sum"):
        RungeKutta.from_tableau([[0, 0], [1, 0]], [0.5, 0.5], [0, 0.5])
    with pytest.raises(ValueError, match="must be 2 x 2"):
        RungeKutta.from_tableau([[0]], [0.5, 0.5])
    with pytest.raises(ValueError, match="forward"):
        FiniteDifferenceGR(kind="sideways")
    with pytest.raises(ValueError, match="eps = 0"):
        FiniteDifferenceGR(eps=0)


def test_floats_become_exact_decimals():
    assert EGR(mu=0.1).mu == sp.Rational(1, 10)
    assert RungeKutta.from_tableau([[0, 0], [0.5, 0]], [0, 1]).A[1][0] == sp.Rational(1, 2)


@pytest.mark.parametrize("rule_", [SAM(), FiniteDifferenceGR(), EGR()], ids=["sam", "fd-gr", "egr"])
def test_non_polynomial_loss_step_expansion_matches_iterates(rule_):
    """Logistic loss: the exact step expansion (atoms met away from theta included) against one JAX step."""
    loss = sp.log(1 + sp.exp(-(3 * a / 2 + b))) + (a**2 + b**2) / 10
    values = {s.name: 0.2 for s in rule_.free_symbols}
    h_value, point = 1e-3, {a: 0.3, b: -0.2}
    path = bea.iterate(rule_, loss, [point[a], point[b]], h_value, 1, params=[a, b], values=values)
    me = bea.modified_equation(rule_, 4, loss=loss, params=[a, b], values=values)
    step = sp.Matrix([a, b]) + sum((bea.h ** (k + 1) * d for k, d in enumerate(me.expansion)), sp.zeros(2, 1))
    expected = np.array(sp.N(step.subs({**point, bea.h: h_value}), 30), dtype=float).ravel()
    np.testing.assert_allclose(np.asarray(path[1]), expected, rtol=0, atol=1e-15)
    # f_0 of SAM is exactly -grad E(theta + rho grad E(theta))
    if isinstance(rule_, SAM):
        g = _grad(loss, [a, b])
        shifted = g.subs({a: point[a] + 0.2 * g[0].subs(point), b: point[b] + 0.2 * g[1].subs(point)}, simultaneous=True)
        np.testing.assert_allclose(
            np.array(sp.N(me.terms[0].subs(point)), dtype=float).ravel(),
            -np.array(sp.N(shifted.subs(point)), dtype=float).ravel(),
            rtol=1e-13,
        )


def test_numpy_floats_are_exact_decimals():
    """NumPy 2 writes repr(np.float64(0.01)) as 'np.float64(0.01)'; it is still the decimal 1/100."""
    import numpy as np

    from bea.rules import exact

    assert exact(np.float64(0.01)) == sp.Rational(1, 100)
