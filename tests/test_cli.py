"""The `bea` command line: JSON round trip, formats, one-line errors."""

import json
import subprocess
import sys
import time

import pytest
import sympy as sp

import bea
from bea.cli import main

a, b, x, y = sp.symbols("a b x y")


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_terms_parse_back_to_the_api_result(capsys):
    code, out, _ = run(capsys, "derive", "gd", "--loss", "(y - a*b*x)**2/2", "--params", "a,b", "--order", "3", "--json")
    assert code == 0
    data = json.loads(out)
    me = bea.modified_equation(bea.rules.GD(), 3, loss=(y - a * b * x) ** 2 / 2, params=[a, b])
    assert len(data["terms"]) == 4
    for l, term in enumerate(data["terms"]):
        assert [sp.expand(sp.sympify(s) - e) for s, e in zip(term, me.terms[l])] == [0, 0]


def test_set_values_and_tied_radius(capsys):
    code, out, _ = run(
        capsys, "derive", "sam", "--loss", "(y - a*b*x)**2/2", "--params", "a,b", "--order", "1",
        "--set", "rho=h/2", "--set", "x=1", "--set", "y=0.6", "--json",
    )
    assert code == 0
    data = json.loads(out)
    loss = (sp.Rational(3, 5) - a * b) ** 2 / 2
    me = bea.modified_equation(bea.rules.SAM(rho=bea.h / 2), 1, loss=loss, params=[a, b])
    assert [sp.expand(sp.sympify(s) - e) for s, e in zip(data["terms"][1], me.terms[1])] == [0, 0]
    assert data["symbols"] == []


def test_named_options_and_symbols(capsys):
    code, out, _ = run(
        capsys, "derive", "fd-gr", "--loss", "a**4/4 + a*b", "--params", "a,b", "--order", "1",
        "--set", "kind=backward", "--set", "eps=2*h", "--json",
    )
    assert code == 0
    assert json.loads(out)["symbols"] == ["gamma"]


@pytest.mark.parametrize("fmt", ["--latex", "--text"])
def test_other_formats(capsys, fmt):
    code, out, _ = run(capsys, "derive", "rk4", "--loss", "a**3 + a*b**2", "--params", "a,b", "--order", "4", fmt)
    assert code == 0
    assert ("\\begin{aligned}" in out) == (fmt == "--latex")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--loss", "Abs(a)*b", "--params", "a,b", "--order", "1"], "Abs"),
        (["--loss", "a*b +", "--params", "a,b", "--order", "1"], "cannot parse"),
        (["--loss", "relu(a)*b", "--params", "a,b", "--order", "1"], "not a SymPy function"),
        (["--loss", "a**2", "--params", "a,b", "--order", "1"], "do not appear"),
        (["--loss", "a**2", "--params", "a", "--order", "-2"], "non-negative"),
        (["--loss", "a**2*z", "--params", "a", "--order", "1", "--constants", "x"], "unknown symbol"),
        (["--loss", "a**2", "--params", "a", "--order", "1", "--set", "oops"], "NAME=VALUE"),
        (["--loss", "a**2", "--params", "a", "--order", "1", "--set", "zeta=1"], "neither"),
        (["--loss", "__import__('os')", "--params", "a", "--order", "1"], "not allowed"),
    ],
)
def test_errors_are_one_line(capsys, args, words):
    code, out, err = run(capsys, "derive", "gd", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_console_script_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "bea", "derive", "gd", "--loss", "Max(a, 0)", "--params", "a", "--order", "1"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("bea: error:") and "Traceback" not in proc.stderr


def test_help_lists_rules(capsys):
    with pytest.raises(SystemExit):
        main(["derive", "--help"])
    out = capsys.readouterr().out
    for name in ("gd", "egr", "sam", "fd-gr", "euler", "midpoint", "heun", "rk4"):
        assert name in out


@pytest.mark.parametrize("args", [["derive", "gd", "--order", "1.5"], ["derive", "nope", "--order", "1"], []])
def test_usage_errors_are_one_line(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help" in err


def test_memory_rules_by_name(capsys):
    code, out, _ = run(capsys, "derive", "heavy-ball", "--loss", "a**4/4", "--params", "a", "--order", "1",
                       "--set", "beta=1/2", "--json")
    assert code == 0
    data = json.loads(out)
    assert sp.sympify(data["terms"][0][0]) == -2 * sp.Symbol("a") ** 3  # -grad E/(1 - beta)
    code, out, _ = run(capsys, "derive", "adam", "--loss", "a**2/2", "--params", "a", "--order", "1",
                       "--set", "beta=0.9", "--set", "rho=0.999", "--set", "eps=1e-8", "--set", "eps_position=outside")
    assert code == 0 and "f_1[a]" in out
    code, _, err = run(capsys, "derive", "rmsprop", "--loss", "a**2/2", "--params", "a", "--order", "1", "--set", "rho=1")
    assert code == 2 and "slow manifold" in err


def test_verify_json_and_plot(capsys, tmp_path):
    figure = tmp_path / "slopes.png"
    code, out, _ = run(capsys, "verify", "gd", "--model", "quadratic", "--order", "1", "--h", "0.02,0.01,0.005,0.0025",
                       "--time", "0.2", "--json", "--plot", str(figure))
    assert code == 0
    data = json.loads(out)
    assert abs(data["local_error"]["slope"] - 3) < 0.15 and data["local_error"]["expected"] == 3
    assert abs(data["global_error"]["slope"] - 2) < 0.15
    assert figure.stat().st_size > 0


def test_verify_reports_unusable_sweeps(capsys):
    code, _, err = run(capsys, "verify", "gd", "--model", "two-param", "--order", "1", "--h", "0.5,0.4,0.3", "--local-only")
    assert code == 2 and "usable" in err and "pre-asymptotic" in err


def test_several_losses_coordinate_free(capsys):
    code, out, _ = run(capsys, "derive", "sgd-steps", "--batches", "3", "--order", "1", "--json")
    assert code == 0
    data = json.loads(out)
    alignment = [t for t in data["coordinate_free_terms"][1] if t["text"] == "∇²E₂ ∇E₁"]
    assert alignment == [{"coefficient": "1/6", "level_sequence": [1, 2], "text": "∇²E₂ ∇E₁",
                          "nodes": [{"loss": 2, "player": None}, {"loss": 1, "player": None}]}]
    code, out, _ = run(capsys, "derive", "simultaneous-gd", "--order", "1", "--initial-point")
    assert code == 0 and out.splitlines()[0] == "E~_φ = E_φ + h (1/4 |∇_φE_φ|² + 1/2 ∇_θE_φ·∇_θE_θ(φ₀, θ₀))"
    code, out, _ = run(capsys, "derive", "sgd-steps", "--order", "1", "--initial-point", "--json")
    assert code == 0 and "∇E₂·∇E₁(θ₀)" in json.loads(out)["losses"][0]["text"]


@pytest.mark.parametrize("args, words", [
    (["gd", "--order", "1", "--batches", "2"], "sgd-steps"),
    (["sgd-steps", "--order", "1", "--batches", "3", "--loss", "a", "--loss", "b", "--params", "a,b"], "--batches 3"),
    (["gd", "--order", "1", "--initial-point", "--loss", "a**2", "--params", "a"], "coordinate-free"),
    (["sgd-steps", "--order", "2", "--initial-point"], "order <= 1"),
])
def test_several_losses_bad_input(capsys, args, words):
    code, out, err = run(capsys, "derive", *args)
    assert code == 2 and out == "" and words in err and err.count("\n") == 1


def test_elementwise_rules_coordinate_free(capsys):
    code, out, _ = run(capsys, "derive", "adam", "--order", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["view"] == "coordinate-free, element-wise"
    assert data["elementwise_terms"][0]["text"] == "-∇E/sqrt(eps + ∇E**2)"  # named like --set eps=
    assert "∇‖∇E‖_(1,eps)" in data["elementwise_terms"][1]["text"]


def test_jointly_small_radius(capsys):
    code, out, _ = run(capsys, "derive", "sam", "--order", "1", "--small", "rho")
    assert code == 0 and out.splitlines() == ["f_0 = -∇E - rho ∇²E ∇E", "f_1 = -1/2 ∇²E ∇E"]


# ---------------------------------------------------------------------------------------------------------------
# bea verify (issue 18): inputs checked before any work, exit status against --tolerance, user rules and models,
# composite rules, help text.
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def no_sweep(monkeypatch):
    """Fail the test if `bea verify` starts a sweep: every input error must come before it."""
    import bea.verify._sweep as sweep

    def started(*args, **kwargs):
        raise AssertionError("bea verify started a sweep before checking its inputs")

    monkeypatch.setattr(sweep, "local_error", started)
    monkeypatch.setattr(sweep, "global_error", started)


@pytest.mark.parametrize("args, words", [
    (["gd", "--h", "-1"], "--h: every step size must be a finite number > 0, got -1"),
    (["gd", "--h", "0,0.002,0.001"], "--h: every step size must be a finite number > 0, got 0"),
    (["gd", "--h", "inf,0.002,0.001"], "finite number > 0"),
    (["gd", "--h", "1e-3"], "--h has 1 step size"),
    (["gd", "--h", "1e-3,1e-3,1e-3"], "--h repeats 0.001"),
    (["gd", "--h", "0.004,,0.001"], "empty entry"),
    (["gd", "--time", "-1"], "--time must be a finite time > 0"),
    (["gd", "--h", "0.004,0.002,0.001", "--time", "0.004"], "longer than --time/4"),
    (["gd", "--tolerance", "-1"], "--tolerance must be"),
    (["gd", "--plot", "/nonexistent/dir/x.png"], "--plot /nonexistent/dir/x.png: the directory /nonexistent/dir does not exist"),
    (["gd", "--plot", "slopes.nope"], "--plot slopes.nope: give a file name ending in one of"),
    (["heavy-ball"], "heavy-ball needs a number for beta to be iterated: add --set beta=..."),
    (["adam", "--local-only"], "adam needs a number for beta, eps, rho to be iterated: add --set beta=..."),
    (["rmsprop", "--set", "rho=0.5"], "add --set eps=..."),
    (["heavy-ball", "--set", "beta=0.5", "--set", "x=1"], "--set: heavy-ball has no free hyperparameter x"),
    (["heavy-ball", "--set", "beta=x"], "--set beta=x: verification iterates the rule, so beta must be a number"),
    (["heavy-ball", "--set", "beta=oo"], "--set beta"),
    (["heavy-ball", "--set", "beta=0.5", "--order", "11"], "--order 11 is above 10"),
    (["gd", "--order", "-1"], "--order must be an integer >= 0"),
    (["sgd-steps"], "sgd-steps takes one loss per batch and two-param has one; use --model mlp-2-batches"),
    (["simultaneous-gd"], "two-player game and two-param has no players; use a game model (--model bilinear-game"),
    (["gd", "--model", "bilinear-game"], "verify a game rule on it (simultaneous-gd, alternating-gd"),
    (["gd", "--model", "resnet"], "--model: unknown model 'resnet'"),
    (["adamw"], "unknown rule 'adamw'"),
    (["no_such_module_bea:rule"], "cannot import no_such_module_bea"),
    (["bea.rules:NoSuchRule"], "bea.rules has no attribute 'NoSuchRule'"),
    (["bea.rules:TABLEAUS"], "is dict, not a bea.rules.Rule"),
    (["bea.rules:rule"], "calling it without arguments raised TypeError"),
])
def test_verify_checks_every_input_before_the_sweep(capsys, no_sweep, args, words):
    argv = ["verify", *args]
    if "--model" not in args:
        argv += ["--model", "two-param"]
    if "--order" not in args:
        argv += ["--order", "1"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert words in err


def test_verify_exit_status_follows_the_tolerance(capsys):
    args = ["verify", "gd", "--model", "quadratic", "--order", "1", "--h", "0.02,0.01,0.005", "--local-only"]
    code, out, err = run(capsys, *args)
    assert code == 0 and err == "" and out.startswith("local error: slope 2.99")
    code, out, err = run(capsys, *args, "--tolerance", "0.001", "--json")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("bea: verify failed: local error slope 2.99") and "--tolerance 0.001" in err
    data = json.loads(out)  # the numbers still come out, for the log of the failed CI job
    assert data["passed"] is False and data["local_error"]["passed"] is False and data["tolerance"] == 0.001


def test_verify_prints_step_sizes_as_given(capsys):
    code, out, _ = run(capsys, "verify", "gd", "--model", "quadratic", "--order", "1", "--local-only", "--json",
                       "--h", "2e-2,0.01,5e-3")
    assert code == 0 and '"h": [0.02, 0.01, 0.005]' in out


def test_verify_vanishing_term_passes_with_a_note(capsys):
    """Midpoint has f_1 = 0, so at order 0 the local slope is 3: a pass that says why, not a failure."""
    code, out, err = run(capsys, "verify", "midpoint", "--model", "two-param", "--order", "0", "--local-only",
                         "--h", "0.004,0.002,0.001")
    assert code == 0 and err == ""
    assert "(expected 3)" in out and "f_1 vanishes on this model" in out and "instead of 2" in out


RULES_MODULE = '''
import bea

def _extrapolated(theta, grad, h, c):
    return theta - h * grad(theta - c * h * grad(theta))

extrapolated = bea.rules.rule(_extrapolated, name="extrapolated", c=None)

def momentum():
    return bea.rules.HeavyBall()
'''


def test_verify_user_rule_by_module_attribute(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_rules.py").write_text(RULES_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["--model", "quadratic", "--order", "1", "--h", "0.02,0.01,0.005", "--local-only"]
    code, _, err = run(capsys, "verify", "my_rules:extrapolated", *base)
    assert code == 2 and "extrapolated needs a number for c to be iterated: add --set c=..." in err
    code, out, _ = run(capsys, "verify", "my_rules:extrapolated", *base, "--set", "c=0.5")
    assert code == 0 and out.startswith("local error: slope 2.9")
    # A factory, by path: loaded, called, and its hyperparameter asked for before any sweep.
    code, _, err = run(capsys, "verify", f"{tmp_path / 'my_rules.py'}:momentum", *base)
    assert code == 2 and "heavy-ball needs a number for beta to be iterated: add --set beta=..." in err


def test_verify_help_lists_whole_model_lines(capsys):
    from bea.verify import MODELS

    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()[0] in MODELS}
    assert set(lines) == set(MODELS)
    assert all(line.rstrip().endswith((".", ")")) for line in lines.values()), lines
    assert "16-8-10" in lines["mlp"] and "(JAX only)." in lines["mlp"]
    assert "module:attribute" in out and "--tolerance" in out


@pytest.mark.slow
def test_verify_sgd_steps_on_batches(capsys):
    code, out, err = run(capsys, "verify", "sgd-steps", "--model", "mlp-2-batches", "--order", "1",
                         "--h", "0.4,0.2,0.1,0.05", "--local-only")
    assert code == 0, err
    assert abs(float(out.split("slope ")[1].split()[0]) - 3) < 0.15


# ---------------------------------------------------------------------------------------------------------------
# bea derive hardening (issue 18): bounded parsing, refused inputs, names, --cse, --max-order
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--loss", "a*10**10**10", "--params", "a", "--order", "1"], "exponent 10000000000 is beyond 1000"),
    (["--loss", "a**2*x", "--params", "a", "--order", "1", "--set", "x=9**9**9"], "--set x: cannot parse '9**9**9'"),
    (["--loss", "factorial(10**9)*a", "--params", "a", "--order", "1"], "factorial(...) of a number beyond 1000"),
    (["--loss", "a**(10**8)", "--params", "a", "--order", "1", "--modified-loss"], "exponent 100000000"),
    (["--loss", "a**100000", "--params", "a", "--order", "1", "--modified-loss"], "exponent 100000 is beyond"),
    (["--loss", "(a + x + y)**729", "--params", "a", "--order", "0"], "at most 10000"),
    (["--loss", "(a + x)**600", "--params", "a", "--order", "0", "--set", "x=b1 + b2"], "at most 10000"),
])
def test_huge_inputs_fail_at_once(capsys, args, words):
    start = time.perf_counter()
    code, out, err = run(capsys, "derive", "gd", *args)
    assert time.perf_counter() - start < 0.5
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err


def test_large_exponent_within_the_limit_is_quick(capsys):
    start = time.perf_counter()
    code, out, _ = run(capsys, "derive", "gd", "--loss", "a**1000", "--params", "a", "--order", "1", "--modified-loss")
    assert code == 0 and "E~_1 = 250000*a**1998" in out
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("value", ["inf", "nan", "oo", "-oo", "zoo", "1/0", "I", "1j", "sqrt(-1)"])
def test_non_finite_or_complex_set_values_are_refused(capsys, value):
    code, out, err = run(capsys, "derive", "heavy-ball", "--loss", "a**2", "--params", "a", "--order", "1",
                         "--set", f"beta={value}")
    assert code == 2 and out == "" and err.startswith("bea: error: --set beta: cannot parse")
    assert any(word in err for word in ("finite", "real", "imaginary", "division by zero"))


@pytest.mark.parametrize("loss, words", [
    ("nan*a", "finite"), ("I*a**2", "imaginary unit"), ("sqrt(a**2)", "equals |a|"),
    ("(a**2)**(1/2)*b", "equals |a|"), ("sqrt((a*b - 1)**2)", "equals |a*b - 1|"), ("sqrt(a**2 + b**2)", "a norm"),
])
def test_losses_that_are_not_smooth_and_real_are_refused(capsys, loss, words):
    code, out, err = run(capsys, "derive", "gd", "--loss", loss, "--params", "a,b", "--order", "1")
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err and "-nan" not in err


def test_smoothness_is_checked_with_the_set_values_in(capsys):
    args = ["derive", "gd", "--loss", "sqrt(a**2 + x**2)", "--params", "a", "--order", "1"]
    assert run(capsys, *args, "--set", "x=1/10")[0] == 0
    code, _, err = run(capsys, *args, "--set", "x=0")
    assert code == 2 and "equals |a|" in err


def test_set_value_may_not_contain_a_parameter(capsys):
    code, out, err = run(capsys, "derive", "gd", "--loss", "a**2*x", "--params", "a", "--order", "1", "--set", "x=a")
    assert code == 2 and out == "" and "--set x=a: a value may not contain the parameters (a)" in err
    code, _, err = run(capsys, "derive", "sam", "--loss", "a**2", "--params", "a", "--order", "1", "--set", "rho=a*h")
    assert code == 2 and "--set rho=a*h" in err
    code, _, err = run(capsys, "derive", "gd", "--loss", "a**2", "--params", "a", "--order", "1", "--set", "a=1")
    assert code == 2 and "a is a parameter" in err


def test_decimals_in_powers_are_exact(capsys):
    code, out, _ = run(capsys, "derive", "gd", "--loss", "a**0.5 + a", "--params", "a", "--order", "1", "--json")
    assert code == 0
    decimal, = json.loads(out)["terms"][1]
    _, out, _ = run(capsys, "derive", "gd", "--loss", "sqrt(a) + a", "--params", "a", "--order", "1", "--json")
    assert decimal == json.loads(out)["terms"][1][0] and "." not in decimal
    assert sp.sympify(decimal) == 1 / (16 * a**2) + 1 / (8 * a ** sp.Rational(3, 2))


def test_hyperparameters_are_printed_as_they_are_set(capsys):
    """--set eps= and --small eps: the output says eps too (the rules' default symbol is epsilon)."""
    code, out, _ = run(capsys, "derive", "fd-gr", "--order", "1", "--small", "eps")
    assert code == 0 and "eps*gamma/2 ∇³E[∇E, ∇E]" in out and "epsilon" not in out
    code, out, _ = run(capsys, "derive", "rmsprop", "--loss", "a**2/2", "--params", "a", "--order", "0", "--set", "rho=1/2")
    assert code == 0 and "f_0[a] = -a/sqrt(a**2 + eps)" in out
    code, _, err = run(capsys, "derive", "adam", "--loss", "eps*a**2", "--params", "a", "--order", "0")
    assert code == 2 and "the loss uses eps, which adam uses as a hyperparameter" in err
    code, _, err = run(capsys, "derive", "adam", "--loss", "a**2", "--params", "a", "--order", "0", "--set", "epsilon=1")
    assert code == 2 and "'eps'" in err


def test_modified_loss_text_without_unit_coefficients(capsys):
    code, out, _ = run(capsys, "derive", "gd", "--order", "1", "--modified-loss")
    assert code == 0 and out.splitlines()[2:] == ["E~_0 = E", "E~_1 = (1/4) |∇E|²"]


LOGISTIC = ["--loss", "log(1 + exp(-y*(a*x + b*z + c)))", "--params", "a,b,c", "--order", "2"]


def test_cse_text_is_shorter_and_equal(capsys):
    code, full, _ = run(capsys, "derive", "gd", *LOGISTIC)
    assert code == 0
    code, short, _ = run(capsys, "derive", "gd", *LOGISTIC, "--cse")
    assert code == 0 and len(short) < len(full) / 2
    definitions = {}
    for line in short.splitlines()[1:]:
        name, value = line.split(" = ")
        value = sp.sympify(value).xreplace(definitions)
        if name.startswith("f_"):
            expected = next(l.split(" = ")[1] for l in full.splitlines() if l.startswith(name + " = "))
            assert sp.simplify(value - sp.sympify(expected)) == 0, name
        else:
            definitions[sp.Symbol(name)] = value


def test_cse_json_substitutes_back(capsys):
    code, full, _ = run(capsys, "derive", "gd", *LOGISTIC, "--json")
    code, short, _ = run(capsys, "derive", "gd", *LOGISTIC, "--json", "--cse")
    assert code == 0
    full, short = json.loads(full), json.loads(short)
    assert short["subexpressions"] and len(json.dumps(short)) < len(json.dumps(full))
    pairs = [(sp.Symbol(name), sp.sympify(value)) for name, value in short["subexpressions"]]
    for l, term in enumerate(short["terms"]):
        for component, expected in zip(term, full["terms"][l]):
            value = sp.sympify(component)
            for name, definition in reversed(pairs):
                value = value.xreplace({name: definition})
            assert sp.simplify(value - sp.sympify(expected)) == 0


@pytest.mark.parametrize("args, words", [
    (["gd", "--order", "2", "--cse"], "--cse is for terms on a loss"),
    (["gd", "--loss", "a**4", "--params", "a", "--order", "2", "--cse", "--latex"], "--cse is available with --text and --json"),
])
def test_cse_bad_combinations(capsys, args, words):
    code, out, err = run(capsys, "derive", *args)
    assert code == 2 and out == "" and words in err


def test_max_order_is_a_cli_flag(capsys):
    code, out, err = run(capsys, "derive", "gd", "--loss", "a**2", "--params", "a", "--order", "13")
    assert code == 2 and out == "" and "pass --max-order 13" in err and "max_order=" not in err
    code, _, err = run(capsys, "derive", "gd", "--order", "13")  # the coordinate-free view too
    assert code == 2 and "--max-order" in err and "max_order=" not in err
    code, out, _ = run(capsys, "derive", "gd", "--loss", "a**2", "--params", "a", "--order", "13", "--max-order", "13")
    assert code == 0 and "f_13[a] = " in out


# --- stochastic rules: bea derive sgd / langevin (issue 18) ------------------------------------------------

SGD_LOSSES = ["--loss", "(a*b - 1)**2/2", "--loss", "(a*b + 1)**2/2", "--loss", "a**2*b**2/2 + a", "--params", "a,b"]


def _sme(*args, **kwargs):
    losses = [(a * b - 1) ** 2 / 2, (a * b + 1) ** 2 / 2, a**2 * b**2 / 2 + a]
    return bea.stochastic_modified_equation(*args, losses=losses, params=[a, b], **kwargs)


@pytest.mark.parametrize("flags", [[], ["--stochastic"]])
def test_sgd_derives_its_stochastic_modified_equation(capsys, flags):
    code, out, err = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "1", "--set", "batch_size=2", *flags)
    assert code == 0 and err == ""
    sme = _sme(bea.rules.SGD(batch_size=2), 1)
    lines = out.splitlines()
    assert lines[0].startswith("rule sgd: stochastic modified equation") and lines[1:] == sme.text().splitlines()
    assert "D_1[a,b] = a*b/3" in out  # Sigma / B: 2ab/3 for batch 1


def test_sgd_without_replacement(capsys):
    code, out, _ = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "1", "--set", "batch_size=2",
                       "--set", "replacement=false", "--json")
    assert code == 0
    data = json.loads(out)
    expected = _sme(bea.rules.SGD(batch_size=2, replacement=False), 1)
    assert sp.Matrix(data["diffusion"][1]).applyfunc(sp.sympify) == expected.diffusion[1]
    # the finite-population factor (N - B)/(B (N - 1)) = 1/4 of Sigma, not 1/2
    assert sp.sympify(data["diffusion"][1][0][1]) == a * b / 6


def test_sgd_json_structure(capsys):
    code, out, _ = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "2", "--generator", "--json")
    assert code == 0
    data = json.loads(out)
    sme = _sme(bea.rules.SGD(), 2, allow_generator=True)
    assert data["rule"] == "sgd" and data["params"] == ["a", "b"] and data["order"] == 2
    assert [[sp.sympify(c) for c in b_l] for b_l in data["drift"]] == [list(m) for m in sme.drift]
    assert all(len(d) == 2 and all(len(row) == 2 for row in d) for d in data["diffusion"])
    assert {tuple(t["multi_index"]): sp.sympify(t["coefficient"]) for t in data["generator"][2]} == sme.generator[2]
    assert data["obstruction"]["order"] == 2 and data["obstruction"]["differential_order"] == 3


def test_sgd_generator_text_and_latex(capsys):
    code, out, _ = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "2", "--generator")
    assert code == 0
    assert "no SDE beyond order 1: order 2: (b**2/9 - 1/81)*d_a^3" in out
    assert "L_2 = " in out and out.rstrip().endswith("(a**2/9)*d_a*d_b^2")
    code, out, _ = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "2", "--generator", "--latex")
    assert code == 0 and r"\tilde b" in out and r"\partial_{a}^{3}" in out and "% no SDE beyond order 1" in out
    code, out, _ = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "1", "--latex")
    assert code == 0 and r"\tilde D" in out and "L_{" not in out and "%" not in out


def test_langevin_with_a_temperature(capsys):
    code, out, _ = run(capsys, "derive", "langevin", "--loss", "u**4/4", "--params", "u", "--order", "1",
                       "--set", "temperature=1/10")
    assert code == 0
    assert out.splitlines()[1:] == ["b_0[u] = -u**3", "D_0[u,u] = 1/5", "b_1[u] = -3*u**5/2 + 3*u/10",
                                    "D_1[u,u] = 3*u**2/5"]
    code, out, _ = run(capsys, "derive", "langevin", "--loss", "u**4/4", "--params", "u", "--order", "1", "--json")
    assert code == 0 and json.loads(out)["diffusion"][0] == [["2*temperature"]]


def test_sgd_coordinate_free_on_the_command_line(capsys):
    """No --loss, no --params: Li-Tai-E's SME in any dimension, the same text, JSON and LaTeX as in Python."""
    sme = bea.stochastic_modified_equation(bea.rules.SGD(batch_size=2), 2, allow_generator=True)
    code, out, _ = run(capsys, "derive", "sgd", "--order", "2", "--generator", "--set", "batch_size=2")
    assert code == 0
    lines = out.splitlines()
    assert "coordinate-free" in lines[0] and "\n".join(lines[1:]) == sme.text() + "\n" + sme.generator_text()
    assert "D_1 = 1/2 Σ" in lines and "b_1 = -1/2 ∇²E ∇E" in lines
    code, out, _ = run(capsys, "derive", "sgd", "--order", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["view"].endswith("coordinate-free") and data["diffusion"][1][0]["text"] == "Σ"
    code, out, _ = run(capsys, "derive", "langevin", "--order", "1", "--set", "temperature=1/2", "--latex")
    assert code == 0 and r"\nabla" in out
    code, _, err = run(capsys, "derive", "sgd", "--order", "2")
    assert code == 2 and "κ₃ : ∇^3" in err and "use --order 1, or pass --generator" in err


def test_new_stochastic_rules_on_the_command_line(capsys):
    """sgd-momentum, sam-sgd, ...: the CLI derives what Python derives (text options parsed as booleans)."""
    a = sp.Symbol("a")
    losses = [(a - 1) ** 2 / 2, (a + 1) ** 2 / 2]
    cases = [("sgd-momentum", ["--set", "friction=3/2"], bea.rules.SGDMomentum(friction=sp.Rational(3, 2)), 1),
             ("sam-sgd", ["--set", "independent=true", "--set", "rho=1/10"],
              bea.rules.SAMSGD(independent=True, rho=sp.Rational(1, 10)), 1)]
    for name, flags, rule, order in cases:
        code, out, _ = run(capsys, "derive", name, "--loss", "(a-1)**2/2", "--loss", "(a+1)**2/2", "--params", "a",
                           "--order", str(order), *flags)
        sme = bea.stochastic_modified_equation(rule, order, losses=losses, params=[a])
        assert code == 0 and out.splitlines()[1:] == sme.text().splitlines(), name


def test_stochastic_obstruction_names_the_flags(capsys):
    code, out, err = run(capsys, "derive", "sgd", *SGD_LOSSES, "--order", "2")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "use --order 1, or pass --generator" in err and "allow_generator" not in err


@pytest.mark.parametrize("args, words", [
    (["gd", "--loss", "a**2", "--params", "a", "--order", "1", "--stochastic"], "gd has no randomness: use sgd or langevin"),
    (["gd", "--order", "1", "--stochastic"], "gd has no randomness"),
    (["gd", "--loss", "a**2", "--params", "a", "--order", "1", "--generator"], "--generator is for stochastic rules"),
    (["sgd-momentum", "--order", "1"], "sgd-momentum has no coordinate-free stochastic modified equation"),
    (["sgd", "--order", "1", "--constants", "x"], "the coordinate-free view has no loss constants"),
    (["sgd", "--params", "a", "--order", "1"], "or neither for the coordinate-free view"),
    (["langevin", "--loss", "a**2", "--order", "1"], "give --loss (once) and --params"),
    (["sgd", "--order", "1", "--trees"], "no --trees view"),
    (["sgd", *SGD_LOSSES, "--order", "1", "--modified-loss"], "no --modified-loss view"),
    (["sgd", *SGD_LOSSES, "--order", "1", "--cse"], "no --cse view"),
    (["sgd", "--order", "1", "--initial-point"], "no --initial-point view"),
    (["langevin", "--loss", "a", "--loss", "b", "--params", "a,b", "--order", "1"], "langevin takes one --loss"),
    (["sgd", *SGD_LOSSES, "--order", "1", "--set", "batch_size=4", "--set", "replacement=false"],
     "drop --set replacement=false"),
    (["sgd", *SGD_LOSSES, "--order", "1", "--set", "replacement=no"], "replacement must be one of true, false"),
    (["sgd", *SGD_LOSSES, "--order", "7"], "pass --max-order 7"),
    (["langevin", "--loss", "temperature*u**2", "--params", "u", "--order", "1"], "uses temperature"),
    (["sgd", "--loss", "a*y", "--params", "a", "--order", "1", "--constants", "x"], "unknown symbol(s) y"),
])
def test_stochastic_errors_are_one_line(capsys, args, words):
    code, out, err = run(capsys, "derive", *args)
    assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1


def test_verify_refuses_stochastic_rules(capsys):
    code, out, err = run(capsys, "verify", "sgd", "--model", "two-param", "--order", "1")
    assert code == 2 and out == "" and "sgd is stochastic" in err and "bea derive sgd" in err
