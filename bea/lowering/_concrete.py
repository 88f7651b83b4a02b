"""Concrete results as JAX functions: generated once from the exact SymPy terms.

`lambdify(..., modules="jax", cse=True)` prints every term with common
subexpressions shared (SymPy's JAX printer); the result is wrapped in
`jax.jit` with the hyperparameters and loss constants as traced arguments, so a
second call with new values does not recompile.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from .._errors import InvalidArrayError, UnknownSymbolError
from ..engines.series._jet import STEP_SIZE
from ._x64 import check_floating, check_scalar, require_x64

__all__ = ["LoweredFunction", "lower_expressions"]


class LoweredFunction:
    """fn(theta, [h,] **symbols) -> array, jit-compiled; `symbols` names the keyword arguments it needs.

    theta must have shape (len(params),), entries in the order of `params`; h and every symbol are
    scalars (jax.vmap over the call for batches). float64 unless lowered with allow_float32=True.
    """

    def __init__(self, fn, symbols: tuple[str, ...], uses_h: bool, shape: str, description: str,
                 params: tuple[str, ...] = (), allow_float32: bool = False):
        self._fn = fn
        self.symbols = symbols
        self.uses_h = uses_h
        #: The parameter names, in the order theta's entries are read.
        self.params = params
        self._allow_float32 = allow_float32
        self._shape = shape
        self.__doc__ = description

    def __call__(self, theta, h=None, **values):
        import jax.numpy as jnp

        if self.uses_h and h is None:
            raise UnknownSymbolError("this function depends on the step size: call it as fn(theta, h, ...)")
        missing = [s for s in self.symbols if s not in values]
        if missing:
            raise UnknownSymbolError(
                f"missing value(s) for {', '.join(missing)}: pass them as keyword arguments, "
                f"e.g. fn(theta, h, {missing[0]}=...)"
            )
        unknown = sorted(set(values) - set(self.symbols))
        if unknown:
            raise UnknownSymbolError(f"unknown keyword(s) {', '.join(unknown)}; this function takes {list(self.symbols)}")
        theta = self._check_theta(theta)
        # Shapes and dtypes are static under jit and vmap: these checks run at trace time.
        args = [check_scalar(values[s], s).astype(theta.dtype) for s in self.symbols]
        step = jnp.asarray(0.0, dtype=theta.dtype) if h is None else check_scalar(h, "h").astype(theta.dtype)
        return self._fn(theta, step, *args)

    def _check_theta(self, theta):
        import jax.numpy as jnp

        try:
            theta = jnp.asarray(theta)
        except TypeError:
            raise InvalidArrayError(f"theta must be an array of {len(self.params)} numbers, got {theta!r}") from None
        check_floating(theta.dtype, "theta", allow_float32=self._allow_float32, how="lower with to_jax(allow_float32=True)")
        expected = (len(self.params),)
        if self.params and theta.shape != expected:
            raise InvalidArrayError(
                f"expected shape {expected} for parameters ({', '.join(self.params)}), got {theta.shape}; "
                "theta holds one entry per parameter, in that order (jax.vmap over the call for a batch)"
            )
        return theta

    def __repr__(self):
        return f"<bea lowered {self._shape}: ({'theta, h' if self.uses_h else 'theta'}, {', '.join(self.symbols)})>"


def lower_expressions(
    expressions: Sequence[sp.Expr], params: Sequence[sp.Symbol], *, scalar: bool, description: str,
    allow_float32: bool = False, shape: tuple[int, ...] | None = None, extra_symbols: Sequence[sp.Symbol] = (),
) -> LoweredFunction:
    """A jitted JAX function of (theta, h, *symbols) evaluating `expressions` (a vector, or one scalar).

    `shape` reshapes the vector (row-major), e.g. (n, n) for a matrix flattened row by row.
    `extra_symbols` are keyword arguments taken even where no expression uses them, so that
    functions lowered together (a drift and a diffusion) take the same keywords.
    """
    import jax
    import jax.numpy as jnp

    if not allow_float32:
        require_x64("lowering a derived term to JAX")
    expressions = [sp.sympify(e) for e in expressions]
    free = set().union(set(extra_symbols), *(e.free_symbols for e in expressions)) - set(params) - {STEP_SIZE}
    symbols = tuple(sorted(free, key=str))
    theta = sp.MatrixSymbol("theta_", len(params), 1)
    substitution = {p: theta[i, 0] for i, p in enumerate(params)}
    body = [e.xreplace(substitution) for e in expressions]
    raw = sp.lambdify([theta, STEP_SIZE, *symbols], body, modules="jax", cse=True)

    def fn(theta_value, h, *values):
        out = raw(theta_value.reshape(-1, 1), h, *values)
        out = [jnp.broadcast_to(jnp.asarray(v, dtype=theta_value.dtype), ()) for v in out]
        return out[0] if scalar else jnp.stack(out) if shape is None else jnp.stack(out).reshape(shape)

    uses_h = any(e.has(STEP_SIZE) for e in expressions)
    kind = "scalar" if scalar else "field" if shape is None else "matrix"
    return LoweredFunction(jax.jit(fn), tuple(s.name for s in symbols), uses_h, kind, description,
                           params=tuple(p.name for p in params), allow_float32=allow_float32)
