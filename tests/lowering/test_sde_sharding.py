"""SME sample paths run on every JAX device: the path keys are sharded, the paths are the same."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, jax, jax.numpy as jnp, sympy as sp
jax.config.update("jax_enable_x64", True)
import bea
u, lam, T = sp.symbols("u lam T", positive=True)
sme = bea.stochastic_modified_equation(bea.rules.Langevin(temperature=T), 1, loss=lam * u**2 / 2, params=[u])
paths = sme.sample_paths([1.0], 0.1, [0.0, 0.5], key=jax.random.PRNGKey(3), n_paths=8, lam=1.5, T=0.2)
def loss(params, example):
    return (params["w"] * example[0] - example[1]) ** 2 / 2
data = jnp.array([[1.0, 0.5], [0.5, -0.2], [-1.0, 0.3], [2.0, 1.0]])
sde = bea.sgd_sde(loss, data, batch_size=1)
w = sde.sample_paths({"w": jnp.array(0.3)}, 0.1, [0.0, 0.4], key=jax.random.PRNGKey(4), n_paths=8)["w"]
print(json.dumps({"devices": len(jax.devices()), "langevin": paths[:, -1, 0].tolist(), "sgd": w[:, -1].tolist(),
                  "spread": len(paths.sharding.device_set)}))
"""


def _run(devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_sample_paths_are_sharded_over_devices_and_unchanged():
    one, four = _run(1), _run(4)
    assert one["devices"] == 1 and four["devices"] == 4
    assert four["spread"] == 4  # the vmapped solve ran on every device
    for name in ("langevin", "sgd"):
        assert len(one[name]) == 8 and max(abs(a - b) for a, b in zip(one[name], four[name])) < 1e-12, name
