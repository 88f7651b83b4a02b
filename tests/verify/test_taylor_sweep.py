"""Local-error slopes of numeric fields (bea.from_optax) against the optimizer's own optax iterates.

The slopes are the independent check here: the iterates are optax's update functions, the flow is
diffrax's Dopri8 on the truncated field, and nothing of the field's construction enters either.
"""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bea


def _toy():
    """A 3-4-1 tanh network on 16 fixed points: a pytree of 21 parameters, no identically zero gradient."""
    rng = np.random.default_rng(5)
    x, y = jnp.asarray(rng.normal(size=(16, 3))), jnp.asarray(rng.normal(size=16))
    params = {"hidden": {"w": jnp.asarray(rng.normal(size=(3, 4)) / 2), "b": jnp.asarray(rng.normal(size=4) / 3)},
              "out": jnp.asarray(rng.normal(size=4) / 2)}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"]) @ p["out"] - y) ** 2) / 2

    return loss, params


@pytest.mark.parametrize("order", [0, 1, 2])
def test_gd_slopes_on_the_digits_mlp(order):
    model = bea.verify.network_model("mlp-digits")
    field = bea.from_optax(optax.sgd, order, loss=model.loss)
    result = bea.verify.local_error(field, model, order)
    assert result.automatic and result.expected == order + 2
    assert result.passes(), (result.slope, result.h)


@pytest.mark.slow
@pytest.mark.parametrize("order", [0, 1])
def test_adam_slopes_from_the_slow_manifold(order):
    loss, params = _toy()
    field = bea.from_optax(lambda lr: optax.adam(lr, b1=0.5, b2=0.8, eps=0.0, eps_root=1e-6), order, loss=loss)
    result = bea.verify.local_error(field, params, order)
    assert "slow manifold" in result.note
    assert result.passes(), (result.slope, result.h)


def test_explicit_step_sizes_and_a_field_of_too_low_order():
    loss, params = _toy()
    field = bea.from_optax(lambda lr: optax.sgd(lr, momentum=0.5), 1, loss=loss)
    result = bea.verify.local_error(field, params, 1, step_sizes=[0.02, 0.01, 0.005, 0.0025])
    assert not result.automatic and result.passes(), result.slope
    # truncating after f_0 instead: one order less
    assert abs(bea.verify.local_error(field, params, 0, step_sizes=[0.02, 0.01, 0.005, 0.0025]).slope - 2) < 0.15
    with pytest.raises(bea.verify.VerificationError, match="above the field's order 1"):
        bea.verify.local_error(field, params, 2)


def test_a_wrong_field_fails_its_slope(without_f1):
    """The sweep can fail: with f_1 dropped from heavy ball's field, the order-1 local error is O(h^2), not O(h^3)."""
    loss, params = _toy()
    field = bea.from_optax(lambda lr: optax.sgd(lr, momentum=0.5), 1, loss=loss)
    result = bea.verify.local_error(field, params, 1, step_sizes=[0.02, 0.01, 0.005, 0.0025])
    assert abs(result.slope - 2) < 0.2 and not result.passes()


SCRIPT = r"""
import json, jax, optax, numpy as np, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import bea
rng = np.random.default_rng(5)
x, y = jnp.asarray(rng.normal(size=(16, 3))), jnp.asarray(rng.normal(size=16))
params = {"w": jnp.asarray(rng.normal(size=(3, 4)) / 2), "out": jnp.asarray(rng.normal(size=4) / 2)}
loss = lambda p: jnp.mean((jnp.tanh(x @ p["w"]) @ p["out"] - y) ** 2) / 2
field = bea.from_optax(lambda lr: optax.sgd(lr, momentum=0.5), 1, loss=loss)
r = bea.verify.local_error(field, params, 1, step_sizes=[0.04, 0.02, 0.01, 0.005, 0.0025])
g = bea.verify.global_error(field, params, 1, time=0.4, step_sizes=[0.05, 0.025, 0.0125])  # rows of (h, N/4)
print(json.dumps({"devices": len(jax.devices()), "errors": list(r.error) + list(g.error)}))
"""


@pytest.mark.slow
def test_the_step_size_grid_is_sharded_over_devices_and_unchanged():
    def run(devices):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    one, four = run(1), run(4)
    assert one["devices"] == 1 and four["devices"] == 4
    np.testing.assert_allclose(four["errors"], one["errors"], rtol=1e-9)


def test_displacements_measure_the_error_far_below_the_round_off_of_the_parameters():
    """GD on E = sum a_i (x_i - c_i)^2 / 2 with |c| ~ 1700: at h <= 1e-4 the local error of the order-1 field is
    below 1e-12 |params| (2e-9), where params_1 - phi_h(params_0) is float64 noise. Measured on displacements
    (optax's update against the flow of d' = f(params_0 + d)) it is the closed form |(1 - h a) - exp(-h a - h^2 a^2/2)|
    |x_0 - c| within 1e-17 (the rounding of params_0 + d in the field's argument, 1e-6 to 1e-4 of the error); a plain
    update, compared on params_1, refuses those step sizes as round-off."""
    a, c = np.array([1.0, 2.0, 3.0]), np.full(3, 1e3)
    offset = np.array([1.0, -0.5, 0.25])

    def loss(p):
        return 0.5 * jnp.sum(jnp.asarray(a) * (p["x"] - jnp.asarray(c)) ** 2)

    params, hs = {"x": jnp.asarray(c + offset)}, [1e-4, 5e-5, 2.5e-5, 1.25e-5]
    result = bea.verify.local_error(bea.from_optax(optax.sgd, 1, loss=loss), params, 1, step_sizes=hs)
    for h, error in zip(hs, result.error):
        x = h * a + (h * a) ** 2 / 2  # (1 - h a) - exp(-x) = x - h a - (exp(-x) - 1 + x), each part exact to round-off
        exact = np.linalg.norm((x - h * a - (np.expm1(-x) + x)) * offset)
        assert abs(error - exact) <= max(1e-6 * exact, 1e-17) and error < 1e-12 * np.linalg.norm(c), (h, error, exact)
    assert result.passes(), result.slope

    def gd(p, grad_fn, h):
        return {"x": p["x"] - h * grad_fn(p)["x"]}

    with pytest.raises(bea.verify.VerificationError, match="round-off"):
        bea.verify.local_error(bea.from_update(gd, 1, loss=loss), params, 1, step_sizes=hs)
