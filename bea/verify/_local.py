"""`local_error` for both kinds of field: a rule's symbolic field (`_sweep`) or a numeric one (`_taylor_sweep`)."""

from __future__ import annotations

import functools

from . import _sweep, _taylor_sweep

__all__ = ["local_error"]


@functools.wraps(_sweep.local_error)
def local_error(rule, model, order: int, *, step_sizes=None, values: dict | None = None, iterates: str = "rule"):
    from ..results._taylor import TaylorModifiedField

    if isinstance(rule, TaylorModifiedField):  # bea.from_optax: the optimizer's own iterates, on pytrees
        return _taylor_sweep.taylor_local_error(rule, model, order, step_sizes=step_sizes)
    return _sweep.local_error(rule, model, order, step_sizes=step_sizes, values=values, iterates=iterates)
