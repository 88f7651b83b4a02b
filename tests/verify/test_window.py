"""Automatic step sizes (issue 15): the asymptotic window found by halving h, reported, or refused with what was
seen; the rule's iterates and the flow compiled once across step sizes."""

import json
import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from bea.rules import GD, Adam
from bea.verify import Model, VerificationError, global_error, local_error, model
from bea.verify._window import DRIFTING, MIN_WINDOW, SETTLED, WINDOW, find_window, start_step

TOLERANCE = 0.15


def _halving(result):
    return all(math.isclose(a / b, 2.0, rel_tol=1e-9) for a, b in zip(result.h, result.h[1:]))


@pytest.mark.parametrize("sweep, expected", [(local_error, 3), (global_error, 2)])
def test_gd_two_param_window_found(sweep, expected):
    """No step sizes: a window of >= 4 halving, usable step sizes, inside what was probed, fitted to the
    theoretical slope (order + 2 local, order + 1 global: Hairer, Lubich & Wanner, Thm IX.1.2)."""
    extra = {"time": 0.1} if sweep is global_error else {}
    result = sweep(GD(), model("two-param"), 1, **extra)
    assert result.automatic and len(result.h) >= MIN_WINDOW and _halving(result)
    assert not any(result.flags)
    probed = {h: (e, f) for h, e, f in result.probed}
    assert all(probed[h] == (e, "") for h, e in zip(result.h, result.error))
    assert abs(result.slope - expected) < TOLERANCE, result
    assert "step sizes chosen automatically" in result.note and f"h = {max(result.h):g}" in result.note
    data = result.to_dict()
    assert data["automatic"] is True and len(data["probed"]) == len(result.probed)
    json.dumps(data)


def test_explicit_step_sizes_are_used_as_given():
    steps = [0.004, 0.002, 0.001, 0.0005]
    result = local_error(GD(), model("two-param"), 1, step_sizes=steps)
    assert result.h == tuple(steps) and not result.automatic and result.probed == ()
    assert "automatic" not in result.to_dict()


@pytest.mark.slow
def test_adam_with_slow_second_moment_window_found():
    """rho = 0.999: the slow-manifold expansion needs h << 1 - rho = 1e-3, where the old default step sizes
    (4e-3 .. 2.5e-4) were all but one pre-asymptotic; the search starts at 1 - rho and finds the window."""
    rule = Adam()
    values = {"beta": Fraction(9, 10), "rho": Fraction(999, 1000), "eps": 1e-2}
    result = local_error(rule, model("two-param"), 1, values=values)
    assert result.automatic and max(result.h) < 1e-3 and abs(result.slope - 3) < TOLERANCE, result
    assert "1 - decay = 0.001" in result.note
    result = global_error(rule, model("two-param"), 1, values=values, time=0.1)
    assert result.automatic and abs(result.slope - 2) < TOLERANCE, result


def test_cli_chooses_and_reports_the_window(capsys):
    from bea.cli import main

    code = main(["verify", "gd", "--model", "quadratic", "--order", "1", "--local-only"])
    out = capsys.readouterr().out
    assert code == 0 and "step sizes chosen automatically" in out and "\n  h: " in out
    code = main(["verify", "gd", "--model", "quadratic", "--order", "1", "--local-only", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["local_error"]["automatic"] is True and data["passed"] is True


# -- refusals: no window, said with what was seen ----------------------------------------------------------------

A = sp.Symbol("a_window")


def test_iterates_that_never_match_the_field_are_refused():
    """The JAX loss is twice the SymPy one: the iterates move twice as fast as the derived flow, so the error is
    as large as the motion at every h (pre-asymptotic down to 2^-40 below the start)."""
    wrong = Model("wrong", "", np.array([1.0]), (lambda t: t[0] ** 2,), (A,), (A**2 / 2,))
    with pytest.raises(VerificationError, match=r"no asymptotic window for the local error.*pre-asymptotic from "
                       r"h=1 down to h=.*Pass explicit step sizes \(step_sizes=.*--h"):
        local_error(GD(), wrong, 1)


def test_iterates_that_diverge_at_every_step_size_are_refused():
    nan = Model("nan", "", np.array([1.0]), (lambda t: jnp.sqrt(-1.0 - t[0] ** 2),), (A,), (A**2 / 2,))
    with pytest.raises(VerificationError, match=r"no asymptotic window for the global error.*diverged from h=0.025"):
        global_error(GD(), nan, 1, time=0.1)


def _synthetic(h0, flag_of, power=3.0, noise=None):
    """evaluate(k) on e(h) = h^power, flagged by flag_of(h), optionally with a relative perturbation."""
    def evaluate(k):
        h = h0 * 2.0**-k
        e = h**power * (1 + (noise(k) if noise else 0))
        return h, e, flag_of(h, e)
    return evaluate


def test_window_settles_between_pre_asymptotic_and_round_off():
    window = find_window(_synthetic(1.0, lambda h, e: "pre-asymptotic" if h > 0.05 else ""), "local", "test")
    hs = [window.probes[i][0] for i in window.indices]
    assert window.settled and len(hs) == WINDOW and max(hs) < 0.05 and window.spread <= SETTLED
    assert len(window.probes) == 5 + WINDOW  # stops as soon as it settles: 1, 1/2, .., 1/16 pre-asymptotic


def test_pre_asymptotic_then_round_off_is_refused_with_both_ranges():
    def flag(h, e):
        return "pre-asymptotic" if h > 2**-5 else ("round-off" if h < 2**-7 else "")

    with pytest.raises(VerificationError) as info:
        find_window(_synthetic(1.0, flag), "local", "test")
    text = str(info.value)
    assert "pre-asymptotic from h=1 down to h=0.0625" in text and "usable from h=0.03125 down to h=0.0078125" in text
    assert "stopped at round-off from h=0.00390625" in text and "never 4 consecutive" in text


def test_slopes_that_never_settle_are_refused():
    """A local slope that keeps changing by 0.5 per halving is not a power law: nothing is fitted."""
    def evaluate(k):
        h = 2.0**-k
        return h, h ** (1 + 0.25 * k), ""  # log2 e(h)/e(h/2) grows with k

    with pytest.raises(VerificationError, match=rf"spreading by .* > {DRIFTING}: not settled"):
        find_window(evaluate, "local", "test", max_probes=12)


def test_start_step_uses_stiffness_and_memory():
    """h_0 from 1/||∂f_0||: f_0 = -A theta with ||A|| = 40 gives 1/40 rounded down to 0.02; Adam's rho = 0.999
    scales it by 1 - rho."""
    def field(theta, h):
        return -jnp.array([[40.0, 0.0], [0.0, 1.0]]) @ theta

    h0, why = start_step(field, np.array([1.0, 1.0]), GD(), {})
    assert h0 == 0.02 and "0.025" in why
    h0, why = start_step(field, np.array([1.0, 1.0]), Adam(beta=0.9, rho=0.999, eps=0.01), {})
    assert math.isclose(h0, 2e-5) and "1 - decay = 0.001" in why


# -- compiled once across step sizes ------------------------------------------------------------------------------

def test_iterates_and_flow_are_traced_once_across_step_sizes(monkeypatch):
    """Python side effects run only while JAX traces: the loss runs once for a whole automatic sweep of many
    step sizes and not again for another sweep; the field a handful of times (the power iteration and the
    solver's compilation), not once per step size."""
    import bea.verify._flow as flow

    a, b = sp.symbols("a_traced b_traced")
    calls = {"loss": 0, "field": 0}

    def loss(theta):
        calls["loss"] += 1
        return (0.6 - theta[0] * theta[1]) ** 2 / 2

    lower = flow._lower

    def counted_lower(*args):
        field, manifold = lower(*args)

        def counted(theta, h):
            calls["field"] += 1
            return field(theta, h)

        return counted, manifold

    monkeypatch.setattr(flow, "_lower", counted_lower)
    counted_model = Model("counted", "", np.array([2.8, 3.5]), (loss,), (a, b), ((sp.Rational(3, 5) - a * b) ** 2 / 2,))
    result = local_error(GD(), counted_model, 1)
    assert len(result.probed) >= 6 and calls["loss"] == 1
    field_traces = calls["field"]
    assert field_traces < len(result.probed)
    local_error(GD(), counted_model, 1, step_sizes=[0.003, 0.0015, 0.00075, 0.0004])
    assert calls == {"loss": 1, "field": field_traces}


def test_a_flat_error_floor_is_never_a_window():
    """Errors that stop falling (a noise floor at 1e-8, above round-off) settle at local slope 0: that is not a
    power law in h, so the window is the decreasing part before the floor (review of issue 15)."""

    def evaluate(k):
        h = 0.5 * 2.0**-k
        return h, max(h**4 * (1 + h), 1e-8), ""

    window = find_window(evaluate, "local", "test")
    errors = [window.probes[i][1] for i in window.indices]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert min(errors) > 1e-8
