"""Implicit rules (implicit GD, implicit midpoint, implicit Runge-Kutta tableaus, implicit SGD steps) and
`bea.rules.fixed_point`, against references that do not share its code: derivatives of E taken by SymPy,
undetermined coefficients solved by `sympy.solve` (tests/reference.py's brute-force matching), explicit
Euler's coefficients with h -> -h (the adjoint method), and Newton's method in NumPy."""

import numpy as np
import pytest
import sympy as sp

import bea
from bea.cli import main
from bea.rules import (
    BACKWARD_EULER,
    GAUSS2,
    GAUSS4,
    LOBATTO_IIIA2,
    RADAU_IIA3,
    ImplicitGD,
    ImplicitMidpoint,
    ImplicitSGDSteps,
    ImplicitSolveError,
    RungeKutta,
    fixed_point,
)
from tests.reference import brute_force_corrections

a, b, x, y = sp.symbols("a b x y")
E = (y - a * b * x) ** 2 / 2  # Barrett & Dherin's two-parameter model
PARAMS = [a, b]
NUMERIC = E.subs({x: 1, y: sp.Rational(3, 5)})
h = bea.h


def gradient(loss):
    return sp.Matrix([sp.diff(loss, p) for p in PARAMS])


def hessian(loss):
    return sp.hessian(loss, PARAMS)


def third_derivative(loss, u, v):
    """D^3 E[u, v] as a column: sum_jk d^3 E/(d theta_i d theta_j d theta_k) u_j v_k."""
    return sp.Matrix([sum(sp.diff(loss, p, q, r) * u[j] * v[k] for j, q in enumerate(PARAMS)
                          for k, r in enumerate(PARAMS)) for p in PARAMS])


def zero(matrix) -> bool:
    return sp.expand(sp.Matrix(matrix)) == sp.zeros(*sp.Matrix(matrix).shape)


class UndeterminedCoefficients:
    """A reference implicit step on SymPy matrices: theta' = theta + sum_k h^k c_k with unknown vectors c_k,
    solved order by order from residual(theta, theta', grad, h) = 0 by `sympy.solve` (no fixed point)."""

    def __init__(self, residual, order, n_losses=1):
        self.residual, self.order, self.n_losses = residual, order, n_losses

    def step(self, theta, grad, h):
        n = len(theta)
        unknowns = [sp.Matrix(sp.symbols(f"c{k}_0:{n}")) for k in range(1, self.order + 1)]
        point = theta + sum((h**k * c for k, c in enumerate(unknowns, start=1)), sp.zeros(n, 1))
        residual = sp.Matrix(self.residual(theta, point, grad, h))
        solution: dict = {}
        for k, c in enumerate(unknowns, start=1):
            equations = [sp.expand(r.xreplace(solution)).coeff(h, k) for r in residual]
            solved = sp.solve(equations, list(c), dict=True)
            assert len(solved) == 1
            solution.update({s: sp.expand(v) for s, v in solved[0].items()})
            solution = {s: sp.expand(v.xreplace(solution)) for s, v in solution.items()}
        return point.xreplace(solution)


# -- the modified equations ------------------------------------------------------------------------

def test_implicit_gd_first_correction_is_anti_regularization():
    """f_1 = +1/2 H grad E, and the modified loss is E - (h/4)|grad E|^2 (GD's correction with the sign flipped)."""
    me = bea.modified_equation(ImplicitGD(), 2, loss=E, params=PARAMS)
    g, H = gradient(E), hessian(E)
    assert zero(me.terms[0] + g)
    assert zero(me.terms[1] - H * g / 2)
    loss = me.modified_loss(1)
    assert sp.expand(loss.terms[0] - E) == 0
    assert not sp.expand(loss.terms[1] + (g.T * g)[0] / 4).free_symbols & set(PARAMS)


def test_implicit_gd_coordinate_free_is_backward_euler():
    cf = bea.modified_equation(ImplicitGD(), 4)
    assert cf.terms[1] == ((sp.Rational(1, 2), ((),)),)  # + 1/2 (grad^2 E)(grad E)
    # the B-series of the step (fixed point on tree vectors) against the tableau route (elementary weights)
    assert cf.terms == bea.modified_equation(BACKWARD_EULER, 4).terms
    assert cf.text(1) == "1/2 ∇²E ∇E"


def test_implicit_gd_is_gd_with_the_step_negated():
    """Backward Euler is explicit Euler's adjoint Phi_{-h}^{-1}, whose modified field is f~(y, -h):
    f_j(implicit GD) = (-1)^j f_j(GD) (Hairer, Lubich & Wanner, Sec. IX.2)."""
    implicit = bea.modified_equation(ImplicitGD(), 3, loss=E, params=PARAMS)
    explicit = bea.modified_equation(bea.rules.GD(), 3, loss=E, params=PARAMS)
    for j in range(4):
        assert zero(implicit.terms[j] - (-1) ** j * explicit.terms[j])


def test_implicit_gd_against_brute_force_series():
    reference = UndeterminedCoefficients(lambda theta, new, grad, h: new - theta + h * grad(new), order=5)
    expected = brute_force_corrections(reference, [NUMERIC], PARAMS, 3)
    me = bea.modified_equation(ImplicitGD(), 3, loss=NUMERIC, params=PARAMS)
    for got, want in zip(me.terms, expected):
        assert zero(got - want)


def test_implicit_midpoint_even_powers_and_known_f2():
    """f_1 = f_3 = 0 (symmetric method) and f_2 = (1/24) D^3E[g, g] - (1/12) H^2 g, i.e.
    f + h^2 (-(1/24) f''(f, f) + (1/12) f'f'f) with f = -grad E (Hairer, Lubich & Wanner, Sec. IX.1)."""
    me = bea.modified_equation(ImplicitMidpoint(), 3, loss=E, params=PARAMS)
    g, H = gradient(E), hessian(E)
    assert zero(me.terms[1]) and zero(me.terms[3])
    assert zero(me.terms[2] - (third_derivative(E, g, g) / 24 - H * H * g / 12))
    assert bea.modified_equation(GAUSS2, 3, loss=E, params=PARAMS).terms == me.terms


def test_implicit_midpoint_against_brute_force_series():
    reference = UndeterminedCoefficients(lambda theta, new, grad, h: new - theta + h * grad((theta + new) / 2), order=5)
    expected = brute_force_corrections(reference, [NUMERIC], PARAMS, 3)
    me = bea.modified_equation(ImplicitMidpoint(), 3, loss=NUMERIC, params=PARAMS)
    for got, want in zip(me.terms, expected):
        assert zero(got - want)


def test_implicit_midpoint_coordinate_free():
    cf = bea.modified_equation(ImplicitMidpoint(), 4)
    assert cf.terms[1] == () and cf.terms[3] == ()
    assert set(cf.terms[2]) == {(sp.Rational(1, 24), ((), ())), (sp.Rational(-1, 12), (((),),))}
    assert cf.terms == bea.modified_equation(GAUSS2, 4).terms


def test_gauss4_has_order_four_exactly():
    """The 2-stage Gauss method (sqrt(3) in its tableau) has order 4: f_1..f_3 vanish, f_4 does not and is
    rational (the irrational entries cancel exactly)."""
    cf = bea.modified_equation(GAUSS4, 4)
    assert cf.terms[1:4] == ((), (), ())
    assert cf.terms[4] and all(c.is_Rational for c, _ in cf.terms[4])
    concrete = bea.modified_equation(GAUSS4, 3, loss=NUMERIC, params=PARAMS)
    assert all(zero(t) for t in concrete.terms[1:])


def test_radau_and_lobatto_concrete_match_coordinate_free():
    for rule, order in ((RADAU_IIA3, 3), (LOBATTO_IIIA2, 2)):
        concrete = bea.modified_equation(rule, order, loss=NUMERIC, params=PARAMS)
        evaluated = bea.modified_equation(rule, order).evaluate(loss=NUMERIC, params=PARAMS)
        for got, want in zip(concrete.terms, evaluated):
            assert zero(got - want)


def test_implicit_sgd_steps():
    """One implicit step is implicit GD; two against undetermined coefficients on two batch losses."""
    assert (bea.modified_equation(ImplicitSGDSteps(1), 2, loss=E, params=PARAMS).terms
            == bea.modified_equation(ImplicitGD(), 2, loss=E, params=PARAMS).terms)
    losses = [NUMERIC, (a - 2 * b) ** 2 / 2 + a**4 / 4]

    def two_steps(theta, new, grad, h):  # theta_1 = theta - h g_0(theta_1), theta_2 = theta_1 - h g_1(theta_2)
        first = UndeterminedCoefficients(lambda t, n, g, h: n - t + h * g[0](n), order=5).step(theta, grad, h)
        return new - first + h * grad[1](new)

    reference = UndeterminedCoefficients(two_steps, order=5, n_losses=2)
    expected = brute_force_corrections(reference, losses, PARAMS, 2)
    me = bea.modified_equation(ImplicitSGDSteps(2), 2, losses=losses, params=PARAMS)
    # brute_force_corrections matches the flow of G over time h; the rule's f over time 2 h: G = 2 f
    for got, want in zip(me.terms, expected):
        assert zero(2 * got - want)


# -- the numeric solve ---------------------------------------------------------------------------

def _gradient_and_hessian(loss):
    g, H = gradient(loss), hessian(loss)
    grad = sp.lambdify([PARAMS], list(g), "numpy")
    hess = sp.lambdify([PARAMS], H.tolist(), "numpy")
    return (lambda t: np.array(grad(list(t)), dtype=float)), (lambda t: np.array(hess(list(t)), dtype=float))


def newton_runge_kutta(A, weights, theta, step, loss, steps):
    """Iterates of a Runge-Kutta map of theta' = -grad E, stages by Newton's method on the stacked stages."""
    A, weights = np.array(A, dtype=float), np.array(weights, dtype=float)
    grad, hess = _gradient_and_hessian(loss)
    s, d = len(weights), len(theta)
    out = [np.array(theta, dtype=float)]
    for _ in range(steps):
        theta = out[-1]
        k = np.tile(-grad(theta), s)
        for _ in range(50):
            points = [theta + step * sum(A[i, j] * k[j * d:(j + 1) * d] for j in range(s)) for i in range(s)]
            residual = k - np.concatenate([-grad(p) for p in points])
            jacobian = np.eye(s * d)
            for i in range(s):
                for j in range(s):
                    jacobian[i * d:(i + 1) * d, j * d:(j + 1) * d] += step * A[i, j] * hess(points[i])
            k = k - np.linalg.solve(jacobian, residual)
        out.append(theta + step * sum(weights[i] * k[i * d:(i + 1) * d] for i in range(s)))
    return np.array(out)


@pytest.mark.parametrize("rule, A, weights", [
    (ImplicitGD(), [[1]], [1]),
    (BACKWARD_EULER, [[1]], [1]),
    (ImplicitMidpoint(), [[0.5]], [1]),
    (GAUSS4, [[0.25, 0.25 - 3**0.5 / 6], [0.25 + 3**0.5 / 6, 0.25]], [0.5, 0.5]),
    (RADAU_IIA3, [[5 / 12, -1 / 12], [0.75, 0.25]], [0.75, 0.25]),
], ids=["implicit-gd", "backward-euler", "implicit-midpoint", "gauss4", "radau-iia3"])
def test_iterates_match_newton_in_numpy(rule, A, weights):
    start, step = [0.7, -0.4], 0.3
    path = bea.iterate(rule, NUMERIC, start, step, 4, params=PARAMS)
    np.testing.assert_allclose(np.asarray(path), newton_runge_kutta(A, weights, start, step, NUMERIC, 4),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("rule", [ImplicitGD(), ImplicitMidpoint(), GAUSS4])
def test_one_step_matches_the_exact_step_expansion(rule):
    """The numeric solve (fixed point to round-off) against the engine's exact series of the same step."""
    step, point = 2e-3, {a: 0.7, b: -0.4}  # the series' remainder, about 40 h^6, is below round-off
    path = bea.iterate(rule, NUMERIC, [point[a], point[b]], step, 1, params=PARAMS)
    me = bea.modified_equation(rule, 4, loss=NUMERIC, params=PARAMS)
    series = sp.Matrix(PARAMS) + sum((h ** (k + 1) * d for k, d in enumerate(me.expansion)), sp.zeros(2, 1))
    expected = np.array(series.subs({**point, h: step}), dtype=float).ravel()
    np.testing.assert_allclose(np.asarray(path[1]), expected, rtol=0, atol=1e-14)


def test_fixed_point_on_arrays_and_tuples():
    import jax.numpy as jnp

    root = fixed_point(lambda v: jnp.cos(v), jnp.array([1.0, 0.5]))  # the Dottie number, |sin| < 1
    np.testing.assert_allclose(np.asarray(root), 0.7390851332151607, rtol=0, atol=1e-15)
    pair = fixed_point(lambda p: (p[1] / 2, jnp.ones(2)), (jnp.zeros(2), jnp.zeros(2)))
    np.testing.assert_allclose(np.asarray(pair[0]), 0.5, rtol=0, atol=0)


def test_iteration_stays_exact_at_a_minimum():
    """At a minimum the solution is theta itself: the solve stops at once, nothing drifts."""
    path = bea.iterate(ImplicitGD(), NUMERIC, [1.0, 0.6], 0.5, 3, params=PARAMS)
    np.testing.assert_array_equal(np.asarray(path[-1]), [1.0, 0.6])


# -- bad input -----------------------------------------------------------------------------------

def test_step_too_large_for_the_solve_is_a_clear_error():
    with pytest.raises(ImplicitSolveError, match=r"did not converge at h=3.0 in step 1.*Lower h"):
        bea.iterate(ImplicitGD(), NUMERIC, [0.7, -0.4], 3.0, 5, params=PARAMS)
    with pytest.raises(ImplicitSolveError, match="gauss4"):
        bea.iterate(GAUSS4, NUMERIC, [0.7, -0.4], 30.0, 2, params=PARAMS)


def test_fixed_point_that_does_not_contract_is_inconsistent():
    """x = x + h grad E(x) has no solution that is a power series in h (the unknown enters at O(1))."""
    bad = bea.rules.rule(lambda theta, grad, h: fixed_point(lambda v: v + h * grad(v), theta), name="bad")
    with pytest.raises(bea.InconsistentRuleError, match="does not contract at h = 0"):
        bea.modified_equation(bad, 2, loss=E, params=PARAMS)
    with pytest.raises(bea.InconsistentRuleError, match="does not contract at h = 0"):
        bea.modified_equation(bad, 2)
    stages = RungeKutta.from_tableau([[0.5, 0.5], [0.5, 0.5]], [0.5, 0.5])  # fine: solvable for small h
    assert bea.modified_equation(stages, 2).terms[0] == ((-1, ()),)


def test_fixed_point_arguments():
    with pytest.raises(bea.InconsistentRuleError, match="max_iterations"):
        fixed_point(lambda v: v, np.zeros(2), max_iterations=0)
    with pytest.raises(bea.InconsistentRuleError, match="at least one unknown"):
        fixed_point(lambda v: v, ())


def test_tableau_shapes_are_still_checked():
    with pytest.raises(bea.InvalidHyperparameterError, match="must be 2 x 2"):
        RungeKutta.from_tableau([[1]], [0.5, 0.5])
    with pytest.raises(bea.InvalidHyperparameterError, match="row sum"):
        RungeKutta.from_tableau([[1]], [1], [0.5])


# -- command line and verification ---------------------------------------------------------------

def test_command_line(capsys):
    assert main(["derive", "implicit-gd", "--order", "1"]) == 0
    assert "f_1 = 1/2 ∇²E ∇E" in capsys.readouterr().out
    assert main(["derive", "implicit-midpoint", "--loss", "(y - a*b*x)**2/2", "--params", "a,b", "--order", "1",
                 "--text"]) == 0
    assert "f_1[a] = 0" in capsys.readouterr().out
    assert main(["derive", "gauss4", "--order", "3"]) == 0
    assert "f_3 = 0" in capsys.readouterr().out


@pytest.mark.parametrize("rule", [ImplicitGD(), ImplicitMidpoint()], ids=["implicit-gd", "implicit-midpoint"])
@pytest.mark.parametrize("order", [0, 1, 2])
def test_local_error_slopes(rule, order):
    from bea.verify import local_error, model

    result = local_error(rule, model("two-param"), order)
    assert result.passes(0.2), (result.slope, result.expected)


def test_implicit_sgd_steps_on_the_command_line(capsys):
    """One step per --loss (n from their number); f_0 is the mean gradient flow, the per-step time h."""
    from bea.cli import main

    assert main(["derive", "implicit-sgd-steps", "--loss", "(a-1)**2/2", "--loss", "(a+1)**2/2 + a**3/3",
                 "--params", "a", "--order", "0"]) == 0
    assert "f_0[a] = -a**2/2 - a" in capsys.readouterr().out
    assert main(["verify", "implicit-sgd-steps", "--model", "mlp-2-batches", "--order", "1", "--local-only",
                 "--json"]) == 0
