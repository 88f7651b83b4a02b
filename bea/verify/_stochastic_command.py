"""`bea verify sgd|langevin --stochastic`: weak-error slopes of a stochastic modified equation.

Which check runs: the exact local weak error always; the exact global weak error on linear
regression (unless --local-only); the Monte Carlo global weak error with --monte-carlo (--paths N).
On a JAX model (logistic-sgd, mlp-digits-sgd: sgd only) only the Monte Carlo check runs, so it
needs --monte-carlo.
Every input is checked before the first derivation; exit status as for `bea verify` (0 passed,
1 a slope off by more than --tolerance, 2 bad input or a sweep that cannot be fitted).
"""

from __future__ import annotations

import json
import math

from .._errors import ParseError
from ._checks import VerificationError, hyperparameter_names
from ._command import Outcome, _step_sizes
from ._jax_models import JAX_MODELS, jax_model
from ._stochastic_models import STOCHASTIC_MODELS, stochastic_model

__all__ = ["run_stochastic"]


def run_stochastic(args, rules: dict, split_assignments, entry_type) -> Outcome:
    """Check the inputs of a stochastic verification, then run the checks; arguments as `_command.run`."""
    import jax

    from ..lowering import require_x64
    from ..rules._stochastic import StochasticRule

    jax.config.update("jax_enable_x64", True)
    require_x64("bea verify --stochastic")
    if args.rule not in rules:
        raise ParseError(f"--stochastic verifies the built-in stochastic rules (sgd, langevin), not {args.rule!r}")
    entry = rules[args.rule]
    default = entry.make()
    if not isinstance(default, StochasticRule):
        raise ParseError(f"--stochastic: {args.rule} has no randomness; verify sgd or langevin with --stochastic, or "
                         f"drop --stochastic to verify {args.rule}'s modified flow")
    if args.rule not in ("sgd", "langevin"):  # the weak-error checks know these two laws only
        raise ParseError(f"--stochastic verifies sgd and langevin, not {args.rule}; derive its stochastic modified "
                         f"equation with bea derive {args.rule} --loss ... --params ...")
    jax_model_given = args.model in JAX_MODELS
    if args.model not in STOCHASTIC_MODELS and not jax_model_given:
        raise ParseError(f"--model {args.model}: with --stochastic choose a finite-sum model: "
                         f"{', '.join([*STOCHASTIC_MODELS, *JAX_MODELS])}")
    if jax_model_given and args.rule != "sgd":
        raise ParseError(f"--model {args.model} is a JAX model, checked for sgd only (its SME is bea.sgd_sde); "
                         f"verify {args.rule} on {' or '.join(STOCHASTIC_MODELS)}")
    if jax_model_given and not args.monte_carlo:
        raise ParseError(f"--model {args.model} is a JAX model: the exact weak-error checks need SymPy losses, only "
                         "the Monte Carlo one runs on it; add --monte-carlo")
    if args.plot:
        raise ParseError("--plot is not available with --stochastic yet; use --json and plot the errors yourself")
    if args.order < 0:
        raise ParseError(f"--order must be an integer >= 0, got {args.order}")
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise ParseError(f"--tolerance must be a finite number >= 0, got {args.tolerance}")
    if args.paths is not None and not args.monte_carlo:
        raise ParseError("--paths is the number of Monte Carlo paths: add --monte-carlo, or drop --paths")
    if args.paths is not None and args.paths < 2:
        raise ParseError(f"--paths must be an integer >= 2, got {args.paths}")
    step_sizes = None if args.h is None else _step_sizes(args.h)
    model = jax_model(args.model) if jax_model_given else stochastic_model(args.model)
    options, values = split_assignments(entry, {"batch_size", "replacement", "temperature"}, args.assignments)
    if values:
        raise ParseError(f"--set {', '.join(values)}: {args.rule} has no such hyperparameter (it has "
                         f"{'batch_size, replacement' if args.rule == 'sgd' else 'temperature'})")
    rule = entry.make(**options) if options else default
    names = hyperparameter_names(rule)
    missing = sorted(names[s] for s in rule.free_symbols)
    if missing:
        raise ParseError(f"{args.rule} needs a number for {', '.join(missing)} to be verified: add "
                         + " ".join(f"--set {name}=..." for name in missing))
    if getattr(rule, "replacement", True) is False and rule.batch_size > model.n_losses:
        raise ParseError(f"--set batch_size={rule.batch_size} is more than the {model.n_losses} losses of {model.name}, "
                         "which sampling without replacement cannot draw; lower batch_size")
    time = None if args.time is None else float(args.time)

    from ._monte_carlo import DEFAULT_PATHS, monte_carlo_weak_error
    from ._weak_global import weak_global_error
    from ._weak_local import weak_local_error

    results = {}
    if jax_model_given:
        if args.order > 1:  # sgd_sde's refusal speaks of order=; name the flag
            raise ParseError(f"--order {args.order}: no SDE matches minibatch SGD from order 2 on (third-order "
                             f"generator terms); use --order 1 or 0 on {args.model}")
    else:
        try:
            results["weak_local_error"] = weak_local_error(rule, args.order, model=model, step_sizes=step_sizes)
        except VerificationError as exc:  # name the flag, not the Python argument
            raise VerificationError(str(exc).replace("verify order", "use --order")) from None
    if not jax_model_given and model.linear is not None and not args.local_only:
        results["weak_global_error"] = weak_global_error(rule, args.order, model=model, step_sizes=step_sizes,
                                                         time=time)
    if args.monte_carlo:
        results["monte_carlo_weak_error"] = monte_carlo_weak_error(
            rule, args.order, model=model, step_sizes=step_sizes, time=time, paths=args.paths or DEFAULT_PATHS)
    failures = [f"{kind.replace('_', ' ')} slope {r.slope:.3f} ({r.worst[0]}) is off the expected {r.expected} by "
                f"{abs(r.deviation):.3f} > --tolerance {args.tolerance:g}"
                for kind, r in results.items() if not r.passes(args.tolerance)]
    if args.format == "json":
        output = json.dumps({"rule": args.rule, "model": args.model, "order": args.order, "stochastic": True,
                             "tolerance": args.tolerance, "passed": not failures,
                             **{k: {**v.to_dict(), "passed": v.passes(args.tolerance)} for k, v in results.items()}})
    else:
        output = "\n".join(r.text(args.tolerance) for r in results.values())
        if jax_model_given:
            output += (f"\n({args.model} is a JAX model: only the Monte Carlo weak error ran; the exact local and "
                       "global checks need SymPy losses)")
    if failures:
        return Outcome(output, 1, "verify failed: " + "; ".join(failures))
    return Outcome(output)
