"""`TaylorModifiedField`: the modified field of an optimizer written in JAX, evaluated numerically.

Built by `bea.from_optax` / `bea.from_update` (the numeric engine, `bea.engines.taylor`):
f~(params, h) = f_0 + h f_1 + ... + h^order f_order at a parameter pytree, with the optimizer's
state on its slow manifold. Checks run once per parameter structure, on the caller's parameters
when they are concrete and on a random point of the same shapes under `jax.jit`.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .._errors import BeaError
from ..engines.taylor._step import structure

__all__ = ["NonFiniteFieldError", "NonSmoothStepWarning", "TaylorModifiedField"]

_POINTWISE = ("{name}: the rates of this optimizer's state depend on the parameters, so its slow manifold is solved "
              "at concrete parameters: call the field outside jax.jit (on concrete arrays)")
MANIFOLD_MARGIN = 1  # slow_manifold(): exact one order beyond the field (module docstring of _taylor_sweep)


class NonSmoothStepWarning(UserWarning):
    """A non-differentiable operation (sign, abs, max, a comparison) is on the step's path: the field takes
    JAX's derivative there (zero or one-sided), valid where the argument stays away from the kink."""


@dataclasses.dataclass(frozen=True, eq=False)
class TaylorModifiedField:
    """f~ = f_0 + h f_1 + ... + h^order f_order of a JAX optimizer step, on parameter pytrees.

    Call it as `field(params, h)`; `field.terms(params)` gives [f_0, ..., f_order]. For a step with
    state, `field.slow_manifold(params, h)` is the optimizer state to start iterates from (exact
    through h^(order + 2)) and `field.contraction(params)` its rates. `assumptions` says what was held
    fixed (step counters). Jit-compatible; nothing materializes a Hessian (nested jvps of the step).

    The field is the log of the iterates' shift operator (`bea.engines.taylor._field`), equal to
    seed 000's recursion; tested against the symbolic coordinate-free engine to 1e-10.
    """

    step: object
    order: int
    mode: str = "auto"
    allow_float32: bool = False
    kink_tolerance: float = 1e-12

    def __post_init__(self):
        object.__setattr__(self, "_checked", {})  # per parameter structure: the checks' results
        object.__setattr__(self, "_compiled", {})  # jitted functions of this field, compiled once each

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def assumptions(self) -> tuple[str, ...]:
        """What was held fixed to make the step autonomous: counters, and (once the field has seen
        parameters) float state leaves the update returns unchanged, which are constants, not state."""
        held = self.step.held_constants()
        if not held:
            return self.step.assumptions
        return (*self.step.assumptions, f"state leaves the update returns unchanged held as constants: {', '.join(held)}")

    # -- evaluation -------------------------------------------------------------------------------
    def terms(self, params) -> list:
        """[f_0(params), ..., f_order(params)], each a pytree like params."""
        import jax

        from ..engines.taylor import modified_terms

        contraction = self._prepare(params)
        if not _concrete(params):  # traced by the caller's jit or vmap: no check can raise there
            return modified_terms(self.step, self.order, params, contraction=contraction, mode=self.mode)
        key = ("terms", contraction)
        compiled = self._compiled.get(key)
        if compiled is None:  # the rates are constants of the program; jit retraces per parameter structure
            compiled = self._compiled[key] = jax.jit(
                lambda p: modified_terms(self.step, self.order, p, contraction=contraction, mode=self.mode))
        terms = compiled(params)
        _check_finite(terms, self.name)
        return terms

    def __call__(self, params, h):
        """f_0 + h f_1 + ... + h^order f_order at params (h a float or traced scalar)."""
        import jax

        terms = self.terms(params)
        total = terms[-1]
        for term in reversed(terms[:-1]):  # Horner in h
            total = jax.tree_util.tree_map(lambda t, x: x + h * t, total, term)
        return total

    def truncated(self, order: int) -> TaylorModifiedField:
        """The same field through f_order only (order <= self.order)."""
        if not 0 <= order <= self.order:
            raise BeaError(f"order must be in 0..{self.order}, got {order}")
        lower = dataclasses.replace(self, order=order)
        object.__setattr__(lower, "_checked", self._checked)  # the same step: its checks stand
        return lower

    def contraction(self, params):
        """The state's rates at h = 0 (`bea.engines.taylor.Contraction`), None for a stateless step."""
        return self._prepare(params)

    def slow_manifold(self, params, h, *, margin: int = MANIFOLD_MARGIN, series=None):
        """The optimizer's state on its slow manifold at params: the series s_0 + h s_1 + ... truncated after
        h^(order + margin), every coefficient exact, None for a stateless step. Start
        iterates there to see the field's dynamics without transients. h may be traced (vmap over step
        sizes); pass `series=self.slow_manifold_series(params)` to sum precomputed coefficients."""
        if series is None:
            series = self.slow_manifold_series(params, margin=margin)
        if series is None:
            return None

        coefficients, unravel = series
        total = coefficients[-1]
        for coefficient in reversed(coefficients[:-1]):  # Horner in h
            total = coefficient + h * total
        return self.step.with_state_leaves(self.step.template(params, h), unravel(total))

    def slow_manifold_series(self, params, *, margin: int = MANIFOLD_MARGIN):
        """([s_0, s_1, ..., s_{order+margin}], unravel): the slow manifold's Taylor coefficients in h at params,
        as flat vectors of the state's float leaves (`unravel` gives them back as a list of leaves); None
        for a stateless step."""
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree

        from ..engines.taylor._slow_series import slow_state_series

        contraction = self._prepare(params)
        if contraction is None:
            return None
        order = self.order + margin
        zero = jnp.asarray(0.0, jnp.float64)

        def series(params):  # order by order on the iterates' own series (no Newton tree of 2^order steps)
            template = ravel_pytree(self.step.state_leaves(self.step.template(params, zero)))[0]
            return [template * 0 if s is None else ravel_pytree(s)[0]
                    for s in slow_state_series(self.step, params, contraction, order, mode=self.mode)]

        unravel = ravel_pytree(self.step.state_leaves(self.step.template(params, zero)))[1]
        if not _concrete(params):
            return series(params), unravel
        key = ("slow manifold", margin, contraction, structure(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = jax.jit(series)
        return compiled(params), unravel

    def iterate(self, params, h, steps: int, *, state=None):
        """The optimizer's own iterates params_0..params_steps (a pytree with a leading axis), from its slow
        manifold (or `state`), with the counters held as in `assumptions`."""
        import jax
        import jax.numpy as jnp

        if state is None:
            state = self.slow_manifold(params, h)
        if state is None:
            state = self.step.template(params, h)
        run = self._compiled.get(("iterate", steps))
        if run is None:  # compiled once per number of steps (and structure); h is an argument

            def iterates(params, state, h):
                def body(carry, _):
                    new = self.step.apply(*carry, h)
                    return new, new[0]

                _, path = jax.lax.scan(body, (params, state), None, length=steps)
                return jax.tree_util.tree_map(lambda x0, xs: jnp.concatenate([x0[None], xs]), params, path)

            run = self._compiled[("iterate", steps)] = jax.jit(iterates)
        return run(params, state, jnp.asarray(h, jnp.float64))

    def kinks(self, params) -> tuple:
        """The non-differentiable operations on the step's path at params (`bea.engines.taylor._kinks.Kink`)."""
        return self._kinks_at(params, self._prepare(params))

    # -- checks -----------------------------------------------------------------------------------
    def _state_at_zero(self, params, contraction):
        import jax.numpy as jnp

        from ..engines.taylor import settle

        zero = jnp.asarray(0.0, jnp.float64)
        if contraction is None:
            return self.step.template(params, zero)
        return settle(self.step, params, contraction, 0)(params, zero)

    def _prepare(self, params):
        """Check params and the step once per structure; return the contraction for these params."""
        from ..engines.taylor import contraction as find_contraction
        from ..engines.taylor._consistency import check_consistent
        from ..engines.taylor._manifold import rates_depend_on_point

        key = structure(params)
        cached = self._checked.get(key)
        concrete = _concrete(params)
        if cached is not None and not cached["pointwise"]:
            return cached["contraction"]
        if cached is not None and not concrete:
            raise BeaError(_POINTWISE.format(name=self.name))
        _check_params(params, self.allow_float32, self.name)
        import jax

        # under jax.jit every operation is staged: the checks run eagerly on a probe point of the same shapes
        with jax.ensure_compile_time_eval():
            point = params if concrete else _probe(params)
            found = find_contraction(self.step, point)
            check_consistent(self.step, point, found)
            pointwise = found is not None and rates_depend_on_point(self.step, point, _probe(params, seed=7))
            if pointwise and not concrete:
                raise BeaError(_POINTWISE.format(name=self.name))
            if cached is None:
                self._warn_kinks(point, found, concrete)
        self._checked[key] = {"contraction": found, "pointwise": pointwise}
        return found

    def _kinks_at(self, params, contraction) -> tuple:
        import jax.numpy as jnp

        from ..engines.taylor._kinks import find_kinks

        zero = jnp.asarray(0.0, jnp.float64)
        state = self._state_at_zero(params, contraction)
        return find_kinks(lambda p, s: self.step.apply(p, s, zero)[0], params, state, tolerance=self.kink_tolerance)

    def _warn_kinks(self, params, contraction, concrete):
        kinks = self._kinks_at(params, contraction)
        if not kinks:
            return
        lines = "; ".join(k.describe() for k in kinks[:5]) + (f"; and {len(kinks) - 5} more" if len(kinks) > 5 else "")
        near = [k for k in kinks if k.near] if concrete else []
        warnings.warn(
            f"{self.name}: non-differentiable operation(s) on the step's path: {lines}. The field uses JAX's "
            "derivative there (zero for sign/floor, one-sided for abs/max/clipping): valid where the argument stays "
            "away from the kink" + (f"; {len(near)} of them within round-off of the kink at these parameters: the "
                                     "expansion in h does not hold there" if near else ""),
            NonSmoothStepWarning, stacklevel=4)


class NonFiniteFieldError(BeaError):
    """A term of the numeric field is NaN or infinite at the given parameters."""


def _check_finite(terms, name: str) -> None:
    """Raise `NonFiniteFieldError` naming the first term and the leaves that are not finite."""
    import jax
    import jax.numpy as jnp

    for j, term in enumerate(terms):
        bad = [(jax.tree_util.keystr(path) or "params", int(jnp.sum(~jnp.isfinite(leaf))))
               for path, leaf in jax.tree_util.tree_flatten_with_path(term)[0] if not bool(jnp.all(jnp.isfinite(leaf)))]
        if bad:
            where = ", ".join(f"{path} ({count} components)" for path, count in bad[:5])
            raise NonFiniteFieldError(
                f"{name}: f_{j} is not finite at these parameters, in {where}. A square root, power or division meets "
                "0 on the step's path, where its derivatives are infinite. Adam-type updates with eps outside the root "
                "(optax's default) take sqrt(nu) at nu = 0 wherever a gradient component vanishes identically (the "
                "weights of an input that is always 0): put the epsilon inside the root (optax.adam(lr, eps=0, "
                "eps_root=1e-8)), or leave such parameters out of the pytree")


def _concrete(params) -> bool:
    import jax

    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(params))


def _probe(params, seed: int = 3):
    """Random parameters of the same structure (the point of the checks under jax.jit)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=np.shape(x)), dtype=x.dtype), params)


def _check_params(params, allow_float32: bool, name: str) -> None:
    import jax
    import jax.numpy as jnp

    from ..lowering._x64 import check_floating, require_x64

    if not allow_float32:
        require_x64(f"the modified field of {name}")
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not leaves:
        raise BeaError(f"{name}: params has no arrays; pass the parameter pytree the optimizer updates")
    for path, leaf in leaves:
        check_floating(jnp.result_type(leaf), f"parameter {jax.tree_util.keystr(path) or 'params'}",
                       allow_float32=allow_float32, how="pass allow_float32=True to bea.from_optax")
