"""`local_error` and `global_error` for both kinds of field: a rule's symbolic field (`_sweep`) or a numeric one
(`_taylor_sweep`, `_taylor_global`)."""

from __future__ import annotations

from . import _sweep, _taylor_global, _taylor_sweep
from ._checks import VerificationError

__all__ = ["global_error", "local_error"]

_NUMERIC = """
    `rule` may also be a numeric field from `bea.from_optax` / `bea.from_update`, with `model` a
    `NetworkModel` or a parameter pytree: {what}, the step sizes batched and sharded over the devices
    (`bea.verify.{module}`). `values` and `iterates` are for symbolic rules only.
"""


def local_error(rule, model, order: int, *, step_sizes=None, values: dict | None = None, iterates: str = "rule"):
    if _numeric(rule, values, iterates, "local_error"):  # bea.from_optax: the optimizer's own iterates, on pytrees
        return _taylor_sweep.taylor_local_error(rule, model, order, step_sizes=step_sizes)
    return _sweep.local_error(rule, model, order, step_sizes=step_sizes, values=values, iterates=iterates)


def global_error(rule, model, order: int, *, step_sizes=None, time: float, values: dict | None = None):
    if _numeric(rule, values, "rule", "global_error"):  # N optax steps against the field's flow over `time`
        return _taylor_global.taylor_global_error(rule, model, order, time=time, step_sizes=step_sizes)
    return _sweep.global_error(rule, model, order, step_sizes=step_sizes, time=time, values=values)


local_error.__doc__ = _sweep.local_error.__doc__ + _NUMERIC.format(
    what="the optimizer's own step from its slow manifold against the field's flow", module="_taylor_sweep")
global_error.__doc__ = _sweep.global_error.__doc__ + _NUMERIC.format(
    what="N of the optimizer's own steps from its slow manifold against the field's flow over `time`",
    module="_taylor_global")


def _numeric(rule, values, iterates, kind) -> bool:
    from ..results._taylor import TaylorModifiedField

    if not isinstance(rule, TaylorModifiedField):
        return False
    if values:
        raise VerificationError(f"{kind}: values= sets a symbolic rule's parameters; a numeric field from "
                                "bea.from_optax has none: pass them to the optax factory instead")
    if iterates != "rule":
        raise VerificationError(f"{kind}: iterates={iterates!r} is for symbolic rules; a numeric field is always "
                                "compared with its own optimizer's iterates")
    return True
