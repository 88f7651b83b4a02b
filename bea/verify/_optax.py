"""One step of the optax optimizer that implements a rule, from a given state: the library's iterates.

GD is `optax.sgd(h)`, heavy ball `optax.sgd(h, momentum=beta)`, RMSProp
`optax.rmsprop(h, decay=rho, eps=eps, eps_in_sqrt=True)`, Adam with eps inside the
root (seed 002) `optax.adam(h, b1=beta, b2=rho, eps=0, eps_root=eps)` and with
eps outside `optax.adam(h, b1=beta, b2=rho, eps=eps)` (DeepMind et al., "The
DeepMind JAX Ecosystem", 2020, github.com/google-deepmind/optax). The rule's
state (on its slow manifold) is written into optax's state; Adam's step count is
set large so that its bias correction is 1, the regime of the modified equation.
"""

from __future__ import annotations

from .._errors import UnsupportedError

__all__ = ["optax_step"]

_LARGE_COUNT = 10**9  # 1 - beta^count == 1 in float64


def _optimizer(rule, h):
    import optax

    from ..rules import GD, Adam, HeavyBall, Nesterov, RMSProp

    if isinstance(rule, GD):
        return optax.sgd(h)
    if isinstance(rule, HeavyBall) and not isinstance(rule, Nesterov):
        return optax.sgd(h, momentum=rule.beta)
    if isinstance(rule, RMSProp):
        return optax.rmsprop(h, decay=rule.rho, eps=rule.eps, eps_in_sqrt=True)
    if isinstance(rule, Adam) and rule.weight_decay == 0:
        if rule.eps_position == "inside":
            return optax.adam(h, b1=rule.beta, b2=rule.rho, eps=0.0, eps_root=rule.eps)
        return optax.adam(h, b1=rule.beta, b2=rule.rho, eps=rule.eps)
    raise UnsupportedError(f"no optax optimizer is mapped to {rule.name}; verify against the rule's own iterates")


def _with_state(optax_state, state):
    """optax's state with its moment buffers replaced by the rule's state (and Adam's count made large)."""
    import jax.numpy as jnp

    def fill(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            fields = node._fields
            if "trace" in fields:  # heavy ball: v
                return node._replace(trace=state[0])
            if "mu" in fields and "nu" in fields:  # Adam: m, nu
                return node._replace(mu=state[0], nu=state[1], count=jnp.asarray(_LARGE_COUNT, dtype=node.count.dtype))
            if "nu" in fields:  # RMSProp
                return node._replace(nu=state[0])
            return node
        if isinstance(node, tuple):
            return tuple(fill(n) for n in node)
        return node

    return fill(optax_state)


def optax_step(numeric_rule, losses, h: float):
    """step(theta, state) -> theta_next by the optax optimizer of `numeric_rule` (floats)."""
    import jax

    optimizer = _optimizer(numeric_rule, h)
    grad = jax.grad(losses[0])

    def step(theta, state):
        opt_state = optimizer.init(theta)
        if state is not None:
            opt_state = _with_state(opt_state, state)
        updates, _ = optimizer.update(grad(theta), opt_state, theta)
        return theta + updates

    return step
