"""Inner products and norms in steps (`bea.rules.dot`, `norm`, `@`), and steps that read components.

Issue 18: a normalized GD written with `len(g)` and `g[i]` got a silently wrong coordinate-free view
(the abstract vector read as one component). Each coordinate-free result here is checked against the
concrete engine (exact component algebra, a different code path) on concrete losses, and against
closed forms computed by hand.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import polynomial_losses

import bea
from bea.rules import dot, norm, sqrt

a, b = sp.symbols("a b")
E = (sp.Rational(3, 5) - a * b) ** 2 / 2
POINT = {a: sp.Rational(14, 5), b: sp.Rational(7, 2)}


def _indexed_normalized_gd(theta, grad, h):
    g = grad(theta)
    n2 = sum(g[i] * g[i] for i in range(len(g)))
    return theta - h * g / sqrt(1 + n2)


def _normalized_gd(theta, grad, h):
    g = grad(theta)
    return theta - h * g / sqrt(1 + dot(g, g))


def _numbers(column, point=POINT):
    return [float(sp.N(x.xreplace(point), 30)) for x in column]


def _assert_views_agree(rule, order, loss, params, point):
    concrete = bea.modified_equation(rule, order, loss=loss, params=params)
    coordinate_free = bea.modified_equation(rule, order)
    evaluated = coordinate_free.evaluate(loss=loss, params=params)
    for l in range(order + 1):
        np.testing.assert_allclose(_numbers(evaluated[l], point), _numbers(concrete.terms[l], point),
                                   rtol=1e-20, atol=1e-20)
    return coordinate_free


def test_indexing_the_abstract_vector_is_refused_with_advice():
    rule = bea.rules.rule(_indexed_normalized_gd)
    with pytest.raises(bea.UnsupportedError, match=r"reads components.*bea\.rules\.dot"):
        bea.modified_equation(rule, 1)
    # The concrete view is right: f_0 = -grad E / sqrt(1 + |grad E|^2), computed here by hand.
    gradient = sp.Matrix([sp.diff(E, p) for p in (a, b)])
    by_hand = -gradient / sp.sqrt(1 + (gradient.T * gradient)[0])
    concrete = bea.modified_equation(rule, 1, loss=E, params=[a, b])
    np.testing.assert_allclose(_numbers(concrete.terms[0]), _numbers(by_hand), rtol=1e-14)
    np.testing.assert_allclose(_numbers(concrete.terms[0]), [-0.78064, -0.62451], atol=1e-5)


@pytest.mark.parametrize("what", ["shape", "iteration"])
def test_other_component_reads_are_refused(what):
    steps = {
        "shape": lambda theta, grad, h: theta - h * grad(theta) * theta.shape[0],
        "iteration": lambda theta, grad, h: theta - h * grad(theta) * sum(grad(theta)),
    }
    with pytest.raises(bea.UnsupportedError, match="reads components"):
        bea.modified_equation(bea.rules.rule(steps[what]), 1)


def test_normalized_gd_coordinate_free_equals_concrete_and_closed_form():
    rule = bea.rules.rule(_normalized_gd)
    cf = _assert_views_agree(rule, 2, E, [a, b], POINT)
    assert cf.text(0) == "-∇E/sqrt(|∇E|² + 1)"
    # f_1 = -1/2 f_0' f_0 with f_0 = -g/s, s = sqrt(1 + |g|^2): -Hg/(2 s^2) + g <g, Hg>/(2 s^4).
    g = sp.Matrix([sp.diff(E, p) for p in (a, b)])
    H = sp.hessian(E, (a, b))
    s2 = 1 + (g.T * g)[0]
    by_hand = -H * g / (2 * s2) + g * (g.T * H * g)[0] / (2 * s2**2)
    np.testing.assert_allclose(_numbers(cf.evaluate(loss=E, params=[a, b])[1]), _numbers(by_hand), rtol=1e-14)
    assert r"\left\|\nabla E\right\|^{2}" in cf.latex()


def test_matmul_on_series_is_the_inner_product():
    """g @ g on the engine's series is sum_i g_i^2: checked on a loss against the hand-written f_0."""
    rule = bea.rules.rule(lambda theta, grad, h: theta - h * grad(theta) / sqrt(1 + grad(theta) @ grad(theta)))
    gradient = sp.Matrix([sp.diff(E, p) for p in (a, b)])
    by_hand = -gradient / sp.sqrt(1 + (gradient.T * gradient)[0])
    for f_0 in (bea.modified_equation(rule, 0).evaluate(loss=E, params=[a, b])[0],
                bea.modified_equation(rule, 0, loss=E, params=[a, b]).terms[0]):
        np.testing.assert_allclose(_numbers(f_0), _numbers(by_hand), rtol=1e-14)


def test_inner_products_are_canonical_so_zeros_show():
    """<g^3, g> = <g^2, g^2>: their difference vanishes exactly, so f_0 = -grad E and f_1 = -H grad E/2."""
    rule = bea.rules.rule(lambda t, grad, h: t - h * (grad(t) + (dot(grad(t) * grad(t) * grad(t), grad(t))
                                                                   - dot(grad(t) * grad(t), grad(t) * grad(t))) * grad(t)))
    cf = bea.modified_equation(rule, 1)
    assert cf.text(0) == "-∇E" and cf.text(1) == "-∇²E(∇E)/2"


def test_scalar_factors_leave_contractions():
    """sqrt(2 g*g) alone and times a norm: the same atoms (a scalar factor leaves the multilinear contraction)."""
    alone = bea.rules.rule(lambda t, grad, h: t - h * sqrt(2 * grad(t) * grad(t)))
    scaled = bea.rules.rule(lambda t, grad, h: t - h * sqrt(2 * grad(t) * grad(t)) * norm(grad(t)))
    atoms = [{s for s in sp.sympify(bea.modified_equation(r, 1).terms[1]).free_symbols if "∇²E" in str(s)}
             for r in (alone, scaled)]
    assert atoms[0] <= atoms[1]


def test_a_later_derivation_does_not_change_an_earlier_result():
    """Atoms that print alike but mean different things (epsilon with and without assumptions) stay apart."""
    rmsprop = bea.modified_equation(bea.rules.RMSProp(rho=sp.Rational(1, 2)), 1)
    before = [sp.N(x.subs(bea.rules.RMSProp().eps, sp.Rational(1, 10)).subs(POINT), 20)
              for x in rmsprop.evaluate(loss=E, params=[a, b])[1]]
    plain = bea.rules.rule(lambda t, grad, h, epsilon: t - h * grad(t) / sqrt(grad(t) * grad(t) + epsilon), epsilon=None)
    bea.modified_equation(plain, 1)
    after = [sp.N(x.subs(bea.rules.RMSProp().eps, sp.Rational(1, 10)).subs(POINT), 20)
             for x in rmsprop.evaluate(loss=E, params=[a, b])[1]]
    assert before == after and all(x.is_Number for x in after)


def test_clipping_by_norm_where_smooth():
    """|g| > c: theta - h c g/|g|; f_0 = -c g/|g| and the views agree to order 2."""
    clip = bea.rules.rule(lambda theta, grad, h, c: theta - h * c * grad(theta) / norm(grad(theta)), c=None)
    c = sp.Symbol("c")
    loss = E + a**4 / 7
    concrete = bea.modified_equation(clip, 2, loss=loss, params=[a, b])
    evaluated = bea.modified_equation(clip, 2).evaluate(loss=loss, params=[a, b])
    point = {**POINT, c: sp.Rational(1, 2)}
    for l in range(3):
        np.testing.assert_allclose(_numbers(evaluated[l], point), _numbers(concrete.terms[l], point), rtol=1e-20)
    cf = bea.modified_equation(clip, 1)
    assert cf.text(0) == "-c*∇E/|∇E|" and "|∇E|⁴" in cf.text(1)  # norms shown as norms, not sqrt(|∇E|²)
    assert r"\left\|\nabla E\right\|^{4}" in cf.latex()


@pytest.mark.slow
def test_global_norm_adaptive_rule_with_memory():
    """RMSProp with one scalar second moment v' = rho v + (1 - rho)|g|^2 (a global-norm rule): slow manifold
    and modified equation in both views."""

    def rmsprop_norm(theta, state, grad, h, n, rho, eps):
        (v,) = state
        g = grad(theta)
        v = rho * v + (1 - rho) * dot(g, g)
        return theta - h * g / sqrt(v + eps), (v,)

    rule = bea.rules.memory_rule(rmsprop_norm, decays=["rho"], rho=sp.Rational(9, 10), eps=sp.Rational(1, 100))
    loss = E + a**4 / 7
    point = {a: sp.Rational(14, 15), b: sp.Rational(7, 6)}
    cf = _assert_views_agree(rule, 1, loss, [a, b], point)
    assert "|∇E|²" in cf.text(0)


def test_lowered_coordinate_free_field_matches_concrete():
    rule = bea.rules.rule(_normalized_gd)
    concrete = bea.modified_equation(rule, 2, loss=E, params=[a, b])
    field = bea.modified_equation(rule, 2).to_jax(loss=lambda p: (0.6 - p[0] * p[1]) ** 2 / 2)
    step = 0.01
    expected = sum((step**l * np.array(_numbers(concrete.terms[l])) for l in range(3)), np.zeros(2))
    np.testing.assert_allclose(np.asarray(field(jnp.array([2.8, 3.5]), step)), expected, rtol=1e-12)
    batched = jax.vmap(lambda p: field(p, step))(jnp.array([[2.8, 3.5], [2.8, 3.5]]))
    np.testing.assert_allclose(np.asarray(batched[1]), expected, rtol=1e-12)


def test_dot_and_norm_on_arrays_match_numpy():
    u, v = jnp.array([3.0, 4.0]), jnp.array([1.0, -2.0])
    assert float(dot(u, v)) == -5.0 and float(norm(u)) == 5.0
    iterates = bea.iterate(bea.rules.rule(_normalized_gd), E, [2.8, 3.5], 0.01, 1, params=[a, b])
    g = np.array([float(sp.diff(E, p).xreplace(POINT)) for p in (a, b)])
    np.testing.assert_allclose(np.asarray(iterates[1]), np.array([2.8, 3.5]) - 0.01 * g / np.sqrt(1 + g @ g))


@pytest.mark.parametrize(
    "step, match",
    [
        (lambda t, g, h: t - h * g(t) if dot(g(t), g(t)) > 1 else t, "branched on a value"),
        (lambda t, g, h: t - h * g(t) if g(t) else t, "branched on a value"),
        (lambda t, g, h: t - h * g(t) / np.sqrt(1 + dot(g(t), g(t))), r"numpy\.sqrt.*bea\.rules\.sqrt"),
        (lambda t, g, h: t - h * g(t) / sp.sqrt(1 + dot(g(t), g(t))), r"SymPy function.*bea\.rules\.sqrt"),
        (lambda t, g, h: t - h * g(t) + sqrt(h) * g(t), "sqrt\\(h\\).*stochastic"),
    ],
)
@pytest.mark.parametrize("view", ["concrete", "coordinate-free"])
def test_steps_that_cannot_be_expanded_say_what_to_use(step, match, view):
    kwargs = {"loss": E, "params": [a, b]} if view == "concrete" else {}
    with pytest.raises(bea.UnsupportedError, match=match):
        bea.modified_equation(bea.rules.rule(step), 1, **kwargs)


@pytest.mark.parametrize(
    "step",
    [
        lambda t, g, h: t - h * g(t) / jnp.sqrt(1 + dot(g(t), g(t))),
        lambda t, g, h: t - h * g(t) * math.exp(dot(g(t), g(t))),
        lambda t, g, h: t - h * g(t).sum(),
    ],
    ids=["jnp.sqrt", "math.exp", "array method"],
)
@pytest.mark.parametrize("view", ["concrete", "coordinate-free"])
def test_array_functions_in_a_step_fail_with_what_a_step_may_use(step, view):
    kwargs = {"loss": E, "params": [a, b]} if view == "concrete" else {}
    with pytest.raises(bea.StepFunctionError, match=r"failed on the engine's exact series.*bea\.rules\.dot"):
        bea.modified_equation(bea.rules.rule(step), 1, **kwargs)
    if "math" not in str(step.__code__.co_names):  # jnp and array methods run on arrays (math.exp does not trace)
        bea.iterate(bea.rules.rule(step), E, [0.5, 0.25], 1e-3, 1, params=[a, b])


def test_numpy_and_python_floats_in_a_step_are_exact_decimals():
    half = bea.rules.rule(lambda t, g, h: t - np.float64(0.5) * h * g(t))
    assert bea.modified_equation(half, 1).text(0) == "-1/2 ∇E"
    tenth = bea.rules.rule(lambda t, g, h: t - 0.1 * h * g(t))
    f_0 = bea.modified_equation(tenth, 1, loss=E, params=[a, b]).terms[0]
    assert sp.expand(f_0 + sp.Matrix([sp.diff(E, a), sp.diff(E, b)]) / 10) == sp.zeros(2, 1)


# -- property: random rules built from the documented operations ----------------------------------------------

@st.composite
def user_rules(draw):
    """theta - h * (sum of scalar * vector) with vectors from grad, grad at a shifted point and hvp, and
    scalars 1, sqrt(1 + <u, v>^2) and 1/(1 + |u|^2)."""
    shift = sp.Rational(draw(st.integers(-2, 2)), 2)
    vector_kinds = draw(st.lists(st.sampled_from(["g", "shifted", "hvp"]), min_size=1, max_size=2))
    scalar_kinds = draw(st.lists(st.sampled_from(["one", "root", "inverse"]), min_size=len(vector_kinds),
                                 max_size=len(vector_kinds)))

    def step(theta, grad, h):
        g = grad(theta)
        vectors = {"g": g, "shifted": grad(theta - shift * h * g), "hvp": grad.hvp(theta, g)}
        total = 0
        for v_kind, s_kind in zip(vector_kinds, scalar_kinds):
            v = vectors[v_kind]
            scalar = {"one": 1, "root": sqrt(1 + dot(g, v) ** 2), "inverse": 1 / (1 + dot(v, v))}[s_kind]
            total = total + v * scalar
        return theta - h * total

    return bea.rules.rule(step, name=f"{vector_kinds}-{scalar_kinds}-{shift}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_rules(), polynomial_losses(max_dim=2, factors=(3, 3), max_terms=2), st.integers(-3, 3), st.integers(-3, 3))
def test_random_user_rules_coordinate_free_equals_concrete_or_refuses(rule, problem, i, j):
    loss, params = problem
    point = dict(zip(params, [sp.Rational(i, 4) + sp.Rational(1, 3), sp.Rational(j, 5) - sp.Rational(1, 7)]))
    try:
        _assert_views_agree(rule, 1, loss, params, point)
    except bea.BeaError:
        pass  # refusing is allowed; a wrong number is not


def test_modified_loss_of_an_inner_product_rule_names_the_reason():
    with pytest.raises(bea.NoModifiedLossError, match="inner products"):
        bea.modified_equation(bea.rules.rule(_normalized_gd), 1).modified_loss()
    # On a concrete loss the concrete view decides: f_0 = -grad E/sqrt(1 + |grad E|^2) is no gradient here.
    with pytest.raises(bea.NoModifiedLossError):
        bea.modified_equation(bea.rules.rule(_normalized_gd), 0, loss=E, params=[a, b]).modified_loss()
