"""Global-error slopes of numeric fields (bea.from_optax) against N of the optimizer's own optax steps.

Independent of the field's construction: the iterates are optax's update functions from the slow
manifold, the flow is diffrax's adaptive Dopri8 on the truncated field; the expected slope order + 1
is the theorem (Hairer, Lubich & Wanner, Thm IX.1.3), not a property of the code.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bea

OPTIMIZERS = {
    "gd": optax.sgd,
    "heavy ball": lambda lr: optax.sgd(lr, momentum=0.5),
    "adam": lambda lr: optax.adam(lr, b1=0.5, b2=0.6, eps=0.0, eps_root=1e-2),
}


def _toy():
    """A 3-4-2 tanh network on 10 fixed points: 20 parameters in two leaves."""
    rng = np.random.default_rng(0)
    params = {"w1": jnp.asarray(rng.normal(size=(3, 4)) / 2), "w2": jnp.asarray(rng.normal(size=(4, 2)) / 2)}
    x, y = jnp.asarray(rng.normal(size=(10, 3))), jnp.asarray(rng.normal(size=(10, 2)))

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)

    return loss, params


FAST = [("gd", 2), ("heavy ball", 1), ("adam", 0)]


@pytest.mark.parametrize("name, order", FAST)
def test_global_slopes_against_optax_iterates(name, order):
    loss, params = _toy()
    field = bea.from_optax(OPTIMIZERS[name], order, loss=loss)
    result = bea.verify.global_error(field, params, order, time=0.5)
    assert result.automatic and result.expected == order + 1
    assert result.passes(), (result.slope, result.h)


@pytest.mark.slow
@pytest.mark.parametrize("name, order", [(n, p) for n in OPTIMIZERS for p in range(3) if (n, p) not in FAST])
def test_global_slopes_of_the_other_orders(name, order):
    loss, params = _toy()
    field = bea.from_optax(OPTIMIZERS[name], order, loss=loss)
    result = bea.verify.global_error(field, params, order, time=0.5)
    assert result.passes(), (result.slope, result.h)


def test_explicit_step_sizes_are_adjusted_to_the_time_and_checked():
    loss, params = _toy()
    field = bea.from_optax(OPTIMIZERS["heavy ball"], 1, loss=loss)
    result = bea.verify.global_error(field, params, 1, time=0.4, step_sizes=[0.05, 0.025, 0.0125, 0.00625])
    assert not result.automatic and result.passes(), result.slope
    np.testing.assert_allclose(result.h, [0.4 / 8, 0.4 / 16, 0.4 / 32, 0.4 / 64])
    # the same iterates against f_0's flow alone: one order less
    assert abs(bea.verify.global_error(field, params, 0, time=0.4, step_sizes=result.h).slope - 1) < 0.15
    with pytest.raises(bea.verify.VerificationError, match="above the field's order 1"):
        bea.verify.global_error(field, params, 2, time=0.4)
    with pytest.raises(bea.verify.VerificationError, match="longer than time/4"):
        bea.verify.global_error(field, params, 1, time=0.1, step_sizes=[0.05, 0.01, 0.005])
    with pytest.raises(bea.verify.VerificationError, match="time"):
        bea.verify.global_error(field, params, 1, time=-1.0)
    with pytest.raises(bea.verify.VerificationError, match="pass them to the optax factory"):
        bea.verify.global_error(field, params, 1, time=0.4, values={"beta": 0.5})


def test_a_wrong_field_fails_its_global_slope(without_f1):
    """With f_1 dropped from heavy ball's field, the order-1 global error is O(h), not O(h^2)."""
    loss, params = _toy()
    field = bea.from_optax(OPTIMIZERS["heavy ball"], 1, loss=loss)
    result = bea.verify.global_error(field, params, 1, time=0.4, step_sizes=[0.05, 0.025, 0.0125, 0.00625])
    assert abs(result.slope - 1) < 0.2 and not result.passes()
