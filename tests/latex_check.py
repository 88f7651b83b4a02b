"""A structural LaTeX check shared by the tests (no LaTeX installation needed)."""

import re

KNOWN = {"begin", "end", "frac", "left", "right", "mathcal", "tilde", "log", "exp", "tanh", "sqrt", "mu",
         "rho", "gamma", "epsilon", "operatorname", "nabla", "dot", "theta", "cdot", "phi", "beta"}


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


