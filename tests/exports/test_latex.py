"""LaTeX output is structurally sound: balanced braces and environments, known macros only."""

import re

import pytest
import sympy as sp

import bea

a, b, x, y = sp.symbols("a b x y")
KNOWN = {"begin", "end", "frac", "left", "right", "mathcal", "tilde", "log", "exp", "tanh", "sqrt", "mu",
         "rho", "gamma", "epsilon", "operatorname"}


def check_latex(text):
    depth = 0
    for ch in text.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert re.findall(r"\\begin\{(\w+)\}", text) == re.findall(r"\\end\{(\w+)\}", text)[::-1] or sorted(
        re.findall(r"\\begin\{(\w+)\}", text)) == sorted(re.findall(r"\\end\{(\w+)\}", text))
    macros = set(re.findall(r"\\([A-Za-z]+)", text))
    assert macros <= KNOWN, macros - KNOWN


@pytest.mark.parametrize("rule", [bea.rules.GD(), bea.rules.EGR(), bea.rules.SAM(rho=bea.h), bea.rules.RK4], ids=str)
def test_latex_is_well_formed(rule):
    me = bea.modified_equation(rule, 2, loss=sp.log(1 + sp.exp(-a * b * x)) + (y - a) ** 2, params=[a, b])
    text = me.latex()
    check_latex(text)
    assert "h^{2}" in text and r"\mathcal{O}(h^{3})" in text


def test_modified_loss_latex():
    me = bea.modified_equation(bea.rules.GD(), 1, loss=(y - a * b * x) ** 2 / 2, params=[a, b])
    check_latex(me.modified_loss().latex())
