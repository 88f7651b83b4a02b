"""The sharded sweep: same numbers as the sequential one, split over 4 emulated CPU devices."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bea
from bea.verify import local_error, local_error_grid, model

SCRIPT = """
import json, jax
jax.config.update("jax_enable_x64", True)
import numpy as np, bea
from bea.verify import local_error_grid, model
errors = local_error_grid(bea.rules.GD(), model("two-param"), 1, step_sizes=np.geomspace(4e-3, 5e-4, 5),
                          initial_points=[[2.8, 3.5], [1.0, 2.0], [0.5, 1.5]])
print(json.dumps({"devices": len(jax.devices()), "errors": errors.tolist()}))
"""


@pytest.mark.slow
def test_grid_over_four_devices_matches_sequential():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    assert data["devices"] == 4
    errors = np.array(data["errors"])
    hs = np.geomspace(4e-3, 5e-4, 5)
    sequential = local_error(bea.rules.GD(), model("two-param"), 1, step_sizes=hs)
    np.testing.assert_allclose(errors[:, 0], sequential.error, rtol=1e-9)
    for column in errors.T:
        assert abs(np.polyfit(np.log(hs), np.log(column), 1)[0] - 3) < 0.15


def test_grid_refuses_hyperparameters_tied_to_h():
    with pytest.raises(bea.UnsupportedError, match="tied to h"):
        local_error_grid(bea.rules.SAM(rho=bea.h / 2), model("quadratic"), 1, step_sizes=[0.01], initial_points=[[1, 0, 0]])


def test_grid_checks_hyperparameters_before_work():
    with pytest.raises(bea.verify.VerificationError, match=r"heavy-ball needs a number for beta"):
        local_error_grid(bea.rules.HeavyBall(), model("quadratic"), 1, step_sizes=[0.01], initial_points=[[1, 0, 0]])
