"""The coordinate-free stochastic modified equation (issue 14, "two views"): evaluated on concrete per-example
losses it must equal the concrete engine's result, whose moments come from explicit batches (an independent
code path: `increment_moments` runs the rule's step once per batch), term for term, in dimensions 1-3."""

import dataclasses
import json
import time

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bea
from bea.engines.stochastic._tensor_networks import Network
from bea.rules import SGD, Langevin

a, b, c, u = sp.symbols("a b c u")
PARAMS = {1: [a], 2: [a, b], 3: [a, b, c]}


def _monomials(params, degree):
    out = [sp.Integer(1)]
    for _ in range(degree):
        out = list(dict.fromkeys(m * p for m in out for p in params)) + out
    return [m for m in dict.fromkeys(out) if m != 1]


@st.composite
def per_example_losses(draw, max_dim=3, max_losses=3):
    """dim, params, and N random cubic per-example losses with small rational coefficients."""
    dim = draw(st.integers(1, max_dim))
    params = PARAMS[dim]
    monomials = _monomials(params, 3 if dim < 3 else 2)
    n = draw(st.integers(2, max_losses))
    losses = []
    for _ in range(n):
        coefficients = draw(st.lists(st.integers(-3, 3), min_size=len(monomials), max_size=len(monomials)))
        losses.append(sum(k * m for k, m in zip(coefficients, monomials)) + sum(p**2 for p in params))
    return params, losses


def _same_generator(free, concrete, order):
    assert len(free.generator) == len(concrete.generator) == order + 1
    for l in range(order + 1):
        assert set(free.generator[l]) == set(concrete.generator[l]), l
        for alpha, value in free.generator[l].items():
            assert sp.expand(value - concrete.generator[l][alpha]) == 0, (l, alpha)


@pytest.mark.parametrize("batch_size", [1, 2])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=per_example_losses())
def test_sgd_equals_the_concrete_engine(batch_size, problem):
    params, losses = problem
    order = 2
    free = bea.stochastic_modified_equation(SGD(batch_size=batch_size), order, allow_generator=True)
    concrete = bea.stochastic_modified_equation(SGD(batch_size=batch_size), order, losses=losses, params=params,
                                                allow_generator=True)
    on = free.on(losses=losses, params=params)
    _same_generator(on, concrete, order)  # the kappa_3 term of L_2 included
    for l in range(order + 1):
        assert sp.expand(on.drift[l] - concrete.drift[l]) == sp.zeros(len(params), 1)
        assert sp.expand(on.diffusion[l] - concrete.diffusion[l]) == sp.zeros(len(params))
    assert (on.obstruction is None) == (concrete.obstruction is None)


@pytest.mark.parametrize("order", [0, 1])
def test_sgd_low_orders_equal_the_concrete_engine(order):
    losses = [a**2 * b / 2 + a - b**2, a * b + 2 * b - a**2 / 3, a**2 + b**2 / 2 - 3 * a * b**2]
    for rule in (SGD(), SGD(batch_size=2)):
        free = bea.stochastic_modified_equation(rule, order)
        assert free.obstruction is None
        _same_generator(free.on(losses=losses, params=[a, b]),
                        bea.stochastic_modified_equation(rule, order, losses=losses, params=[a, b]), order)


def test_sgd_without_replacement_through_order_two():
    # the finite-population factors of kappa_2 and kappa_3 of a sample mean, N a symbol until evaluated
    losses = [a**2 * b + a, a * b - 2 * b**2 + a**3, a**2 - 3 * a * b + b, b**3 - a]
    rule = SGD(batch_size=2, replacement=False)
    free = bea.stochastic_modified_equation(rule, 2, allow_generator=True)
    assert bea.engines.stochastic._coordinate_free.EXAMPLES in free.generator[1][next(iter(free.diffusion[1]))].free_symbols
    concrete = bea.stochastic_modified_equation(rule, 2, losses=losses, params=[a, b], allow_generator=True)
    _same_generator(free.on(losses=losses, params=[a, b]), concrete, 2)
    with pytest.raises(bea.UnsupportedError, match="4th cumulant.*losses="):
        bea.stochastic_modified_equation(rule, 3, allow_generator=True)
    # fewer losses than a batch: (N - B)/(B (N - 1)) < 0 would give a negative diffusion, silently
    with pytest.raises(bea.InvalidHyperparameterError, match="batch_size 3 .* larger than the 2 losses"):
        bea.stochastic_modified_equation(SGD(batch_size=3, replacement=False), 1).on(losses=[u, u**2], params=[u])


def test_sgd_order_three_has_the_fourth_cumulant():
    losses = [u + u**3 / 3, -2 * u + u**2, 3 * u - u**2 / 2 + u**3]  # one dimension keeps the reference fast
    free = bea.stochastic_modified_equation(SGD(), 3, allow_generator=True)
    kappa4 = Network.canonical([("phi", 4), ("K", 4, 0)], [((1, 0), (0, 0))] * 4)
    assert free.generator[3][kappa4] == sp.Rational(1, 24)  # log E[exp(-h g d)]: kappa_4 (-h d)^4 / 4!
    _same_generator(free.on(losses=losses, params=[u]),
                    bea.stochastic_modified_equation(SGD(), 3, losses=losses, params=[u], allow_generator=True), 3)


def test_langevin_on_a_non_quadratic_loss():
    T = sp.Symbol("T", nonnegative=True)
    loss = a**4 / 4 + a * b**2 - b**3 / 3
    free = bea.stochastic_modified_equation(Langevin(temperature=T), 2, allow_generator=True)
    concrete = bea.stochastic_modified_equation(Langevin(temperature=T), 2, loss=loss, params=[a, b],
                                                allow_generator=True)
    _same_generator(free.on(loss=loss, params=[a, b]), concrete, 2)


@pytest.mark.slow
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=per_example_losses(max_dim=2, max_losses=2))
def test_langevin_equals_the_concrete_engine(problem):
    params, losses = problem
    T = sp.Symbol("T", nonnegative=True)
    loss = losses[0] + params[0] ** 4  # not quadratic: third and higher derivatives of E enter
    free = bea.stochastic_modified_equation(Langevin(temperature=T), 2, allow_generator=True)
    concrete = bea.stochastic_modified_equation(Langevin(temperature=T), 2, loss=loss, params=params,
                                                allow_generator=True)
    _same_generator(free.on(loss=loss, params=params), concrete, 2)
    assert free.obstruction.order == 2 and free.obstruction.differential_order == 3


def test_li_tai_e_order_one_text():
    sme = bea.stochastic_modified_equation(SGD(), 1)
    assert sme.text().splitlines() == ["b_0 = -∇E", "D_0 = 0", "b_1 = -1/2 ∇²E ∇E", "D_1 = Σ"]
    assert bea.stochastic_modified_equation(SGD(batch_size=4), 1).text().splitlines()[-1] == "D_1 = 1/4 Σ"
    assert r"-\frac{1}{2} \nabla^{2} E \nabla E" in sme.latex() and r"\Sigma" in sme.latex()
    assert sme.generator_text().splitlines()[1] == "L_1 = 1/2 Σ : ∇² - 1/2 ∇²E ∇E · ∇"
    assert isinstance(sme, bea.CoordinateFreeStochasticModifiedEquation)


def test_order_two_text_and_obstruction():
    with pytest.raises(bea.NoStochasticModifiedEquationError, match=r"at order 2: .*-1/24\) κ₃ : ∇\^3.*order=1"):
        bea.stochastic_modified_equation(SGD(batch_size=2), 2)
    sme = bea.stochastic_modified_equation(SGD(), 2, allow_generator=True)
    lines = sme.text().splitlines()
    assert lines[4] == "b_2 = -1/3 ∇²E ∇²E ∇E + 1/4 ∇³E[Σ] - 1/12 ∇³E[∇E, ∇E]"
    assert lines[5] == "D_2 = 1/2 ∇_{∇E}Σ + ∇²E Σ"
    assert lines[6].startswith("no SDE beyond order 1: order 2: -1/6 κ₃ : ∇³")
    langevin = bea.stochastic_modified_equation(Langevin(temperature=sp.Rational(1, 2)), 1)
    assert langevin.text().splitlines() == ["b_0 = -∇E", "D_0 = I", "b_1 = -1/2 ∇²E ∇E + 1/4 ∇³E[I]", "D_1 = ∇²E"]


def test_zero_noise_is_gradient_descent():
    # one loss: every cumulant of order >= 2 vanishes and the drift is GD's modified field
    E = (1 - a * b) ** 2 / 2 + a**3 / 3
    order = 2
    sme = bea.stochastic_modified_equation(SGD(), order, allow_generator=True).on(loss=E, params=[a, b])
    gd = bea.modified_equation(bea.rules.GD(), order).evaluate(loss=E, params=[a, b])
    for l in range(order + 1):
        assert sp.expand(sme.drift[l] - gd[l]) == sp.zeros(2, 1)
        assert sme.diffusion[l] == sp.zeros(2)
        assert all(sum(alpha) == 1 for alpha in sme.generator[l])


def test_json_and_latex():
    sme = bea.stochastic_modified_equation(SGD(batch_size=2), 2, allow_generator=True)
    data = json.loads(json.dumps(sme.to_dict()))
    assert data["view"] == "stochastic modified equation, coordinate-free"
    assert data["diffusion"][1] == [{"coefficient": "1/2", "text": "Σ", "latex": r"\Sigma", "differential_order": 2,
                                     "nodes": [["phi", 2], ["K", 2, 0]], "edges": [[[0, 0], [1, 0]], [[0, 0], [1, 0]]]}]
    assert data["obstruction"]["order"] == 2 and data["obstruction"]["terms"][0]["text"] == "κ₃"
    assert sp.sympify(data["obstruction"]["terms"][0]["coefficient"]) == sp.Rational(-1, 24)
    assert r"\kappa_{3} : \nabla^{3}" in sme.generator_latex()


def test_index_notation_where_no_tree():
    # H_ia Sigma_jb kappa... : a term whose network has a cycle through phi is written with indices
    sme = bea.stochastic_modified_equation(SGD(), 3, allow_generator=True)
    assert "(∇³E)_{iab} (κ₃)_{jab}" in sme.generator_text()


def test_errors():
    @dataclasses.dataclass(frozen=True)
    class ClippedSGD(SGD):  # another stochastic rule: its moments are not SGD's cumulants
        name = "clipped_sgd"

    with pytest.raises(bea.UnsupportedError, match="covers sgd and langevin, not clipped_sgd.*losses="):
        bea.stochastic_modified_equation(ClippedSGD(), 1)
    with pytest.raises(bea.UnknownSymbolError, match="not a hyperparameter"):
        bea.stochastic_modified_equation(Langevin(), 1, values={"x": 1})
    with pytest.raises(bea.UnknownSymbolError, match="exactly one of"):
        bea.stochastic_modified_equation(SGD(), 1, params=[u])
    sme = bea.stochastic_modified_equation(Langevin(), 1)
    with pytest.raises(bea.UnknownSymbolError, match="one loss"):
        sme.on(losses=[u, u**2], params=[u])
    with pytest.raises(bea.NonSmoothLossError):
        bea.stochastic_modified_equation(SGD(), 1).on(losses=[sp.Abs(u), u], params=[u])
    with pytest.raises(bea.InvalidOrderError):
        sme.on(loss=u**2, params=[u], order=2)
    assert bea.stochastic_modified_equation(Langevin(), 1, values={"T": 2}).diffusion[0] == {
        Network.canonical([("phi", 2), ("I",)], [((1, 0), (0, 0))] * 2): 4}


def test_order_two_is_fast():
    start = time.perf_counter()
    bea.engines.stochastic._coordinate_free.generator_series(
        bea.engines.stochastic._coordinate_free.one_step_operators(
            bea.engines.stochastic._coordinate_free.increment_cumulants(SGD(batch_size=3), 2), 2))
    assert time.perf_counter() - start < 2  # the target: coordinate-free order 2 under 2 s


def test_hyperparameters_tied_to_the_step_are_refused_coordinate_free():
    """Langevin(temperature=2h): the networks' coefficients take h as a constant, which would be silently wrong."""
    with pytest.raises(bea.UnsupportedError, match="depends on the step size h.*losses="):
        bea.stochastic_modified_equation(bea.rules.Langevin(temperature=2 * bea.h), 1)
    u = sp.Symbol("u")  # on a loss the same rule is expanded in h: D_0 = 0, D_1 = 4 (the noise is O(h))
    sme = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=2 * bea.h), 1, loss=u**2 / 2, params=[u])
    assert sme.diffusion[0][0, 0] == 0 and sme.diffusion[1][0, 0] == 4
