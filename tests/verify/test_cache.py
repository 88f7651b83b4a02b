"""Derivations computed once (issue 15): the bounded memoization of bea._cache, and verification's caches of
derived and lowered fields, counted by the engine's entry point being called, not by timing."""

import numpy as np
import pytest
import sympy as sp

import bea
from bea._cache import BoundedCache, freeze, is_immutable, memoize
from bea.rules import GD, HeavyBall
from bea.verify import Model, global_error, local_error


def test_bounded_cache_evicts_the_least_recently_used():
    cache = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 0)
    assert cache.get("b", "gone") == "gone" and cache.misses == 1
    with pytest.raises(ValueError, match="maxsize"):
        BoundedCache(0)


def test_freeze_distinguishes_types_and_refuses_arrays():
    x = sp.Symbol("x")
    assert freeze({x: 1, "y": [1, 2]}) == freeze({"y": [1, 2], x: 1})  # the order of a dict's items does not count
    assert freeze([1, 2]) != freeze((1, 2))  # a list and a tuple argument may be treated differently
    assert freeze(1) != freeze(1.0) != freeze(True)
    assert freeze({x: sp.Rational(1, 2)}) == freeze({x: sp.Rational(1, 2)})
    assert freeze(np.zeros(3)) is None and freeze([{1, 2}, {"a": [np.ones(1)]}]) is None
    assert freeze(GD()) == freeze(GD()) and freeze(HeavyBall(beta=0.5)) != freeze(HeavyBall(beta=0.25))


def test_memoize_calls_once_per_distinct_arguments():
    calls = []

    @memoize(maxsize=2, ignore=("progress",))
    def square(x, *, progress=None, _private=None):
        calls.append(x)
        return (x * x,)

    assert square(3) == (9,) and square(3, progress=True) == (9,) and calls == [3]
    assert square(3.0) == (9.0,) and calls == [3, 3.0]  # 3 and 3.0 are different keys
    square(3, _private=object())  # a private argument set: not cached
    assert calls == [3, 3.0, 3] and square.cache.hits == 1
    square(4)  # evicts 3 (least recently used; 3.0 was used after it)
    square(3)
    assert calls == [3, 3.0, 3, 4, 3]
    square.cache_clear()
    assert len(square.cache) == 0


def test_memoize_bypasses_unhashable_arguments_and_does_not_cache_errors():
    calls = []

    @memoize()
    def total(values):
        calls.append(1)
        if len(values) == 0:
            raise ValueError("empty")
        return float(np.sum(values))

    assert total(np.ones(3)) == 3.0 and total(np.ones(3)) == 3.0 and len(calls) == 2
    for _ in range(2):
        with pytest.raises(ValueError):
            total(())
    assert len(calls) == 4


def test_mutable_results_are_copied_so_a_hit_cannot_be_changed():
    @memoize()
    def fresh(n):
        return {"terms": [0] * n}

    first = fresh(2)
    first["terms"].append("changed by the caller")
    assert fresh(2) == {"terms": [0, 0]}
    second = fresh(2)
    second["terms"][0] = 1
    assert fresh(2) == {"terms": [0, 0]}


def test_bea_results_are_immutable_so_hits_are_shared():
    a, b = sp.symbols("a b")
    concrete = bea.modified_equation(GD(), 1, loss=(a * b - 1) ** 2 / 2, params=[a, b])
    assert is_immutable(concrete) and is_immutable(bea.modified_equation(HeavyBall(), 1))
    assert not is_immutable(sp.Matrix([1])) and not is_immutable(([1],))


def test_memoized_modified_equation_derives_once(monkeypatch):
    """The decorator on bea.modified_equation (as bea/_derive.py can apply it): the engine's entry point runs
    once for repeated calls with equal arguments, again for another order or other values."""
    import bea._derive as derive

    runs = []
    expand = derive.expand_step

    def counting(*args, **kwargs):
        runs.append(1)
        return expand(*args, **kwargs)

    monkeypatch.setattr(derive, "expand_step", counting)
    cached = memoize(ignore=("progress",))(derive.modified_equation)
    u, v, c = sp.symbols("u_memo v_memo c_memo")
    loss = (u * v - c) ** 2 / 2
    first = cached(GD(), 2, loss=loss, params=[u, v], values={c: 1})
    assert cached(GD(), 2, loss=loss, params=(u, v), values={c: 1}, progress=False) is not None
    again = cached(GD(), 2, loss=loss, params=[u, v], values={c: 1})
    assert again is first and len(runs) == 2  # the list and the tuple of params are two keys
    cached(GD(), 1, loss=loss, params=[u, v], values={c: 1})
    cached(GD(), 2, loss=loss, params=[u, v], values={c: 2})
    assert len(runs) == 4
    direct = derive.modified_equation(GD(), 2, loss=loss, params=[u, v], values={c: 1})
    assert direct.terms == first.terms  # the cached result is the derivation's


def test_verification_derives_once_across_sweeps(monkeypatch):
    """A local and a global sweep, automatic and explicit, and the same sweep again derive once: the slow
    manifold's two extra orders cover the field's order, and nothing is derived per step size."""
    import bea.verify._flow as flow

    runs = []
    derive = flow._derive

    def counting(rule, model, order, values):
        runs.append(order)
        return derive(rule, model, order, values)

    monkeypatch.setattr(flow, "_derive", counting)
    p, q = sp.symbols("p_once q_once")
    loss = (sp.Rational(3, 5) - p * q) ** 2 / 2
    quadratic = Model("once", "", np.array([2.8, 3.5]), (lambda t: (0.6 - t[0] * t[1]) ** 2 / 2,), (p, q), (loss,))
    rule = HeavyBall(beta=0.5)
    local_error(rule, quadratic, 1, step_sizes=np.geomspace(0.001, 0.000125, 4))
    local_error(rule, quadratic, 1, step_sizes=np.geomspace(0.001, 0.000125, 4))
    global_error(rule, quadratic, 1, step_sizes=np.geomspace(0.002, 0.00025, 4), time=0.1)
    local_error(rule, quadratic, 1)
    assert runs == [3]
    local_error(rule, quadratic, 0, step_sizes=np.geomspace(0.001, 0.000125, 4))  # order 0 read off order 3
    assert runs == [3]


def test_rules_running_user_functions_are_not_cached():
    """A custom step may read state that changes between calls (a list, a global): its derivations are never
    served from the cache; bea's own rules are (review of issue 15)."""
    x = sp.Symbol("x")
    scale = [1]
    custom = bea.rules.rule(lambda theta, grad, h: theta - h * scale[0] * grad(theta))
    first = bea.modified_equation(custom, 1, loss=x**4 / 4, params=[x])
    scale[0] = 2
    second = bea.modified_equation(custom, 1, loss=x**4 / 4, params=[x])
    assert list(first.terms[0]) == [-x**3] and list(second.terms[0]) == [-2 * x**3]
    hits = bea.modified_equation.cache.hits
    bea.modified_equation(GD(), 2, loss=x**4 / 4 + x, params=[x])
    assert bea.modified_equation(GD(), 2, loss=x**4 / 4 + x, params=[x]) is not None
    assert bea.modified_equation.cache.hits == hits + 1
