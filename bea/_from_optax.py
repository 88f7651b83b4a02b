"""`from_optax` and `from_update`: the modified field of an optimizer as people write it, numerically.

The sibling of `_derive` for the numeric engine (`bea.engines.taylor`): no rule language, no
SymPy. The optimizer is `factory(learning_rate) -> optax.GradientTransformation` or a plain JAX
update; the result is a `TaylorModifiedField` evaluated at parameter pytrees by nested jvps in h.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

from ._errors import InvalidOrderError, InvalidRuleError
from .engines.taylor import optax_step, update_step
from .engines.taylor._series import MODES
from .results._taylor import TaylorModifiedField

__all__ = ["DEFAULT_COUNT", "MAX_TAYLOR_ORDER", "from_optax", "from_update"]

#: Step count the counters are held at: bias corrections 1 - b^count are 1 in float64 for b <= 0.9999.
DEFAULT_COUNT = 10**6
#: Orders above this cost 2^(order+1) steps per evaluation (nested jvps) and are refused.
MAX_TAYLOR_ORDER = 5


def _check_common(order, loss, mode, what):
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or not 0 <= order <= MAX_TAYLOR_ORDER:
        raise InvalidOrderError(f"order must be an integer in 0..{MAX_TAYLOR_ORDER} for {what}, got {order!r} (the "
                                "numeric engine differentiates order + 1 steps order + 1 times: the cost doubles per order)")
    if not callable(loss):
        raise InvalidRuleError(f"loss must be a JAX function loss(params) -> scalar, got {loss!r}")
    if mode not in MODES:
        raise InvalidRuleError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def from_optax(factory: Callable, order: int, *, loss: Callable, count: int = DEFAULT_COUNT, mode: str = "auto",
               allow_float32: bool = False, name: str | None = None) -> TaylorModifiedField:
    """The modified field f_0 + h f_1 + ... + h^order f_order of an optax optimizer on `loss`.

    `factory(learning_rate) -> optax.GradientTransformation` (e.g. `lambda lr: optax.adam(lr, b1=0.9)`,
    a chain with weight decay, clipping or a schedule); the learning rate is the step size h. Stateful
    optimizers are described on their slow manifold (the state's moving averages settled, Kovachki &
    Stuart, JMLR 2021, arXiv:1906.04285), with step counters held at `count` (bias corrections at
    their large-n limit by default; a schedule is evaluated at that step).

    Returns a `TaylorModifiedField`: `field(params, h)`, `field.terms(params)`,
    `field.slow_manifold(params, h)`. Errors say what is wrong: a factory that does not take a
    learning rate, an update that is not params + O(h), a state that does not contract, float32
    parameters without `allow_float32`; non-differentiable operations on the path warn
    (`NonSmoothStepWarning`) with the operation, its source line and the parameters it feeds.
    """
    _check_common(order, loss, mode, "bea.from_optax")
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise InvalidRuleError(f"count must be a non-negative integer (the step the counters are held at), got {count!r}")
    label = name or _factory_name(factory)
    _check_factory(factory, label)
    step = optax_step(factory, loss, count=int(count), name=label)
    return TaylorModifiedField(step, int(order), mode=mode, allow_float32=allow_float32)


def from_update(update: Callable, order: int, *, loss: Callable, init: Callable | None = None, mode: str = "auto",
                allow_float32: bool = False, name: str | None = None) -> TaylorModifiedField:
    """The modified field of a plain JAX update through h^order.

    Stateless: `update(params, grad_fn, h) -> params`. With state: `init(params) -> state` and
    `update(params, state, grad_fn, h) -> (params, state)`, the state described on its slow
    manifold. `grad_fn = jax.grad(loss)`. See `from_optax` for the result and the checks.
    """
    _check_common(order, loss, mode, "bea.from_update")
    if not callable(update):
        raise InvalidRuleError(f"update must be a function, got {update!r}")
    if init is not None and not callable(init):
        raise InvalidRuleError(f"init must be a function init(params) -> state, got {init!r}")
    label = name or getattr(update, "__name__", "update")
    return TaylorModifiedField(update_step(update, loss, init=init, name=label), int(order), mode=mode,
                               allow_float32=allow_float32)


def _factory_name(factory) -> str:
    name = getattr(factory, "__name__", None)
    return name if name and name != "<lambda>" else "optax optimizer"


def _check_factory(factory, label) -> None:
    """factory(learning_rate) must build a GradientTransformation (an object with init and update)."""
    if not callable(factory):
        raise InvalidRuleError(f"factory must be a function learning_rate -> optax.GradientTransformation, got "
                               f"{factory!r}")
    try:
        inspect.signature(factory).bind(0.1)
    except TypeError:
        raise InvalidRuleError(
            f"{label}: factory must take the learning rate as its one argument, factory(learning_rate) -> "
            "optax.GradientTransformation: write e.g. `lambda lr: optax.adam(lr, b1=0.9)` (it takes no argument, or "
            "more than one without defaults)") from None
    except ValueError:  # a builtin without a signature: try it below
        pass
    try:
        built = factory(0.1)
    except TypeError as exc:
        raise InvalidRuleError(f"{label}: factory(0.1) failed ({exc}); factory must take the learning rate as its one "
                               "argument and return an optax.GradientTransformation") from None
    if not (callable(getattr(built, "init", None)) and callable(getattr(built, "update", None))):
        raise InvalidRuleError(f"{label}: factory(learning_rate) returned {type(built).__name__}, not an optax "
                               "GradientTransformation (an object with init and update)")
