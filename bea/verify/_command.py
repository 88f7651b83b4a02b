"""`bea verify`: the command line of the verification sweeps.

Every input is checked before the first derivation or iteration (a sweep takes
seconds to minutes), and every message names the flag to change. The exit
status gates a user's CI: 0 when every fitted slope is within --tolerance of the
expected one, 1 when one is not (a one-line summary on stderr), 2 for bad input
or a sweep that cannot be fitted.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import sys
import warnings

from .._errors import ParseError
from ..rules._composite import _Game
from ._checks import check_compatible, check_order, check_step_sizes, check_time, check_values
from ._jax_models import JAX_MODELS
from ._models import MODELS, Model, summary
from ._stochastic_models import STOCHASTIC_MODELS
from ._sweep import TOLERANCE, global_step_sizes

__all__ = ["Outcome", "add_parser", "run"]

DEFAULT_TIME = 0.1


#: Rules whose `bea derive` help speaks of --loss and --params: here their losses come from the model.
_VERIFY_HELP = {
    "sgd-steps": "n SGD steps, one per batch loss of the model, time n h (--model mlp-2-batches)",
    "implicit-sgd-steps": "n implicit SGD steps, one per batch loss of the model, time n h (--model mlp-2-batches)",
    "simultaneous-gd": "two-player game, simultaneous steps (--model bilinear-game; --set ratio=...)",
    "alternating-gd": "two-player game, player 1 then player 2 (--model bilinear-game; --set ratio=...)",
    "extragradient": "two-player game, extragradient (--model bilinear-game; --set ratio=...)",
    "optimistic-gd": "two-player game, optimistic GD on its slow manifold (--model bilinear-game)",
    "sgd": "SGD on random batches: weak errors of its modified SDE (--stochastic --model linear-regression; "
           "--set batch_size=2)",
    "langevin": "unadjusted Langevin: weak errors of its modified SDE (--stochastic --model linear-regression; "
                "--set temperature=0.1)",
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the command prints, its exit status, and a one-line summary for stderr (empty when it passed)."""

    output: str
    status: int = 0
    summary: str = ""

    def __str__(self) -> str:
        return self.output


def add_parser(sub, rules: dict, handler) -> argparse.ArgumentParser:
    """The `verify` subcommand, with `handler(args)` to run it."""
    width = max(map(len, [*rules, *MODELS]))
    rule_list = "\n".join(f"  {name:{width}s}  {_VERIFY_HELP.get(name, entry.help)}" for name, entry in rules.items())
    model_list = "\n".join(f"  {name:{width}s}  {summary(fn.__doc__)}" for name, fn in MODELS.items())
    verify = sub.add_parser(
        "verify",
        help="measure the local and global error orders of the truncated modified flow on a model",
        description="Run RULE's own iteration on a model and integrate its modified flow truncated after f_P\n"
        "(diffrax, Dopri8, tolerance 1e-13); fit the log-log slopes of the local error (expected P+2) and\n"
        "the global error over a fixed time (expected P+1; one more per term after f_P that vanishes on the\n"
        "model, e.g. f_1 of the midpoint rule). Points where the iteration diverges, round-off or the ODE\n"
        "solver's error dominates are flagged and left out of the fit. Without --h the step sizes are chosen\n"
        "automatically: from a step set by the model's stiffness at theta0 (and 1 - decay for rules with\n"
        "memory), halving until the local slopes settle, stopping before round-off; the window is reported.\n\n"
        "Exit status: 0 when every slope is within --tolerance of the expected one, 1 when one is not\n"
        "(summary on stderr), 2 for bad input or a sweep that cannot be fitted.\n\n"
        "Rules (or module:attribute, a bea.rules.Rule or a function of no arguments returning one):\n"
        + rule_list + "\n\nModels (or module:attribute, a bea.verify.Model or a function returning one):\n" + model_list,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  bea verify gd --model two-param --order 1 --json --plot slopes.png\n"
        "  bea verify heavy-ball --model quadratic --order 1 --set beta=0.5 --h 0.02,0.01,0.005,0.0025 --time 0.2\n"
        "  bea verify sgd-steps --model mlp-2-batches --order 1 --h 0.4,0.2,0.1,0.05 --local-only\n"
        "  bea verify my_rules:clipped_gd --model two-param --order 1 --set c=0.5",
    )
    verify.add_argument("rule", metavar="RULE", help="a rule name listed above, or module:attribute (also path/file.py:name)")
    verify.add_argument("--model", required=True, metavar="NAME",
                        help="a model listed above (" + ", ".join(MODELS) + "), or module:attribute")
    verify.add_argument("--order", type=int, required=True, metavar="P", help="truncate the modified field after f_P (P >= 0)")
    verify.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                        help="a hyperparameter's value (a number), e.g. --set beta=0.5; every hyperparameter of the rule "
                        "needs one")
    verify.add_argument("--h", metavar="H1,H2,...",
                        help="at least 3 distinct step sizes > 0 (default: chosen automatically, the asymptotic window "
                        "found by halving h; the output says which)")
    verify.add_argument("--time", type=float, default=None, metavar="T",
                        help=f"time span of the global error, at least 4 times the largest step (default {DEFAULT_TIME}; "
                        "with --stochastic 16 times the largest step)")
    verify.add_argument("--local-only", action="store_true", help="skip the global error")
    verify.add_argument("--modifying", action="store_true",
                        help="verify the rule run on its modifying field of order P (bea derive RULE --modifying) "
                        "against the target flow: the local error, expected slope P+2 (SymPy models only)")
    verify.add_argument("--tolerance", type=float, default=TOLERANCE, metavar="TOL",
                        help=f"largest accepted |fitted - expected slope| before exiting with status 1 (default {TOLERANCE})")
    verify.add_argument("--plot", metavar="FILE",
                        help="write the log-log figure (errors, fitted lines, reference slopes); .png, .pdf, .svg, ...")
    verify.add_argument("--json", dest="format", action="store_const", const="json", default="text",
                        help="one JSON object")
    stochastic = verify.add_argument_group(
        "stochastic rules (sgd, langevin)",
        "weak errors of the stochastic modified equation on a finite-sum model (" + ", ".join(STOCHASTIC_MODELS)
        + "): the exact local weak error (expected P+2), the exact global weak error on linear-regression "
        "(P+1), and with --monte-carlo the Monte Carlo global weak error (P+1); on the JAX models ("
        + ", ".join(JAX_MODELS) + "; sgd, P <= 1) only the Monte Carlo one, so add --monte-carlo; see "
        "docs/guide/verification.md")
    stochastic.add_argument("--stochastic", action="store_true",
                            help="verify the stochastic modified equation of sgd or langevin")
    stochastic.add_argument("--monte-carlo", action="store_true", dest="monte_carlo",
                            help="also the Monte Carlo global weak error (points dominated by noise are flagged)")
    stochastic.add_argument("--paths", type=int, default=None, metavar="N",
                            help="Monte Carlo paths per side and step size (default 4096)")
    verify.set_defaults(handler=handler)
    return verify


# -- reading the inputs ---------------------------------------------------------------------------

def _step_sizes(text: str | None) -> tuple[float, ...] | None:
    """The step sizes of --h, or None (not given: the sweeps choose them)."""
    if text is None:
        return None
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ParseError(f"--h {text!r} has an empty entry; give comma-separated numbers like 0.004,0.002,0.001")
        try:
            value = float(item)  # 1e-3, 0.002: the float of the decimal, printed back as given
        except ValueError:
            value = _number(item, "--h")
        if not math.isfinite(value) or value <= 0:
            raise ParseError(f"--h: every step size must be a finite number > 0, got {item}")
        values.append(value)
    return check_step_sizes(values, name="--h")


def _number(text: str, flag: str) -> float:
    from .._parse import parse_expression

    expr = parse_expression(text)
    if not expr.is_number:
        raise ParseError(f"{flag}: {text!r} is not a number")
    value = complex(expr)
    if value.imag:
        raise ParseError(f"{flag}: {text!r} is not a real number")
    return value.real


def _check_plot(path: str) -> None:
    """The figure can be written where asked, checked before the sweep instead of failing after it."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ParseError(f"--plot {path}: the directory {directory} does not exist; create it or choose another path")
    if os.path.isdir(path):
        raise ParseError(f"--plot {path} is a directory; give a file name such as {os.path.join(path, 'slopes.png')}")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ParseError(f"--plot {path}: cannot write there (permission denied); choose another path")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = os.path.splitext(path)[1][1:].lower()
    if suffix not in formats:
        raise ParseError(f"--plot {path}: give a file name ending in one of {', '.join('.' + f for f in sorted(formats))}")


def load_object(spec: str, *, flag: str):
    """The object `module:attribute` names (`path/to/file.py:attribute` too); the module is imported
    from the working directory like `python -m` would."""
    location, _, attribute = spec.rpartition(":")
    if not location or not attribute:
        raise ParseError(f"{flag} {spec!r}: give module:attribute, e.g. my_rules:clipped_gd")
    try:
        if location.endswith(".py") or os.sep in location or "/" in location:
            if not os.path.isfile(location):
                raise ParseError(f"{flag} {spec!r}: no file {location}")
            name = os.path.splitext(os.path.basename(location))[0]
            module_spec = importlib.util.spec_from_file_location(name, location)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules.setdefault(name, module)
            module_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:  # the `bea` script does not look in the cwd
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(location)
    except ParseError:
        raise
    except ModuleNotFoundError as exc:
        raise ParseError(f"{flag} {spec!r}: cannot import {location} ({exc}); run bea in the directory that holds "
                         f"{location.replace('.', '/')}.py, or give its path: path/to/{location}.py:{attribute}") from None
    except Exception as exc:  # the user's module itself failed: say so in one line
        raise ParseError(f"{flag} {spec!r}: importing {location} raised {type(exc).__name__}: {exc}") from None
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ParseError(f"{flag} {spec!r}: {location} has no attribute {attribute!r}")
        value = getattr(value, part)
    return value


def _instance(value, kind, spec: str, flag: str, what: str):
    """A `kind` instance, or what a function of no arguments returns."""
    if isinstance(value, kind):
        return value
    if callable(value):
        try:
            value = value()
        except TypeError as exc:
            raise ParseError(f"{flag} {spec!r} must be a {what} or a function of no arguments returning one; "
                             f"calling it without arguments raised TypeError: {exc}") from None
        if isinstance(value, kind):
            return value
    raise ParseError(f"{flag} {spec!r} is {type(value).__name__}, not a {what} (or a function of no arguments returning one)")


def _model(name: str) -> Model:
    if ":" in name:
        return _instance(load_object(name, flag="--model"), Model, name, "--model", "bea.verify.Model")
    if name not in MODELS:
        raise ParseError(f"--model: unknown model {name!r}; choose one of {', '.join(MODELS)}, or give module:attribute")
    return MODELS[name]()


def _rule(args, rules: dict, split_assignments, entry_type, model: Model):
    """The rule named on the command line, its --set options applied, and the remaining values."""
    from ..rules import Rule

    if ":" in args.rule:
        rule = _instance(load_object(args.rule, flag="RULE"), Rule, args.rule, "RULE", "bea.rules.Rule")
        _, values = split_assignments(entry_type(rule, "user rule"), set(), args.assignments)
        return rule, values
    if args.rule not in rules:
        raise ParseError(f"unknown rule {args.rule!r}; choose one of {', '.join(rules)}, or give module:attribute "
                         "for a rule of your own")
    entry = rules[args.rule]
    default = entry.make()
    fields = {f.name for f in dataclasses.fields(default)} if dataclasses.is_dataclass(default) else set()
    options, values = split_assignments(entry, fields, args.assignments)
    for name, value in options.items():  # a hyperparameter set by name must be a number (or in h, SAM's rho=h/2)
        if hasattr(value, "free_symbols") and {s.name for s in value.free_symbols} - {"h"}:
            raise ParseError(f"--set {name}={value}: verification iterates the rule, so {name} must be a number")
    if args.rule in ("sgd-steps", "implicit-sgd-steps"):
        if model.n_losses < 2:
            raise ParseError(f"{args.rule} takes one loss per batch and {model.name} has one; use --model mlp-2-batches "
                             "or a bea.verify.Model with several jax_losses")
        options["n"] = model.n_losses
    if isinstance(default, _Game) and model.players is not None:
        options["players"] = model.players
    return (entry.make(**options) if options else default), values


# -- running --------------------------------------------------------------------------------------

def run(args, rules: dict, split_assignments, entry_type) -> Outcome:
    """Check every input, then sweep; `rules`, `split_assignments` and `entry_type` come from bea.cli."""
    import jax

    from ..lowering import require_x64

    jax.config.update("jax_enable_x64", True)  # verification is float64 work
    require_x64("bea verify")
    # Cheap checks first: none of them derives, iterates or builds a model.
    if getattr(args, "monte_carlo", False) or getattr(args, "paths", None) is not None:
        raise ParseError("--monte-carlo and --paths are for stochastic rules: add --stochastic (bea verify sgd "
                         "--stochastic ...)")
    step_sizes = _step_sizes(args.h)
    time = None if args.local_only else check_time(DEFAULT_TIME if args.time is None else args.time, name="--time")
    if time is not None and step_sizes is not None:
        global_step_sizes(step_sizes, time, name="--h", time_name="--time")
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise ParseError(f"--tolerance must be a finite number >= 0, got {args.tolerance}")
    if args.plot:
        _check_plot(args.plot)
    if args.order < 0:
        raise ParseError(f"--order must be an integer >= 0, got {args.order}")
    model = _model(args.model)
    rule, values = _rule(args, rules, split_assignments, entry_type, model)
    check_order(args.order, name="--order", memory=hasattr(rule, "decays"))
    check_compatible(rule, model, model_hint=lambda name: f"--model {name}")
    values = check_values(rule, values, suggest=lambda name: f"add --set {name}=...", name="--set")

    from ._sweep import global_error, local_error

    with warnings.catch_warnings():  # slopes far off are reported below, against --tolerance
        warnings.filterwarnings("ignore", message="the fitted .* error slope", category=UserWarning)
        if args.modifying:
            from ._modifying_sweep import modifying_local_error

            results = {"local_error": modifying_local_error(rule, model, args.order, step_sizes=step_sizes,
                                                            values=values)}
        else:
            results = {"local_error": local_error(rule, model, args.order, step_sizes=step_sizes, values=values)}
        if time is not None and not args.modifying:
            results["global_error"] = global_error(rule, model, args.order, step_sizes=step_sizes, time=time,
                                                   values=values)
    if args.plot:
        _plot(args, results)
    failures = [_failure(kind, r, args.order, args.tolerance) for kind, r in results.items()
                if not r.passes(args.tolerance)]
    if args.format == "json":
        output = json.dumps({"rule": args.rule, "model": args.model, "order": args.order, "tolerance": args.tolerance,
                             "passed": not failures,
                             **{k: {**v.to_dict(), "passed": v.passes(args.tolerance)} for k, v in results.items()}})
    else:
        lines = []
        for kind, r in results.items():
            flagged = [f"h={h:g} ({f})" for h, f in zip(r.h, r.flags) if f]
            lines.append(f"{kind.replace('_', ' ')}: slope {r.slope:.3f} (expected {r.expected}"
                         + ("" if r.passes(args.tolerance) else f", off by more than {args.tolerance:g}") + ")"
                         + (f"; left out: {', '.join(flagged)}" if flagged else "") + (f"; {r.note}" if r.note else ""))
            if r.automatic:
                lines.append(f"  h: {', '.join(f'{h:g}' for h in r.h)}")
        output = "\n".join(lines)
    if failures:
        return Outcome(output, 1, "verify failed: " + "; ".join(failures))
    return Outcome(output)


def _failure(kind: str, result, order: int, tolerance: float) -> str:
    text = (f"{kind.replace('_', ' ')} slope {result.slope:.3f} is off the expected {result.expected} by "
            f"{abs(result.deviation):.3f} > --tolerance {tolerance:g}")
    if result.deviation > 0:
        after = order + len(result.vanishing) + 1
        return text + (f" (higher: f_{after} does not vanish on this model, so its coefficient may be small at the "
                       "initial point; try larger --h)")
    return text + " (lower: the step sizes may be outside the asymptotic range, try smaller --h; or the derived field is wrong)"


def _plot(args, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5), squeeze=False)
    for ax, (kind, result) in zip(axes[0], results.items()):
        result.plot(ax)
        ax.set_title(f"{args.rule} on {args.model}, p = {args.order}: {kind.replace('_', ' ')}", fontsize="medium")
    figure.tight_layout()
    try:
        figure.savefig(args.plot)
    except OSError as exc:  # checked up front; the disk can still fill up or the directory vanish meanwhile
        raise ParseError(f"--plot {args.plot}: cannot write the figure ({exc.strerror or exc})") from None
    finally:
        plt.close(figure)
