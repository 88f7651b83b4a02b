"""Progress of long derivations (issue 18): a tqdm bar on stderr and a warning before minutes of work."""

import time
import warnings

import pytest
import sympy as sp

import bea
from bea import _progress
from bea.rules import GD, HeavyBall

a, b, x, y = sp.symbols("a b x y")
TWO_PARAM = (y - a * b * x) ** 2 / 2


def test_progress_bar_on_request(capsys):
    rule = HeavyBall()
    me = bea.modified_equation(rule, 1, loss=TWO_PARAM, params=[a, b], progress=True)
    err = capsys.readouterr().err
    assert "heavy-ball to order 1 on 2 parameters" in err and "slow-manifold sweep" in err
    # the result keeps the rule itself, not the copy whose updates ticked the bar
    assert me.rule is rule and "update" not in vars(me.rule)
    cf = bea.modified_equation(rule, 1, progress=True)
    assert "coordinate-free" in capsys.readouterr().err
    assert cf.rule is rule


def test_no_bar_unless_asked_or_on_a_terminal(capsys, monkeypatch):
    bea.modified_equation(HeavyBall(), 1, loss=TWO_PARAM, params=[a, b], progress=False)
    bea.modified_equation(HeavyBall(), 1, loss=TWO_PARAM, params=[a, b])  # pytest's stderr is no terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "_stderr_is_terminal", lambda: True)
    bea.modified_equation(GD(), 1, loss=TWO_PARAM, params=[a, b])  # on a terminal, but done within a second
    assert capsys.readouterr().err == ""


# What takes minutes since issue 15's engines (heavy ball at order 6 took minutes before, now a second).
@pytest.mark.parametrize("call", [
    lambda: bea.modified_equation(HeavyBall(), 10, loss=TWO_PARAM, params=[a, b]),
    lambda: bea.modified_equation(bea.rules.Adam(), 4, loss=TWO_PARAM, params=[a, b]),
    lambda: bea.modified_equation(HeavyBall(), 10),
    lambda: bea.modified_equation(bea.rules.Adam(), 4),
    lambda: bea.modified_equation(GD(), 7, loss=sum(sp.symbols("q0:8")) ** 4, params=list(sp.symbols("q0:8"))),
])
def test_warning_before_minutes_of_work(call):
    """Raised as an error here, the warning comes before any of the work: the call returns at once."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", bea.SlowDerivationWarning)
        with pytest.raises(bea.SlowDerivationWarning, match="will likely take .*progress=True"):
            call()
    assert time.perf_counter() - start < 2


def test_no_warning_for_quick_derivations():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bea.SlowDerivationWarning)
        bea.modified_equation(HeavyBall(), 2, loss=TWO_PARAM, params=[a, b])
        bea.modified_equation(GD(), 6, loss=TWO_PARAM, params=[a, b])
        bea.modified_equation(HeavyBall(), 2)
        bea.modified_equation(GD(), 8)


def test_estimates_grow_with_order_and_parameters():
    for rule in (GD(), HeavyBall(), bea.rules.Adam()):
        concrete = [_progress.estimated_seconds(rule, p, 2) for p in range(1, 8)]
        assert concrete == sorted(concrete)
        assert _progress.estimated_seconds(rule, 3, 6) > _progress.estimated_seconds(rule, 3, 3)
    assert _progress.estimated_seconds(GD(), 5, None) is None  # trees: fast through the safe orders


def test_not_a_rule():
    with pytest.raises(bea.InvalidRuleError, match="wrap a step function with bea.rules.rule"):
        bea.modified_equation(lambda theta, grad, h: theta - h * grad(theta), 1, loss=TWO_PARAM, params=[a, b])
    with pytest.raises(bea.InvalidRuleError, match="bea.rules rule"):
        bea.modified_equation("gd", 1)
