"""Is a step theta + O(h)? The zeroth-order term of an update, measured on its h = 0 fixed point.

A step consistent with a flow leaves the parameters in place at h = 0, whatever its state: both
Phi(theta, s_0, 0) - theta and dPhi/ds at h = 0 must vanish (else the state enters the parameters
at order h^0 and no modified field exists: `InconsistentRuleError`, as for the symbolic rules).
"""

from __future__ import annotations

import numpy as np

from ..._errors import InconsistentRuleError
from ._manifold import Contraction, settle
from ._step import Step

__all__ = ["check_consistent"]

_TOLERANCE = 1e-12  # relative to the parameters' scale: float64 round-off of one update


def check_consistent(step: Step, params, contraction: Contraction | None) -> None:
    """Raise `InconsistentRuleError` naming the leaf and size of the zeroth-order term, if any."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    zero = jnp.asarray(0.0, jnp.float64)
    if contraction is not None:
        state = settle(step, params, contraction, 0)(params, zero)
    else:
        state = step.template(params, zero)
    moved, _ = step.apply(params, state, zero)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    scale = max(1.0, float(jnp.max(jnp.abs(ravel_pytree(params)[0]))) if paths else 1.0)
    gaps = [float(jnp.max(jnp.abs(a - b))) if jnp.size(a) else 0.0
            for a, b in zip(jax.tree_util.tree_leaves(moved), jax.tree_util.tree_leaves(params))]
    if gaps and max(gaps) > _TOLERANCE * scale:
        worst = int(np.argmax(gaps))
        raise InconsistentRuleError(
            f"{step.name} is not theta + O(h): with learning rate h = 0 it still moves the parameters, by up to "
            f"{max(gaps):.3g} (leaf {paths[worst] or 'params'}), so no flow matches its iterates. The zeroth-order term "
            "is the update at learning rate 0: every term of the update must be scaled by the learning rate (a factory "
            "that ignores its argument, a decoupled weight decay or a fixed step added without it)")
    if contraction is None:
        return
    s0, unravel = ravel_pytree(step.state_leaves(state))

    def parameters_from_state(svec):
        return ravel_pytree(step.apply(params, step.with_state_leaves(state, unravel(svec)), zero)[0])[0]

    direction = jnp.asarray(np.random.default_rng(2).normal(size=s0.size))
    sensitivity = float(jnp.linalg.norm(jax.jvp(parameters_from_state, (s0,), (direction,))[1]))
    if sensitivity > _TOLERANCE * float(jnp.linalg.norm(direction)):
        raise InconsistentRuleError(
            f"{step.name} is not theta + O(h): at learning rate h = 0 the new parameters still depend on the "
            f"optimizer's state (sensitivity {sensitivity:.3g}), so the state enters at order h^0 and the parameters "
            "alone follow no flow. Slow-manifold BEA needs updates of the form theta + h * (a function of the state)")
