"""The global weak error of a stochastic modified equation by Monte Carlo, on nonlinear finite sums.

For each step size h: `paths` runs of the rule (n = T/h steps, jitted, `jax.vmap`ped over paths whose
keys are sharded over all JAX devices with `jax.sharding`) and `paths` sample paths of the SME
truncated after h^p (`StochasticModifiedEquation.sample_paths`, diffrax). For each test function
phi the estimate |mean phi(theta_n) - mean phi(X_T)| has the standard error
se = sqrt(var_rule/paths + var_sde/paths) and the 95% half-width 1.96 se. A point whose half-width is
not small against the difference (above `max_noise` times it) is dominated by Monte Carlo noise:
it is flagged and never fitted. The slope over the rest (expected p + 1; Li, Tai & E, JMLR 20
(2019), arXiv:1811.01558, Thm 3) gets a 95% interval by the delta method, the log error of each
point having standard deviation se/error. The SME's solver (Euler–Maruyama, weak order 1, steps
of at most min(h, h^(p+1))/4) adds an error of the same order h^(p+1): it changes the constant, not
the slope.

Two sources of rule and SME, one estimator: a SymPy `FiniteSumModel` (the SME derived exactly; SGD
and Langevin) and a `JaxFiniteSumModel` (minibatch SGD iterated on a JAX model, its SME from
`bea.sgd_sde`; for transcendental losses where the exact engine is too slow).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..engines.series._jet import STEP_SIZE
from ..lowering._sde import path_keys
from ._checks import VerificationError, check_step_sizes, check_time
from ._jax_models import JAX_MODELS, JaxFiniteSumModel, jax_model
from ._weak_result import WeakErrorResult, derive, fit, prepare, resolve_model, resolve_test_functions

__all__ = ["monte_carlo_weak_error"]

#: A point is fitted only when its 95% half-width is at most this fraction of the estimated error.
MAX_NOISE = 1 / 3
DEFAULT_PATHS = 4096
_Z95 = 1.959963984540054
_SWEEP = 4


def monte_carlo_weak_error(rule, order: int, *, model="two-param-sum", step_sizes=None, time=None,
                           paths: int = DEFAULT_PATHS, key=0, test_functions=None, values=None,
                           max_noise: float = MAX_NOISE) -> WeakErrorResult:
    """|mean phi(theta_n) - mean phi(X_T)| at T = n h over many paths; slopes expected order + 1.

    Two kinds of model. A `bea.verify.FiniteSumModel` (SymPy per-example losses): the SME is derived
    exactly (`bea.stochastic_modified_equation`), for SGD and Langevin. A `bea.verify.JaxFiniteSumModel`
    (a JAX `loss(params, example)` on data; "logistic-sgd", "mlp-digits-sgd"): SGD only, order 0 or
    1, its SME being `bea.sgd_sde` (Li, Tai & E's, drift by autodiff, noise low-rank in example
    space; no SymPy) and its iterates computed directly (per-example gradients by
    `jax.vmap(jax.grad(loss))` on the drawn batch). Both share the estimates, flags and fits.

    Args:
        rule: `bea.rules.SGD(batch_size=B, replacement=...)` or `bea.rules.Langevin(temperature=T)`
            (on a JAX model: SGD only).
        order: p, the SME truncated after h^p (on a JAX model 0 or 1; from 2 on `sgd_sde` raises
            `NoStochasticModifiedEquationError`: no SDE matches SGD there).
        model: a `bea.verify.FiniteSumModel` or `bea.verify.JaxFiniteSumModel`, or a name
            ("two-param-sum", "linear-regression", "logistic-sgd", "mlp-digits-sgd").
        step_sizes, time: each h must divide `time`; default h = 2^-m, ..., 2^-(m+3) and
            time = 16 * 2^-m, with 2^-m the largest power of 2 at most 1/(4 max(1, Lambda)) where
            Lambda is, on a SymPy model, the largest per-example Hessian norm at theta0 and, on a JAX
            model, the largest |eigenvalue| of the Hessian of E at params0 (power iteration on
            Hessian-vector products): steps well inside GD's stability bound 2/Lambda, yet large,
            so that the weak error stands above the noise.
        paths: Monte Carlo paths per side and step size (rounded up to a multiple of the device count).
        key: a JAX PRNG key or an int seed.
        test_functions: SymPy expressions in the params (default coordinates, quadratic monomials,
            E); on a JAX model they are the model's (`JaxFiniteSumModel.test_functions`): pass
            `test_functions=` to the model instead.
        max_noise: a point is fitted only when its 95% half-width is at most this times its error.

    Returns a `WeakErrorResult` with `half_widths` and `slope_intervals`. Raises `VerificationError`
    when fewer than 3 points per test function are usable (advice: more paths, larger h).
    """
    import jax

    from ..lowering import require_x64

    require_x64("bea.verify.monte_carlo_weak_error")
    if isinstance(model, JaxFiniteSumModel) or (isinstance(model, str) and model in JAX_MODELS):
        side = _JaxSides(rule, order, model, test_functions, values)
    else:
        side = _SympySides(rule, order, model, test_functions, values)
    if isinstance(paths, bool) or not isinstance(paths, (int, np.integer)) or paths < 2:
        raise VerificationError(f"paths must be an integer >= 2, got {paths!r}")
    if not (isinstance(max_noise, (int, float)) and 0 < max_noise):
        raise VerificationError(f"max_noise must be a number > 0, got {max_noise!r}")
    if step_sizes is None:
        step_sizes = _powers_of_two(side.curvature())
    hs = check_step_sizes(step_sizes)
    time = 16 * max(hs) if time is None else check_time(time)
    steps = []
    for h in hs:
        n = round(time / h)
        if n < 1 or abs(n * h - time) > 1e-9 * time:
            raise VerificationError(f"step_sizes: h={h:g} does not divide time={time:g} (T = n h); choose step sizes "
                                    "like time/4, time/8, ...")
        steps.append(n)
    devices = jax.devices()
    paths = int(-(-paths // len(devices)) * len(devices))
    key = jax.random.PRNGKey(key) if isinstance(key, (int, np.integer)) else key
    side.build()
    estimates = {name: [] for name in side.phi_fns}
    for k, (h, n) in enumerate(zip(hs, steps)):
        rule_key, sde_key = jax.random.split(jax.random.fold_in(key, k))
        ends = side.rule_ends(h, n, rule_key, paths, devices)
        sde = side.sde_ends(h, time, sde_key, paths)
        if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves((ends, sde))):
            raise VerificationError(f"paths diverged at h={h:g}; choose smaller step sizes or a shorter time")
        for name, fn in side.phi_fns.items():
            a, b = np.asarray(jax.vmap(fn)(ends)), np.asarray(jax.vmap(fn)(sde))
            error = abs(a.mean() - b.mean())
            se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
            estimates[name].append((error, _Z95 * se, se))
    return _fit_estimates(side, hs, estimates, max_noise,
                          note=f"{paths} paths per side at T={time:g} on {len(devices)} device(s)")


def _fit_estimates(side, hs, estimates, max_noise, note) -> WeakErrorResult:
    """Flag the points dominated by Monte Carlo noise, fit the rest per test function."""
    order = side.order
    sweeps, half_widths, intervals, unresolved, refusals = [], [], [], [], []
    for name in side.phi_fns:
        errors = [e for e, _, _ in estimates[name]]
        halves = [w for _, w, _ in estimates[name]]
        flags = ["Monte Carlo noise" if w > max_noise * e else "" for e, w in zip(errors, halves)]
        usable = [i for i, f in enumerate(flags) if not f]
        if len(usable) < 3:
            # this phi's weak error is below what the paths resolve: reported, never fitted
            unresolved.append(name)
            refusals.append(
                f"only {len(usable)} of {len(hs)} step sizes stand above the Monte Carlo noise for {name} (95% "
                f"half-width above {max_noise:g} times the error at "
                f"{', '.join(f'h={h:g}' for h, f in zip(hs, flags) if f)})")
            continue
        sweep = fit("Monte Carlo weak", hs, errors, flags, order + 1)
        sweeps.append((name, sweep))
        half_widths.append(tuple(float(w) for w in halves))
        intervals.append(_slope_interval(hs, estimates[name], usable, sweep.slope))
    if not sweeps:
        raise VerificationError(
            f"{refusals[0]}{' (and for every other test function)' if len(refusals) > 1 else ''}; use more paths "
            "(paths=, --paths; the noise falls like 1/sqrt(paths)) or larger step sizes (the error grows like "
            "h^(order+1))")
    return WeakErrorResult("Monte Carlo weak", side.rule.name, side.model.name, order, order + 1, tuple(sweeps),
                           half_widths=tuple(half_widths), slope_intervals=tuple(intervals),
                           unresolved=tuple(unresolved), note=note)


class _SympySides:
    """A `FiniteSumModel`: the SME derived exactly, the rule iterated on the lambdified losses."""

    def __init__(self, rule, order, model, test_functions, values):
        from ._stochastic_models import STOCHASTIC_MODELS

        if isinstance(model, str) and model not in STOCHASTIC_MODELS:
            raise VerificationError(f"unknown model {model!r}; choose one of "
                                    f"{', '.join([*STOCHASTIC_MODELS, *JAX_MODELS])}, or pass a "
                                    "bea.verify.FiniteSumModel or bea.verify.JaxFiniteSumModel")
        self.model = resolve_model(model)
        self.rule, self.order = prepare(rule, self.model, order, values)
        self.phis = resolve_test_functions(test_functions, self.model)

    def curvature(self) -> float:
        """The largest per-example Hessian norm at theta0."""
        return self.model.largest_hessian_norm()

    def build(self):
        self.sme = derive(self.rule, self.model, self.order)
        self.phi_fns = {name: _jax_function(phi, self.model.params) for name, phi in self.phis.items()}

    def rule_ends(self, h, n, key, paths, devices):
        return np.asarray(_rule_paths(self.rule, self.model, h, n, key, paths, devices))

    def sde_ends(self, h, time, key, paths):
        theta0 = self.model.theta0_array()
        return np.asarray(self.sme.sample_paths(theta0, h, [time], key=key, n_paths=paths, order=self.order))[:, -1, :]


class _JaxSides:
    """A `JaxFiniteSumModel`: SGD iterated on the model, its SME from `bea.sgd_sde`."""

    def __init__(self, rule, order, model, test_functions, values):
        from ..rules._stochastic import SGD, StochasticRule

        self.model = jax_model(model) if isinstance(model, str) else model
        if type(rule) is not SGD:
            what = rule.name if isinstance(rule, StochasticRule) else repr(rule)
            raise VerificationError(
                f"on a JAX model ({self.model.name}) the Monte Carlo check knows minibatch SGD only (its SME is "
                f"bea.sgd_sde), not {what}; pass bea.rules.SGD(batch_size=...), or a bea.verify.FiniteSumModel "
                "(SymPy losses) for Langevin")
        if test_functions is not None:
            raise VerificationError(
                "test_functions: on a JAX model they are JAX functions of the params; build the model with "
                "bea.verify.JaxFiniteSumModel(..., test_functions={name: phi}) instead")
        if values:
            raise VerificationError(f"values: SGD has no symbolic hyperparameters to set, got {values!r}")
        self.rule = rule
        self.phi_fns = dict(self.model.test_functions)
        from ..lowering._minibatch_sde import sgd_sde

        # raises NoStochasticModifiedEquationError from order 2 on, before any path is drawn
        self.sme = sgd_sde(self.model.loss, self.model.data, batch_size=rule.batch_size, order=order,
                           replacement=rule.replacement)
        self.order = self.sme.order

    def curvature(self) -> float:
        if not hasattr(self, "_curvature"):
            self._curvature = self.model.top_hessian_eigenvalue()
        return self._curvature

    def build(self):
        pass

    def solver_step(self, h) -> float:
        """dt0 = h min(1, Lambda h)^p / 4: Euler–Maruyama's weak error O(Lambda dt0) = O((Lambda h)^(p+1)) stays
        of the SME's own order in the dimensionless Lambda h (`sample_paths`' default min(h, h^(p+1))/4 is
        O(h) for h > 1: a first-order error that would flatten the slope)."""
        return h * min(1.0, self.curvature() * h) ** self.order / 4

    def rule_ends(self, h, n, key, paths, devices):
        import jax
        import jax.numpy as jnp

        loss, data, n_examples = self.model.loss, self.model.data, self.model.n_losses
        batch, replace = self.rule.batch_size, self.rule.replacement
        per_example_gradients = jax.vmap(jax.grad(loss), in_axes=(None, 0))

        def step(params, k):
            idx = jax.random.choice(k, n_examples, (batch,), replace=replace)
            grads = per_example_gradients(params, jax.tree_util.tree_map(lambda x: x[idx], data))
            return jax.tree_util.tree_map(lambda p, g: p - h * jnp.mean(g, axis=0), params, grads)

        return _sharded_runs(step, self.model.params0, n, key, paths, devices)

    def sde_ends(self, h, time, key, paths):
        import jax

        ends = self.sme.sample_paths(self.model.params0, h, [time], key=key, n_paths=paths, dt0=self.solver_step(h))
        return jax.tree_util.tree_map(lambda x: x[:, -1], ends)


def _powers_of_two(curvature: float) -> tuple[float, ...]:
    """2^-m, ..., 2^-(m+3), 2^-m the largest power of 2 at most 1/(4 max(1, curvature))."""
    m = int(np.ceil(np.log2(4 * max(1.0, curvature))))
    return tuple(2.0 ** -(m + k) for k in range(_SWEEP))


def _slope_interval(hs, estimates, usable, slope):
    """95% interval of the least-squares slope: var = sum_i w_i^2 (se_i / e_i)^2, w_i its weights in x."""
    x = np.log([hs[i] for i in usable])
    weights = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    sd = np.array([estimates[i][2] / estimates[i][0] for i in usable])
    half = _Z95 * float(np.sqrt(np.sum(weights**2 * sd**2)))
    return (slope - half, slope + half)


def _jax_function(phi, params):
    fn = sp.lambdify([list(params)], phi, modules="jax")
    return lambda theta: fn([theta[i] for i in range(len(params))])


def _rule_paths(rule, model, h, steps, key, paths, devices):
    """theta_n on `paths` independent runs, shape (paths, dim): jitted steps, vmapped over path keys
    sharded over `devices`."""
    import jax
    import jax.numpy as jnp

    from ..rules._stochastic import SGD, Langevin

    losses = model.jax_losses()
    per_example = jax.jacrev(lambda theta: jnp.stack([loss(theta) for loss in losses]))
    theta0 = jnp.asarray(model.theta0_array())
    n_losses = model.n_losses
    if isinstance(rule, SGD):
        batch, replace = rule.batch_size, rule.replacement
        if not replace and batch > n_losses:
            raise VerificationError(f"batch_size {batch} is above the {n_losses} losses of {model.name}")

        def step(theta, k):
            idx = jax.random.choice(k, n_losses, (batch,), replace=replace)
            return theta - h * jnp.mean(per_example(theta)[idx], axis=0)
    elif isinstance(rule, Langevin):
        scale = float(np.sqrt(2 * h * float(sp.sympify(rule.temperature).xreplace({STEP_SIZE: h}))))

        def step(theta, k):
            gradient = jnp.mean(per_example(theta), axis=0)
            return theta - h * gradient + scale * jax.random.normal(k, theta.shape)
    else:
        raise VerificationError(f"monte_carlo_weak_error knows SGD and Langevin; {rule.name} is neither")

    return _sharded_runs(step, theta0, steps, key, paths, devices)


def _sharded_runs(step, start, steps, key, paths, devices):
    """`steps` applications of step(state, key) from `start` on `paths` runs: a pytree with a leading
    axis of paths; jitted, vmapped over path keys sharded over `devices`."""
    import jax

    def run(path_key):
        return jax.lax.fori_loop(0, steps, lambda i, state: step(state, jax.random.fold_in(path_key, i)), start)

    return jax.jit(jax.vmap(run))(path_keys(key, paths))  # paths is a multiple of len(devices): sharded
