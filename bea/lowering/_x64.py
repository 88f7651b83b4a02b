"""float64 in JAX (verification work needs it, and JAX disables it by default), and the checks every
lowered callable makes on what it is given: floating dtypes, float64 unless asked otherwise, scalars.

The checks read only shapes and dtypes, which are static under `jax.jit` and `jax.vmap` (vmap
shows the function one example at a time), so they run once, at trace time.
"""

from __future__ import annotations

from .._errors import BeaError, InvalidArrayError

__all__ = ["Float64DisabledError", "check_floating", "check_scalar", "require_x64"]


class Float64DisabledError(BeaError):
    """JAX runs in float32; errors of order h^4 and below drown in round-off."""


def require_x64(what: str) -> None:
    """Raise unless JAX's 64-bit mode is on."""
    import jax

    if not jax.config.jax_enable_x64:
        raise Float64DisabledError(
            f"{what} needs float64, but JAX is in 32-bit mode. Call "
            "jax.config.update('jax_enable_x64', True) before creating arrays (or set JAX_ENABLE_X64=1)."
        )


def check_floating(dtype, what: str, *, allow_float32: bool, how: str = "allow_float32=True") -> None:
    """Raise `InvalidArrayError` unless `dtype` is a real floating dtype, of 64 bits unless `allow_float32`.

    Lower precision is refused rather than cast: silently computing (or silently upcasting) in
    another precision than the caller's arrays is a wrong number without a word. `how` names the
    keyword that lets float32 through.
    """
    import jax.numpy as jnp

    if not jnp.issubdtype(dtype, jnp.floating):
        raise InvalidArrayError(
            f"{what} must be a floating-point array, got dtype {dtype}; integer arrays have no gradient "
            "(cast with jnp.asarray(x, jnp.float64))"
        )
    if not allow_float32 and jnp.finfo(dtype).bits < 64:
        raise InvalidArrayError(
            f"{what} has dtype {dtype}, but this runs in float64 (round-off in {dtype} drowns errors of "
            f"order h^4 and below): pass float64 arrays (jnp.asarray(x, jnp.float64)), or {how} to compute in {dtype}"
        )


def check_scalar(value, name: str):
    """`value` as a JAX array, raising `InvalidArrayError` unless it is one real number (h, a hyperparameter)."""
    import jax.numpy as jnp

    try:
        array = jnp.asarray(value)
    except TypeError:
        raise InvalidArrayError(f"{name} must be a number, got {value!r}") from None
    if array.shape != ():
        raise InvalidArrayError(
            f"{name} must be a scalar, got shape {array.shape}; for several values, jax.vmap over the call"
        )
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise InvalidArrayError(f"{name} must be a real number, got dtype {array.dtype}")
    return array
