"""LaTeX output is structurally sound: balanced braces and environments, known macros only."""

import pytest
import sympy as sp
from latex_check import check_latex

import bea

a, b, x, y = sp.symbols("a b x y")


@pytest.mark.parametrize("rule", [bea.rules.GD(), bea.rules.EGR(), bea.rules.SAM(rho=bea.h), bea.rules.RK4], ids=str)
def test_latex_is_well_formed(rule):
    me = bea.modified_equation(rule, 2, loss=sp.log(1 + sp.exp(-a * b * x)) + (y - a) ** 2, params=[a, b])
    text = me.latex()
    check_latex(text)
    assert "h^{2}" in text and r"\mathcal{O}(h^{3})" in text


def test_modified_loss_latex():
    me = bea.modified_equation(bea.rules.GD(), 1, loss=(y - a * b * x) ** 2 / 2, params=[a, b])
    check_latex(me.modified_loss().latex())
