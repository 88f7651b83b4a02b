"""`local_error` and `global_error` for both kinds of field: a rule's symbolic field (`_sweep`) or a numeric one
(`_taylor_sweep`, `_taylor_global`)."""

from __future__ import annotations

import functools

from . import _sweep, _taylor_global, _taylor_sweep

__all__ = ["global_error", "local_error"]


@functools.wraps(_sweep.local_error)
def local_error(rule, model, order: int, *, step_sizes=None, values: dict | None = None, iterates: str = "rule"):
    from ..results._taylor import TaylorModifiedField

    if isinstance(rule, TaylorModifiedField):  # bea.from_optax: the optimizer's own iterates, on pytrees
        return _taylor_sweep.taylor_local_error(rule, model, order, step_sizes=step_sizes)
    return _sweep.local_error(rule, model, order, step_sizes=step_sizes, values=values, iterates=iterates)


@functools.wraps(_sweep.global_error)
def global_error(rule, model, order: int, *, step_sizes=None, time: float, values: dict | None = None):
    from ..results._taylor import TaylorModifiedField

    if isinstance(rule, TaylorModifiedField):  # N optax steps against the field's flow over `time`
        return _taylor_global.taylor_global_error(rule, model, order, time=time, step_sizes=step_sizes)
    return _sweep.global_error(rule, model, order, step_sizes=step_sizes, time=time, values=values)
