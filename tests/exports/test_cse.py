"""Common-subexpression form of concrete terms (bea/exports/_cse.py, to_dict(cse=True))."""

import json

import sympy as sp

import bea
from bea.exports import to_dict
from bea.exports._cse import common_subexpressions, expand_subexpressions

a, b, c0, x = sp.symbols("a b c0 x")


def test_new_names_avoid_the_expressions_symbols():
    exprs = [sp.exp(a * b + x) * (a * b + x), sp.exp(a * b + x) + c0]
    subexpressions, reduced = common_subexpressions(exprs, taken=["c1"])
    names = [str(name) for name, _ in subexpressions]
    assert names and not {"c0", "c1"} & set(names)
    assert [expand_subexpressions(subexpressions, r) for r in reduced] == exprs


def test_names_are_matched_by_name_not_by_assumptions():
    positive = sp.Symbol("c0", positive=True)
    subexpressions, _ = common_subexpressions([sp.exp(a + positive) ** 2 + sp.exp(a + positive)])
    assert "c0" not in [str(name) for name, _ in subexpressions]


def test_to_dict_cse_is_json_and_round_trips():
    loss = sp.log(1 + sp.exp(-(a * x + b)))
    me = bea.modified_equation(bea.rules.GD(), 2, loss=loss, params=[a, b])
    data = json.loads(json.dumps(to_dict(me, cse=True)))
    assert len(json.dumps(data)) < len(json.dumps(to_dict(me)))
    pairs = [(sp.Symbol(n), sp.sympify(v)) for n, v in data["subexpressions"]]
    for l, term in enumerate(data["terms"]):
        for component, expected in zip(term, me.terms[l]):
            assert sp.simplify(expand_subexpressions(pairs, sp.sympify(component)) - expected) == 0
    assert "subexpressions" not in to_dict(me)
