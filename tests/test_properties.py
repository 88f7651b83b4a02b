"""Property tests: random polynomial losses in 1 to 4 parameters, engine vs brute force."""

import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference import brute_force_corrections

import bea
from bea.rules import GD, RK4


@st.composite
def polynomial_losses(draw, max_dim=4):
    n = draw(st.integers(1, max_dim))
    params = list(sp.symbols(f"p0:{n}"))
    terms = draw(st.integers(2, 4))
    loss = sp.S.Zero
    for _ in range(terms):
        coeff = sp.Rational(draw(st.integers(-3, 3)), draw(st.integers(1, 3)))
        factors = draw(st.lists(st.sampled_from(params), min_size=1, max_size=3))  # degree <= 3
        loss += coeff * sp.Mul(*factors)
    # every parameter must appear: a quadratic anchor keeps the loss honest
    loss = sp.expand(loss + sum(p**2 for p in params) / 2)
    assume(loss.free_symbols == set(params))  # a drawn -p**2/2 can still cancel the anchor of p
    return loss, params


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polynomial_losses())
def test_gd_matches_brute_force_to_order_3(problem):
    loss, params = problem
    me = bea.modified_equation(GD(), 3, loss=loss, params=params)
    reference = brute_force_corrections(GD(), [loss], params, 3)
    for mine, ref in zip(me.terms, reference):
        assert sp.expand(mine - ref) == sp.zeros(len(params), 1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polynomial_losses(max_dim=2))
def test_rk4_has_no_correction_below_order_4(problem):
    loss, params = problem
    me = bea.modified_equation(RK4, 4, loss=loss, params=params)
    assert all(term == sp.zeros(len(params), 1) for term in me.terms[1:4])


@st.composite
def explicit_tableaus(draw):
    s = draw(st.integers(1, 3))
    q = st.builds(sp.Rational, st.integers(-2, 2), st.integers(1, 3))
    A = [[draw(q) if j < i else 0 for j in range(s)] for i in range(s)]
    b = [draw(q) for _ in range(s)]
    return A, b


@settings(max_examples=10, deadline=None)
@given(explicit_tableaus())
def test_random_tableaus_match_brute_force(tableau):
    A, b = tableau
    rk = bea.rules.RungeKutta.from_tableau(A, b)
    x, y = sp.symbols("x y")
    loss = x**3 / 3 + x * y + y**2 / 2
    me = bea.modified_equation(rk, 2, loss=loss, params=[x, y])
    reference = brute_force_corrections(rk, [loss], [x, y], 2)
    for mine, ref in zip(me.terms, reference):
        assert sp.expand(mine - ref) == sp.zeros(2, 1)
