"""`bea verify --modifying`: the rule run on its modifying field follows the target flow to O(h^{p+2}),
fitted against the rule's own iterates (bea.verify.modifying_local_error)."""

import json

import pytest
import sympy as sp

from bea.cli import main
from bea.rules import GD, MIDPOINT, HeavyBall, SimultaneousGD
from bea.verify import VerificationError, model, modifying_local_error


@pytest.mark.parametrize("order", [0, 1, 2])
def test_gd_on_its_modifying_field_follows_the_gradient_flow(order):
    result = modifying_local_error(GD(), model("two-param"), order)
    assert result.automatic and result.expected == order + 2 and result.passes(), (result.slope, result.expected)


def test_memory_rule_and_game():
    heavy = modifying_local_error(HeavyBall(), model("two-param"), 1, values={"beta": sp.Rational(1, 2)})
    assert heavy.passes() and "slow manifold" in heavy.note
    game = modifying_local_error(SimultaneousGD(), model("bilinear-game"), 2)
    assert game.expected == 4 and game.passes()


def test_vanishing_modifying_terms_raise_the_expected_slope():
    """The midpoint rule's f^_1 vanishes (its modified field has no h^1 term), so order 0 already gives h^3."""
    result = modifying_local_error(MIDPOINT, model("two-param"), 0)
    assert result.vanishing == (1,) and result.expected == 3 and result.passes()


def test_models_without_sympy_losses_are_refused():
    with pytest.raises(VerificationError, match="has no SymPy losses.*two-param"):
        modifying_local_error(GD(), model("mlp"), 1)


def test_command_line(capsys):
    assert main(["verify", "gd", "--model", "two-param", "--order", "1", "--modifying", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and set(data) >= {"local_error"} and "global_error" not in data
    assert data["local_error"]["expected"] == 3
