"""The `bea` command line: JSON round trip, formats, one-line errors."""

import json
import subprocess
import sys

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
    assert data["elementwise_terms"][0]["text"] == "-∇E/sqrt(epsilon + ∇E**2)"
    assert "∇‖∇E‖_(1,epsilon)" in data["elementwise_terms"][1]["text"]


def test_jointly_small_radius(capsys):
    code, out, _ = run(capsys, "derive", "sam", "--order", "1", "--small", "rho")
    assert code == 0 and out.splitlines() == ["f_0 = -∇E - rho ∇²E ∇E", "f_1 = -1/2 ∇²E ∇E"]
