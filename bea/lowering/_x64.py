"""float64 in JAX: verification work needs it, and JAX disables it by default."""

from __future__ import annotations

from .._errors import BeaError

__all__ = ["Float64DisabledError", "require_x64"]


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
