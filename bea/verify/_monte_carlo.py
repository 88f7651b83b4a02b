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
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..engines.series._jet import STEP_SIZE
from ._checks import VerificationError, check_step_sizes, check_time
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

    Args:
        rule: `bea.rules.SGD(batch_size=B, replacement=...)` or `bea.rules.Langevin(temperature=T)`.
        order: p, the SME truncated after h^p.
        model: a `bea.verify.FiniteSumModel` or its name ("two-param-sum", "linear-regression").
        step_sizes, time: each h must divide `time`; default h = 2^-m, ..., 2^-(m+3) with 2^-m the
            largest power of 2 at most 1/(4 max(1, Lambda)) (Lambda: largest per-example Hessian norm
            at theta0; large steps, so the weak error stands above the noise) and time = 16 * 2^-m.
        paths: Monte Carlo paths per side and step size (rounded up to a multiple of the device count).
        key: a JAX PRNG key or an int seed.
        test_functions: SymPy expressions in the params; default coordinates, quadratic monomials, E.
        max_noise: a point is fitted only when its 95% half-width is at most this times its error.

    Returns a `WeakErrorResult` with `half_widths` and `slope_intervals`. Raises `VerificationError`
    when fewer than 3 points per test function are usable (advice: more paths, larger h).
    """
    import jax

    from ..lowering import require_x64

    require_x64("bea.verify.monte_carlo_weak_error")
    model = resolve_model(model)
    rule, order = prepare(rule, model, order, values)
    phis = resolve_test_functions(test_functions, model)
    if isinstance(paths, bool) or not isinstance(paths, (int, np.integer)) or paths < 2:
        raise VerificationError(f"paths must be an integer >= 2, got {paths!r}")
    if not (isinstance(max_noise, (int, float)) and 0 < max_noise):
        raise VerificationError(f"max_noise must be a number > 0, got {max_noise!r}")
    if step_sizes is None:
        step_sizes = _default_step_sizes(model)
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
    sme = derive(rule, model, order)
    phi_fns = {name: _jax_function(phi, model.params) for name, phi in phis.items()}
    theta0 = model.theta0_array()
    estimates = {name: [] for name in phis}
    for k, (h, n) in enumerate(zip(hs, steps)):
        rule_key, sde_key = jax.random.split(jax.random.fold_in(key, k))
        ends = np.asarray(_rule_paths(rule, model, h, n, rule_key, paths, devices))
        sde = np.asarray(sme.sample_paths(theta0, h, [time], key=sde_key, n_paths=paths, order=order))[:, -1, :]
        if not (np.isfinite(ends).all() and np.isfinite(sde).all()):
            raise VerificationError(f"paths diverged at h={h:g}; choose smaller step sizes or a shorter time")
        for name, fn in phi_fns.items():
            a, b = np.asarray(jax.vmap(fn)(ends)), np.asarray(jax.vmap(fn)(sde))
            error = abs(a.mean() - b.mean())
            se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
            estimates[name].append((error, _Z95 * se, se))
    sweeps, half_widths, intervals = [], [], []
    for name in phis:
        errors = [e for e, _, _ in estimates[name]]
        halves = [w for _, w, _ in estimates[name]]
        flags = ["Monte Carlo noise" if w > max_noise * e else "" for e, w in zip(errors, halves)]
        usable = [i for i, f in enumerate(flags) if not f]
        if len(usable) < 3:
            raise VerificationError(
                f"only {len(usable)} of {len(hs)} step sizes stand above the Monte Carlo noise for {name} (95% "
                f"half-width above {max_noise:g} times the error at "
                f"{', '.join(f'h={h:g}' for h, f in zip(hs, flags) if f)}); use more paths (paths=, --paths; the "
                "noise falls like 1/sqrt(paths)) or larger step sizes (the error grows like h^(order+1))")
        sweep = fit("Monte Carlo weak", hs, errors, flags, order + 1)
        sweeps.append((name, sweep))
        half_widths.append(tuple(float(w) for w in halves))
        intervals.append(_slope_interval(hs, estimates[name], usable, sweep.slope))
    return WeakErrorResult("Monte Carlo weak", rule.name, model.name, order, order + 1, tuple(sweeps),
                           half_widths=tuple(half_widths), slope_intervals=tuple(intervals),
                           note=f"{paths} paths per side at T={time:g} on {len(devices)} device(s)")


def _default_step_sizes(model) -> tuple[float, ...]:
    start = dict(zip(model.params, model.theta0))
    scale = 1.0
    for loss in model.losses:
        hessian = np.array(sp.hessian(loss, model.params).xreplace(start).evalf(), dtype=float)
        scale = max(scale, float(np.linalg.norm(hessian, 2)))
    m = int(np.ceil(np.log2(4 * scale)))
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

    def run(path_key):
        return jax.lax.fori_loop(0, steps, lambda i, theta: step(theta, jax.random.fold_in(path_key, i)), theta0)

    keys = jax.random.split(key, paths)
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(devices), ("paths",))
        keys = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("paths")))
    return jax.jit(jax.vmap(run))(keys)
