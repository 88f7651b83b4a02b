"""The `bea` command line.

    bea derive RULE --loss EXPR --params a,b --order P [--set NAME=VALUE ...] [--json | --latex | --text]

Errors are one line on stderr and a non-zero exit status, never a traceback
(set BEA_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable

from . import rules as _rules
from ._errors import BeaError, ParseError
from ._parse import parse_expression, parse_symbols
from .exports import NoModifiedLossError
from .series._colored_trees import Colored
from .series._derive import modified_equation
from .series._elementwise_view import ElementwiseModifiedEquation
from .series._notation import gradient_text
from .series._trees import level_sequence, tree_coefficients

__all__ = ["RULES", "main"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    make: Callable
    help: str
    choices: dict = dataclasses.field(default_factory=dict)  # text-valued options


#: Command-line rule names.
RULES: dict[str, _Entry] = {
    "gd": _Entry(_rules.GD, "gradient descent"),
    "egr": _Entry(_rules.EGR, "explicit gradient regularization, GD on E + mu |grad E|^2 (--set mu=...)"),
    "sam": _Entry(_rules.SAM, "SAM, unnormalized (--set rho=..., or rho=c*h to tie it to the step)"),
    "fd-gr": _Entry(
        _rules.FiniteDifferenceGR,
        "finite-difference gradient regularization (--set gamma=... eps=... kind=forward|backward)",
        {"kind": ("forward", "backward")},
    ),
    "heavy-ball": _Entry(_rules.HeavyBall, "heavy-ball momentum, v' = beta v + grad E, theta' = theta - h v' (--set beta=...)"),
    "nesterov": _Entry(_rules.Nesterov, "Nesterov momentum, gradient at theta - h beta v (--set beta=...)"),
    "rmsprop": _Entry(_rules.RMSProp, "RMSProp, eps inside the root (--set rho=... eps=...)"),
    "adam": _Entry(
        _rules.Adam,
        "Adam with bias correction (--set beta=... rho=... eps=... eps_position=inside|outside weight_decay=...)",
        {"eps_position": ("inside", "outside")},
    ),
    "sgd-steps": _Entry(_rules.SGDSteps, "n SGD steps, one per --loss (batch losses E_1..E_n), time n h"),
    "simultaneous-gd": _Entry(
        _rules.SimultaneousGD, "two-player game, simultaneous steps (--loss twice, --params once per player; --set ratio=...)"
    ),
    "alternating-gd": _Entry(
        _rules.AlternatingGD, "two-player game, player 1 then player 2 (--loss twice, --params per player; --set ratio=...)"
    ),
    "flooding": _Entry(
        _rules.flooding_crossing, "two flooding steps across the flood level: ascent then descent (--set kind=backward)",
        {"kind": ("forward", "backward")},
    ),
    **{
        name: _Entry(lambda tableau=tableau: tableau, f"explicit Runge-Kutta map ({name}) of the gradient flow")
        for name, tableau in _rules.TABLEAUS.items()
    },
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bea",
        description="Backward error analysis of optimization algorithms: derive the modified equation "
        "theta' = f_0 + h f_1 + h^2 f_2 + ... whose flow matches an optimizer's iterates.",
        epilog="Example: bea derive gd --loss '(y - a*b*x)**2/2' --params a,b --order 2 --json",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    rule_list = "\n".join(f"  {name:10s} {entry.help}" for name, entry in RULES.items())
    derive = sub.add_parser(
        "derive",
        help="derive the modified-equation terms f_0..f_P of an update rule",
        description="Derive f_0, ..., f_P of the modified equation of RULE exactly: on a loss (--loss, --params),\n"
        "or coordinate-free in grad E and its derivative tensors (no loss).\n\nRules:\n" + rule_list,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Without --loss and --params, prints the coordinate-free view (terms in grad E, its Hessian and\n"
        "higher derivative tensors; Runge-Kutta-type rules).\n"
        "Every name in an expression that is not a parameter or set with --set stays symbolic.\n"
        "Example: bea derive sam --loss '(y - a*b*x)**2/2' --params a,b --order 2 --set rho=h/2 --set x=1",
    )
    derive.add_argument("rule", choices=sorted(RULES), metavar="RULE", help="one of: " + ", ".join(RULES))
    derive.add_argument("--loss", action="append", metavar="EXPR",
                        help="the loss, in SymPy syntax (repeat for rules with several losses)")
    derive.add_argument("--params", action="append", metavar="a,b",
                        help="comma-separated parameter names (repeat once per player in games)")
    derive.add_argument("--order", type=int, required=True, metavar="P", help="derive f_0..f_P (P >= 0)")
    derive.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                        help="fix a hyperparameter or a loss constant (exact: 0.1 means 1/10); "
                        "values may use h, e.g. rho=2*h")
    derive.add_argument("--constants", metavar="x,y",
                        help="declare the only symbols the loss may use besides the parameters (catches typos)")
    derive.add_argument("--trees", action="store_true",
                        help="print the rooted-tree coefficients b(t) of the modified field, f~ = sum_t "
                        "h^(|t|-1) b(t)/sigma(t) F(t), for all trees with at most P+1 nodes (Runge-Kutta-type "
                        "rules; no loss needed)")
    derive.add_argument("--small", action="append", default=[], metavar="NAME",
                        help="coordinate-free view: expand in h and this hyperparameter jointly (SAM's rho, "
                        "fd-gr's eps when not tied to h); terms complete through total degree P")
    derive.add_argument("--batches", type=int, metavar="N",
                        help="sgd-steps without --loss: the number of batches (coordinate-free view; default 2)")
    derive.add_argument("--initial-point", action="store_true",
                        help="coordinate-free view, order <= 1: the modified loss(es) that depend on the initial "
                        "point theta_0 of the step (Rosca & Deisenroth 2024), one per player in games; they "
                        "exist where the plain field is not a gradient (SGD over batches, games)")
    derive.add_argument("--modified-loss", action="store_true",
                        help="also give the modified loss E~ (f_0 + ... + h^P f_P = -grad E~) when the field is a "
                        "gradient; otherwise say at which order it stops being one")
    form = derive.add_mutually_exclusive_group()
    form.add_argument("--json", dest="format", action="store_const", const="json", help="one JSON object")
    form.add_argument("--latex", dest="format", action="store_const", const="latex", help="a LaTeX display formula")
    form.add_argument("--text", dest="format", action="store_const", const="text", help="plain text (default)")
    derive.set_defaults(format="text", handler=_derive)

    from .verify import MODELS

    verify = sub.add_parser(
        "verify",
        help="measure the local and global error orders of the truncated modified flow on a model",
        description="Run RULE's own iteration on a model and integrate its modified flow truncated after f_P\n"
        "(diffrax, Dopri8, tolerance 1e-13); fit the log-log slopes of the local error (expected P+2) and\n"
        "the global error over a fixed time (expected P+1). Points where the iteration diverges, round-off\n"
        "or the ODE solver's error dominates are flagged and left out of the fit.\n\nModels:\n"
        + "\n".join(f"  {name:14s} {(fn.__doc__ or '').strip().splitlines()[0]}" for name, fn in MODELS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: bea verify gd --model two-param --order 1 --json --plot slopes.png",
    )
    verify.add_argument("rule", choices=sorted(RULES), metavar="RULE", help="one of: " + ", ".join(RULES))
    verify.add_argument("--model", required=True, choices=sorted(MODELS), metavar="NAME",
                        help="one of: " + ", ".join(MODELS))
    verify.add_argument("--order", type=int, required=True, metavar="P", help="truncate the modified field after f_P")
    verify.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                        help="hyperparameter values (numbers), e.g. --set beta=0.5")
    verify.add_argument("--h", metavar="H1,H2,...", help="step sizes (default: 5 values from 4e-3 down by 2x)")
    verify.add_argument("--time", type=float, default=0.1, help="time span of the global error (default 0.1)")
    verify.add_argument("--local-only", action="store_true", help="skip the global error")
    verify.add_argument("--plot", metavar="FILE", help="write the log-log figure (errors, fitted lines, reference slopes)")
    verify.add_argument("--json", dest="format", action="store_const", const="json", default="text",
                        help="one JSON object")
    verify.set_defaults(handler=_verify)
    return parser


def _split_assignments(entry: _Entry, rule_fields: set[str], assignments: list[str]):
    options, values = {}, {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ParseError(f"--set expects NAME=VALUE, got {item!r}")
        if name in entry.choices:
            if text not in entry.choices[name]:
                raise ParseError(f"--set {name} must be one of {', '.join(entry.choices[name])}, got {text!r}")
            options[name] = text
        elif name in rule_fields:
            options[name] = parse_expression(text)
        else:
            values[name] = parse_expression(text)
    return options, values


def _trees(args, rule) -> str:
    terms = tree_coefficients(rule, args.order)
    if args.format == "json":
        return json.dumps({
            "rule": args.rule,
            "order": args.order,
            "normalization": "f~ = sum_t h^(|t|-1) coefficient(t)/symmetry(t) F(t)",
            "trees": [
                {"level_sequence": t.level_sequence, "coefficient": str(t.coefficient), "symmetry": t.symmetry}
                for t in terms
            ],
        })
    if args.format == "latex":
        raise ParseError("--latex is not available with --trees; use --json or --text")
    return "\n".join(f"{str(t.level_sequence):24s} {t.coefficient}" for t in terms)


def _modified_loss(result, wanted: bool):
    """(modified loss, None), or (None, why there is none), or (None, None) when not asked for."""
    if not wanted:
        return None, None
    try:
        return result.modified_loss(), None
    except NoModifiedLossError as exc:
        return None, str(exc)


def _tree_json(cf, c, t) -> dict:
    if not isinstance(t, Colored):
        return {"coefficient": str(c), "level_sequence": level_sequence(t), "text": gradient_text(t)}
    levels, nodes = [], []

    def walk(node, level):  # pre-order, children in bea's canonical order
        levels.append(level)
        block = node.label.block
        nodes.append({"loss": node.label.loss + 1, "player": None if block is None else block + 1})
        for child in node.children:
            walk(child, level + 1)

    walk(t, 1)
    return {"coefficient": str(c), "level_sequence": levels, "nodes": nodes, "text": cf.tree_text(t)}


def _initial_point(args, cf) -> str:
    ip = cf.initial_point_loss()
    players = range(len(ip.players))
    if args.format == "json":
        return json.dumps({
            "rule": args.rule, "order": args.order, "view": "initial-point modified loss",
            "losses": [{"player": (p + 1) if cf.n_players else None, "text": ip.text(p), "latex": ip.latex(p)}
                       for p in players],
        }, ensure_ascii=False)
    if args.format == "latex":
        names = cf.notation.players_latex
        return "\n".join((rf"\tilde{{E}}_{{{names[p]}}}" if cf.n_players else r"\tilde{E}") + f" = {ip.latex(p)}"
                         for p in players)
    names = cf.notation.players_text
    return "\n".join((f"E~_{names[p]}" if cf.n_players else "E~") + f" = {ip.text(p)}" for p in players)


def _coordinate_free(args, rule) -> str:
    cf = modified_equation(rule, args.order, small=args.small)
    if args.initial_point:
        return _initial_point(args, cf)
    loss, note = _modified_loss(cf, args.modified_loss)
    if args.format == "json":
        data = {"rule": args.rule, "order": args.order, "view": "coordinate-free"}
        if isinstance(cf, ElementwiseModifiedEquation):  # products, quotients, roots act per component
            data["view"] = "coordinate-free, element-wise"
            data["elementwise_terms"] = [{"expression": str(f), "text": cf.text(l)} for l, f in enumerate(cf.terms)]
        else:
            data["coordinate_free_terms"] = [[_tree_json(cf, c, t) for c, t in term] for term in cf.terms]
        if args.modified_loss:
            data["modified_loss"] = None if loss is None else [
                [{"coefficient": str(c), "invariant": text} for c, _, text in piece] for piece in loss
            ]
            data["modified_loss_note"] = note
        return json.dumps(data, ensure_ascii=False)
    if args.format == "latex":
        return cf.latex() + (f"\n% {note}" if note else "") + (f"\n{cf.modified_loss_latex()}" if loss else "")
    lines = [f"f_{l} = {cf.text(l)}" for l in range(cf.order + 1)]
    if loss is not None:
        lines += [f"E~_{l} = " + " + ".join(f"({c}) {text}" for c, _, text in piece) for l, piece in enumerate(loss)]
    elif note:
        lines.append(note)
    return "\n".join(lines)


def _derive(args) -> str:
    entry = RULES[args.rule]
    default = entry.make()
    fields = {f.name for f in dataclasses.fields(default)} if dataclasses.is_dataclass(default) else set()
    options, values = _split_assignments(entry, fields, args.assignments)
    if args.rule == "sgd-steps":
        if args.batches is not None and args.loss and args.batches != len(args.loss):
            raise ParseError(f"--batches {args.batches} but {len(args.loss)} --loss given")
        if args.batches is not None and args.batches < 1:
            raise ParseError(f"--batches must be positive, got {args.batches}")
        options["n"] = len(args.loss or ()) or args.batches or 2
    elif args.batches is not None:
        raise ParseError("--batches is for sgd-steps")
    if args.small and (args.loss or args.params):
        raise ParseError("--small is for the coordinate-free view (on a loss the engine is exact in every hyperparameter)")
    if args.initial_point and (args.loss or args.params):
        raise ParseError("--initial-point is part of the coordinate-free view: leave out --loss and --params")
    if args.rule in ("simultaneous-gd", "alternating-gd") and args.params:
        if len(args.params) != 2:
            raise ParseError(f"{args.rule} needs --params twice, once per player (got {len(args.params)})")
        options["players"] = tuple(len(parse_symbols(group)) for group in args.params)
    rule = entry.make(**options) if options else default
    if args.trees:
        if values:
            raise ParseError(f"--trees takes no loss constants; unknown hyperparameter(s) {', '.join(values)}")
        return _trees(args, rule)
    if not args.loss and not args.params:
        if values:
            raise ParseError(f"without --loss there are no loss constants to set: {', '.join(values)}")
        return _coordinate_free(args, rule)
    if not args.loss or not args.params:
        raise ParseError("--loss and --params go together (leave both out for the coordinate-free view)")
    params = [p for group in args.params for p in parse_symbols(group)]
    by_name = {p.name: p for p in params}
    losses = [parse_expression(text, by_name) for text in args.loss]
    constants = None if args.constants is None else parse_symbols(args.constants)
    me = modified_equation(
        rule, args.order, losses=losses, params=params, values=values, constants=constants
    )
    loss_terms, loss_note = _modified_loss(me, args.modified_loss)
    if args.format == "json":
        data = me.to_dict()
        if args.modified_loss:
            data["modified_loss"] = None if loss_terms is None else [str(u) for u in loss_terms.terms]
            data["modified_loss_note"] = loss_note
        return json.dumps(data, indent=None)
    if args.format == "latex":
        out = me.latex()
        if loss_terms is not None:
            out += "\n" + loss_terms.latex()
        elif loss_note:
            out += "\n% " + loss_note
        return out
    lines = [f"rule {args.rule}: modified equation to order {me.order} in h, parameters {', '.join(map(str, me.params))}"]
    for l, term in enumerate(me.terms):
        for p, c in zip(me.params, term):
            lines.append(f"f_{l}[{p}] = {c}")
    if loss_terms is not None:
        lines += [f"E~_{l} = {u}" for l, u in enumerate(loss_terms.terms)]
    elif loss_note:
        lines.append(loss_note)
    return "\n".join(lines)


def _verify(args) -> str:
    import jax
    import numpy as np

    from .lowering import require_x64
    from .verify import global_error, local_error
    from .verify import model as make_model

    jax.config.update("jax_enable_x64", True)  # verification is float64 work
    require_x64("bea verify")
    entry = RULES[args.rule]
    default = entry.make()
    fields = {f.name for f in dataclasses.fields(default)} if dataclasses.is_dataclass(default) else set()
    options, values = _split_assignments(entry, fields, args.assignments)
    model = make_model(args.model)
    if args.rule == "sgd-steps":
        raise ParseError("sgd-steps needs batch losses; verify it from Python with a Model of several losses")
    if model.players is not None and args.rule in ("simultaneous-gd", "alternating-gd"):
        options["players"] = model.players
    rule = entry.make(**options) if options else default
    numbers = {}
    for name, value in values.items():
        if not value.is_number:
            raise ParseError(f"--set {name} must be a number for verification, got {value}")
        numbers[name] = value
    if args.order < 0:
        raise ParseError("--order must be >= 0")
    steps = np.geomspace(4e-3, 2.5e-4, 5) if args.h is None else [float(parse_expression(t)) for t in args.h.split(",")]
    results = {"local_error": local_error(rule, model, args.order, step_sizes=steps, values=numbers)}
    if not args.local_only:
        results["global_error"] = global_error(rule, model, args.order, step_sizes=steps, time=args.time, values=numbers)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
        for ax, (kind, result) in zip(axes[0], results.items()):
            result.plot(ax)
            ax.set_title(f"{args.rule} on {args.model}, p = {args.order}: {kind.replace('_', ' ')}")
        figure.tight_layout()
        figure.savefig(args.plot)
    if args.format == "json":
        return json.dumps({"rule": args.rule, "model": args.model, "order": args.order,
                           **{k: v.to_dict() for k, v in results.items()}})
    lines = []
    for kind, r in results.items():
        flagged = [f"h={h:.3g} ({f})" for h, f in zip(r.h, r.flags) if f]
        lines.append(f"{kind.replace('_', ' ')}: slope {r.slope:.3f} (expected {r.expected})"
                     + (f"; left out: {', '.join(flagged)}" if flagged else "") + (f"; {r.note}" if r.note else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bea` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        output = args.handler(args)
    except (BeaError, ValueError, TypeError, ZeroDivisionError) as exc:
        if os.environ.get("BEA_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"bea: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of ours: still one line, with a way to see more
        if os.environ.get("BEA_DEBUG"):
            raise
        print(f"bea: internal error: {type(exc).__name__}: {exc} (rerun with BEA_DEBUG=1 and report it)", file=sys.stderr)
        return 1
    try:
        print(output)
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
