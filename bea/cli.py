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
import re
import sys
from collections.abc import Callable

import sympy as sp

from . import rules as _rules
from ._derive import MAX_SAFE_ORDER, modified_equation
from ._derive_stochastic import MAX_STOCHASTIC_ORDER, stochastic_modified_equation
from ._errors import BeaError, InvalidOrderError, NoStochasticModifiedEquationError, ParseError
from ._parse import check_loss, parse_expression, parse_symbols
from .engines.series._problem import Problem
from .engines.trees._colored_trees import Colored
from .engines.trees._notation import gradient_text
from .engines.trees._trees import level_sequence, tree_coefficients
from .exports import NoModifiedLossError, to_dict
from .exports._cse import common_subexpressions
from .results._elementwise import ElementwiseModifiedEquation
from .rules._composite import _Game
from .rules._stochastic import StochasticRule

__all__ = ["RULES", "main"]


def _with_text_options(make):
    """A stochastic rule from the command line, where --set replacement=true|false (independent=...) is text."""
    def build(replacement: str = "true", **options):
        if "independent" in options:
            options["independent"] = options["independent"] == "true"
        return make(replacement=replacement == "true", **options)

    return build


_sgd = _with_text_options(_rules.SGD)
_BATCH_CHOICES = {"replacement": ("true", "false")}


@dataclasses.dataclass(frozen=True)
class _Entry:
    make: Callable
    help: str
    choices: dict = dataclasses.field(default_factory=dict)  # text-valued options


#: Command-line rule names.
#: Rules with one step per batch loss: n is the number of --loss (or --batches).
_BATCH_RULES = ("sgd-steps", "implicit-sgd-steps")

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
    "implicit-sgd-steps": _Entry(
        _rules.ImplicitSGDSteps, "n implicit (proximal) SGD steps, one per --loss (batch losses E_1..E_n), time n h"
    ),
    "simultaneous-gd": _Entry(
        _rules.SimultaneousGD, "two-player game, simultaneous steps (--loss twice, --params once per player; --set ratio=...)"
    ),
    "alternating-gd": _Entry(
        _rules.AlternatingGD, "two-player game, player 1 then player 2 (--loss twice, --params per player; --set ratio=...)"
    ),
    "extragradient": _Entry(
        _rules.Extragradient, "two-player game, extragradient (--loss twice, --params per player; --set ratio=...)"
    ),
    "optimistic-gd": _Entry(
        _rules.OptimisticGD, "two-player game, optimistic GD on its slow manifold (--loss twice, --params per player)"
    ),
    "flooding": _Entry(
        _rules.flooding_crossing, "two flooding steps across the flood level: ascent then descent (--set kind=backward)",
        {"kind": ("forward", "backward")},
    ),
    "sgd": _Entry(
        _sgd, "SGD on a random batch of the per-example losses, one --loss each (--set batch_size=B "
        "replacement=false); stochastic modified equation",
        _BATCH_CHOICES,
    ),
    "langevin": _Entry(
        _rules.Langevin, "unadjusted Langevin, theta' = theta - h grad E + sqrt(2 h T) xi (--set temperature=T); "
        "stochastic modified equation",
    ),
    "sgd-momentum": _Entry(
        _with_text_options(_rules.SGDMomentum), "SGD with heavy-ball momentum on random batches, Li-Tai-E scaling "
        "h = sqrt(eta), mu = 1 - c h (--set friction=c batch_size=B); SME of (theta, v)", _BATCH_CHOICES,
    ),
    "sgd-nesterov": _Entry(
        _with_text_options(_rules.SGDNesterov), "SGD with Nesterov momentum on random batches, scaling as "
        "sgd-momentum (--set friction=c batch_size=B); SME of (theta, v)", _BATCH_CHOICES,
    ),
    "rmsprop-sde": _Entry(
        _with_text_options(_rules.RMSPropSDE), "RMSProp on random batches in Malladi et al.'s scaling h = eta^2, "
        "1 - beta = c h (--set c=... sigma0=... eps0=...); SME of (theta, u)", _BATCH_CHOICES,
    ),
    "adam-sde": _Entry(
        _with_text_options(_rules.AdamSDE), "Adam on random batches in Malladi et al.'s scaling (--set c1=... c2=... "
        "sigma0=... eps0=...); SME of (theta, m, u)", _BATCH_CHOICES,
    ),
    "sam-sgd": _Entry(
        _with_text_options(_rules.SAMSGD), "SAM on a random batch, ascent and descent on the same batch (--set "
        "rho=... batch_size=B independent=true for separate batches); stochastic modified equation",
        {**_BATCH_CHOICES, "independent": ("true", "false")},
    ),
    **{
        name: _Entry(lambda tableau=tableau: tableau, f"explicit Runge-Kutta map ({name}) of the gradient flow")
        for name, tableau in _rules.TABLEAUS.items()
    },
    "implicit-gd": _Entry(_rules.ImplicitGD, "implicit GD (proximal point), theta' = theta - h grad E(theta')"),
    "implicit-midpoint": _Entry(
        _rules.ImplicitMidpoint, "implicit midpoint, theta' = theta - h grad E((theta + theta')/2)"
    ),
    **{
        name: _Entry(lambda tableau=tableau: tableau, f"implicit Runge-Kutta map ({name}) of the gradient flow")
        for name, tableau in _rules.IMPLICIT_TABLEAUS.items()
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
    derive.add_argument("--field", action="append", metavar="EXPR",
                        help="instead of --loss: one component of a vector field theta' = f(theta), in SymPy syntax; "
                        "repeat once per parameter, in the order of --params (the rule integrates f: gd is "
                        "explicit Euler; write a leading minus as --field=-y)")
    derive.add_argument("--params", action="append", metavar="a,b",
                        help="comma-separated parameter names (repeat once per player in games)")
    derive.add_argument("--order", type=int, required=True, metavar="P", help="derive f_0..f_P (P >= 0)")
    derive.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                        help="fix a hyperparameter or a loss constant (exact: 0.1 means 1/10; finite and real); "
                        "values may use h, e.g. rho=2*h, but not the parameters")
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
    derive.add_argument("--modifying", action="store_true",
                        help="inverse BEA: the modifying field f^ on which the rule follows its own limiting flow "
                             "(every O(h) drift cancelled; with --modified-loss the loss E^ to train on), "
                             "see bea.modifying_equation")
    derive.add_argument("--cse", action="store_true",
                        help="on a loss, with --text or --json: name the shared subexpressions c0, c1, ... once "
                        "(each may use earlier ones) and write f_0..f_P in them, instead of fully expanded "
                        "(JSON: 'subexpressions' as [name, expression] pairs, 'terms' in those names)")
    derive.add_argument("--max-order", type=int, default=MAX_SAFE_ORDER, metavar="N",
                        help=f"the highest --order accepted (default {MAX_SAFE_ORDER}): terms grow combinatorially "
                        "and the series is only asymptotic; raise it to go further on purpose")
    derive.add_argument("--stochastic", action="store_true",
                        help="derive the stochastic modified equation dX = b~ dt + D~^(1/2) dW (drift b_l, "
                        f"diffusion D_l); the default for sgd and langevin, which need --loss and --params "
                        f"(--order at most {MAX_STOCHASTIC_ORDER} unless --max-order is given)")
    derive.add_argument("--generator", action="store_true",
                        help="stochastic rules: also give the modified generator L_0, L_1, ... with every term, "
                        "also beyond the order where an SDE matches (its terms of differential order >= 3)")
    form = derive.add_mutually_exclusive_group()
    form.add_argument("--json", dest="format", action="store_const", const="json", help="one JSON object")
    form.add_argument("--latex", dest="format", action="store_const", const="latex", help="a LaTeX display formula")
    form.add_argument("--text", dest="format", action="store_const", const="text", help="plain text (default)")
    derive.set_defaults(format="text", handler=_derive)

    from .verify._command import add_parser as add_verify_parser

    add_verify_parser(sub, RULES, _verify)
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
        else:
            try:
                value = parse_expression(text)
            except ParseError as exc:  # say which --set it was
                raise ParseError(f"--set {name}: {exc}") from None
            (options if name in rule_fields else values)[name] = value
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


def _coefficient_times(c, text: str) -> str:
    """'E' for 1 * E and '-E' for -1 * E (not '(1) E'); '(c) text' otherwise."""
    return text if c == 1 else f"-{text}" if c == -1 else f"({c}) {text}"


def _coordinate_free(args, rule) -> str:
    if args.modifying and (args.small or args.initial_point):
        raise ParseError("--modifying takes neither --small nor --initial-point")
    if args.modifying:
        from ._modifying import modifying_equation

        cf = modifying_equation(rule, args.order, max_order=args.max_order)
    else:
        cf = modified_equation(rule, args.order, small=args.small, max_order=args.max_order)
    if args.initial_point:
        return _initial_point(args, cf)
    loss, note = _modified_loss(cf, args.modified_loss)
    if args.format == "json":
        data = {"rule": args.rule, "order": args.order,
                "view": "coordinate-free modifying" if args.modifying else "coordinate-free"}
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
        lines += [f"E~_{l} = " + " + ".join(_coefficient_times(c, text) for c, _, text in piece)
                  for l, piece in enumerate(loss)]
    elif note:
        lines.append(note)
    return "\n".join(lines)


def _named_like_fields(default, options: dict) -> dict:
    """`options` plus each symbolic hyperparameter left at its default, renamed after its field
    (FiniteDifferenceGR's, RMSProp's and Adam's Symbol('epsilon') becomes eps, keeping its assumptions),
    so that the output, --set NAME= and --small NAME all use the one name the CLI documents."""
    if not dataclasses.is_dataclass(default):
        return options
    renamed = {}
    for field in dataclasses.fields(default):
        value = getattr(default, field.name, None)
        if field.init and field.name not in options and isinstance(value, sp.Symbol) and value.name != field.name:
            renamed[field.name] = sp.Symbol(field.name, **value.assumptions0)
    return {**options, **renamed}


def _check_assignments(options: dict, values: dict, params) -> None:
    """--set values are hyperparameters and loss constants: they may not name or contain the parameters."""
    names = {p.name for p in params}
    for name, value in [*values.items(), *options.items()]:
        if name in names:
            raise ParseError(f"--set {name}=...: {name} is a parameter (--params); only hyperparameters and loss "
                             "constants take values")
        used = sorted(s.name for s in getattr(value, "free_symbols", ()) if s.name in names)
        if used:
            raise ParseError(
                f"--set {name}={value}: a value may not contain the parameters ({', '.join(used)}), which would "
                "change the loss's dependence on them; write the loss in the parameters directly"
            )


def _cse_lines(me) -> list[str]:
    """Text of --cse: the shared subexpressions, then f_l[p] written in them."""
    flat = [c for term in me.terms for c in term]
    subexpressions, reduced = common_subexpressions(flat, taken=[*me.params, *me.symbols])
    lines = [f"{name} = {value}" for name, value in subexpressions]
    n = len(me.params)
    for l in range(len(me.terms)):
        lines += [f"f_{l}[{p}] = {c}" for p, c in zip(me.params, reduced[l * n:(l + 1) * n])]
    return lines


def _losses(args, rule, params, values) -> list:
    """The --loss expressions, checked as the engine will see them (with the --set values in)."""
    by_name = {p.name: p for p in params}
    losses = [parse_expression(text, by_name) for text in args.loss]
    hyperparameters = {s.name for s in rule.free_symbols}
    for k, loss in enumerate(losses):
        clash = sorted({s.name for s in loss.free_symbols} & hyperparameters)
        if clash:  # by name: the rule's symbols may carry assumptions (eps > 0) that the loss's lack
            raise ParseError(f"the loss uses {', '.join(clash)}, which {args.rule} uses as a hyperparameter "
                             f"(--set {clash[0]}=...); rename it in the loss")
        substituted = loss.xreplace({s: values[s.name] for s in loss.free_symbols if s.name in values})
        check_loss(substituted, params, "the loss" if len(losses) == 1 else f"loss {k + 1} (--loss {args.loss[k]!r})")
    return losses


#: Views of a deterministic modified field, which a stochastic rule does not have: (attribute, flag).
_DETERMINISTIC_VIEWS = (("trees", "--trees"), ("modified_loss", "--modified-loss"), ("initial_point", "--initial-point"),
                        ("small", "--small"), ("batches", "--batches"), ("cse", "--cse"))


def _stochastic(args, entry: _Entry, default) -> str:
    """`bea derive sgd|langevin`: the stochastic modified equation (drift b_l, diffusion D_l) on the losses."""
    name = args.rule
    for attribute, flag in _DETERMINISTIC_VIEWS:
        if getattr(args, attribute):
            raise ParseError(f"{name} is stochastic and has no {flag} view: it derives a stochastic modified "
                             f"equation (drift and diffusion); drop {flag}")
    limit = MAX_STOCHASTIC_ORDER if args.max_order == MAX_SAFE_ORDER else args.max_order
    if args.order > limit:
        raise InvalidOrderError(f"--order {args.order} is above {limit} for stochastic rules: operator compositions "
                                f"grow quickly; pass --max-order {args.order} to go further on purpose")
    options, values = _split_assignments(entry, {f.name for f in dataclasses.fields(default)}, args.assignments)
    given = dict(options)
    rule = entry.make(**_named_like_fields(default, options))
    if not args.loss and not args.params:
        return _stochastic_coordinate_free(args, rule, values, limit)
    if not args.loss or not args.params:
        raise ParseError(f"{name} is stochastic: give --loss ({'one per example' if name == 'sgd' else 'once'}) and "
                         "--params, or neither for the coordinate-free view (sgd, langevin)")
    params = [p for group in args.params for p in parse_symbols(group)]
    _check_assignments(given, values, params)
    losses = _losses(args, rule, params, values)
    if isinstance(rule, _rules.Langevin) and len(losses) != 1:
        raise ParseError(f"langevin takes one --loss, got {len(losses)}; give their mean, or use sgd (one --loss "
                         "per example)")
    if isinstance(rule, _rules.SGD) and not rule.replacement and rule.batch_size > len(losses):
        raise ParseError(f"--set batch_size={rule.batch_size} is more than the {len(losses)} --loss given, which "
                         "sampling without replacement cannot draw; lower batch_size or drop --set replacement=false")
    if args.constants is not None:  # only its check: the --set values are in, as the engine will see them
        substituted = [loss.xreplace({s: values[s.name] for s in loss.free_symbols if s.name in values})
                       for loss in losses]
        Problem.build(substituted, params, reserved=rule.free_symbols, constants=parse_symbols(args.constants))
    try:
        sme = stochastic_modified_equation(rule, args.order, losses=losses, params=params, values=values,
                                           allow_generator=args.generator, max_order=limit)
    except NoStochasticModifiedEquationError as exc:  # name the flags, not the Python keywords
        message = re.sub(r"use order=(\d+), or pass allow_generator=True", r"use --order \1, or pass --generator",
                         str(exc))
        raise NoStochasticModifiedEquationError(message) from None
    obstruction = sme.obstruction
    if args.format == "json":
        return json.dumps(sme.to_dict())
    if args.format == "latex":
        out = sme.latex()
        if args.generator:
            out += "\n" + sme.generator_latex()
        if obstruction is not None:
            out += f"\n% no SDE beyond order {obstruction.order - 1}: {obstruction.text(sme.params)}"
        return out
    lines = [f"rule {name}: stochastic modified equation dX = b~ dt + D~^(1/2) dW to order {sme.order} in h, "
             f"parameters {', '.join(map(str, sme.params))}", sme.text()]
    if args.generator:
        lines.append(sme.generator_text())
    return "\n".join(lines)


def _stochastic_coordinate_free(args, rule, values: dict, limit: int) -> str:
    """`bea derive sgd|langevin` without --loss/--params: drift, diffusion and generator in grad E, Sigma, kappa_3, ..."""
    if args.constants is not None:
        raise ParseError("--constants is for losses (--loss); the coordinate-free view has no loss constants")
    if not isinstance(rule, (_rules.SGD, _rules.Langevin)):
        raise ParseError(f"{args.rule} has no coordinate-free stochastic modified equation here (sgd and langevin "
                         "do); give --loss (one per example) and --params")
    try:
        sme = stochastic_modified_equation(rule, args.order, values=values, allow_generator=args.generator,
                                           max_order=limit)
    except NoStochasticModifiedEquationError as exc:  # name the flags, not the Python keywords
        message = re.sub(r"use order=(\d+), or pass allow_generator=True", r"use --order \1, or pass --generator",
                         str(exc))
        raise NoStochasticModifiedEquationError(message) from None
    if args.format == "json":
        return json.dumps(sme.to_dict())
    if args.format == "latex":
        return sme.latex() + ("\n" + sme.generator_latex() if args.generator else "")
    lines = [f"rule {args.rule}: stochastic modified equation dX = b~ dt + D~^(1/2) dW to order {sme.order} in h, "
             "coordinate-free (E the mean loss, Sigma the covariance of the per-example gradients, kappa_k their "
             "cumulants)", sme.text()]
    if args.generator:
        lines.append(sme.generator_text())
    return "\n".join(lines)


def _on_field(args) -> str:
    """`bea derive RULE --field F1 --field F2 --params u,v`: the modified equation of the rule applied to u' = F1, ..."""
    if args.loss:
        raise ParseError("give --loss or --field, not both: --field describes the flow theta' = f(theta) itself")
    if not args.params:
        raise ParseError("--field needs --params: one parameter per --field, in the same order")
    for value, flag in ((args.trees, "--trees"), (args.small, "--small"), (args.initial_point, "--initial-point"),
                        (args.batches is not None, "--batches"), (args.stochastic, "--stochastic"),
                        (args.generator, "--generator")):
        if value:
            raise ParseError(f"{flag} is not available with --field (a general vector field has no loss)")
    entry = RULES[args.rule]
    default = entry.make()
    if isinstance(default, StochasticRule) or getattr(default, "n_losses", 1) != 1:
        raise ParseError(f"--field takes rules of one loss (gd, euler, midpoint, rk4, heavy-ball, ...); {args.rule} "
                         "takes several or is stochastic: use the Python API, modified_equation(rule, p, fields=[...])")
    fields = {f.name for f in dataclasses.fields(default)} if dataclasses.is_dataclass(default) else set()
    options, values = _split_assignments(entry, fields, args.assignments)
    given = dict(options)
    rule = entry.make(**_named_like_fields(default, options)) if options else default
    params = [p for group in args.params for p in parse_symbols(group)]
    _check_assignments(given, values, params)
    by_name = {p.name: p for p in params}
    field = [parse_expression(text, by_name) for text in args.field]
    constants = None if args.constants is None else parse_symbols(args.constants)
    me = modified_equation(rule, args.order, field=field, params=params, values=values, constants=constants,
                           max_order=args.max_order)
    return _concrete_output(args, me)


def _derive(args) -> str:
    if args.order > args.max_order:  # before any work; the engine's message names its Python keyword
        raise InvalidOrderError(
            f"--order {args.order} is above --max-order {args.max_order}: the number of terms grows combinatorially "
            f"and the series is only asymptotic; pass --max-order {args.order} to go further on purpose"
        )
    if args.field:
        return _on_field(args)
    if args.cse and not (args.loss or args.params):
        raise ParseError("--cse is for terms on a loss (--loss, --params); the coordinate-free view is already factored")
    if args.cse and args.format == "latex":
        raise ParseError("--cse is available with --text and --json, not --latex")
    entry = RULES[args.rule]
    default = entry.make()
    if isinstance(default, StochasticRule):
        return _stochastic(args, entry, default)
    if args.stochastic:
        raise ParseError(f"--stochastic: {args.rule} has no randomness: use sgd or langevin")
    if args.generator:
        raise ParseError(f"--generator is for stochastic rules (sgd, langevin); {args.rule} has a modified field")
    fields = {f.name for f in dataclasses.fields(default)} if dataclasses.is_dataclass(default) else set()
    options, values = _split_assignments(entry, fields, args.assignments)
    given = dict(options)
    options = _named_like_fields(default, options)
    if args.rule in _BATCH_RULES:
        if args.batches is not None and args.loss and args.batches != len(args.loss):
            raise ParseError(f"--batches {args.batches} but {len(args.loss)} --loss given")
        if args.batches is not None and args.batches < 1:
            raise ParseError(f"--batches must be positive, got {args.batches}")
        options["n"] = len(args.loss or ()) or args.batches or 2
    elif args.batches is not None:
        raise ParseError("--batches is for sgd-steps and implicit-sgd-steps")
    if args.small and (args.loss or args.params):
        raise ParseError("--small is for the coordinate-free view (on a loss the engine is exact in every hyperparameter)")
    if args.initial_point and (args.loss or args.params):
        raise ParseError("--initial-point is part of the coordinate-free view: leave out --loss and --params")
    if isinstance(default, _Game) and args.params:
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
    _check_assignments(given, values, params)
    losses = _losses(args, rule, params, values)
    constants = None if args.constants is None else parse_symbols(args.constants)
    if args.modifying:
        from ._modifying import modifying_equation

        if args.rule in ("simultaneous-gd", "alternating-gd"):
            params = [parse_symbols(group) for group in args.params]
        me = modifying_equation(rule, args.order, losses=losses, params=params, values=values, constants=constants,
                                max_order=args.max_order)
        return _concrete_output(args, me)
    me = modified_equation(
        rule, args.order, losses=losses, params=params, values=values, constants=constants, max_order=args.max_order
    )
    return _concrete_output(args, me)


def _concrete_output(args, me) -> str:
    """--json, --latex or text of a concrete modified equation (on losses or on a field)."""
    loss_terms, loss_note = _modified_loss(me, args.modified_loss)
    if args.format == "json":
        data = me.to_dict() if not args.cse else to_dict(me, cse=True)
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
    what = "modifying field f^" if getattr(args, "modifying", False) else "modified equation"
    lines = [f"rule {args.rule}: {what} to order {me.order} in h, parameters {', '.join(map(str, me.params))}"]
    if args.cse:
        lines += _cse_lines(me)
    else:
        name = "f^" if getattr(args, "modifying", False) else "f"
        lines += [f"{name}_{l}[{p}] = {c}" for l, term in enumerate(me.terms) for p, c in zip(me.params, term)]
    if loss_terms is not None:
        loss_name = "E^" if getattr(args, "modifying", False) else "E~"
        lines += [f"{loss_name}_{l} = {u}" for l, u in enumerate(loss_terms.terms)]
    elif loss_note:
        lines.append(loss_note)
    return "\n".join(lines)


def _verify(args):
    """`bea verify`: see bea/verify/_command.py (inputs checked before any work; exit 1 when a slope is off)."""
    from .verify._command import run

    if args.stochastic:
        from .verify._stochastic_command import run_stochastic

        return run_stochastic(args, RULES, _split_assignments, _Entry)
    if args.rule in RULES and isinstance(RULES[args.rule].make(), StochasticRule):
        raise ParseError(f"{args.rule} is stochastic: add --stochastic to verify its stochastic modified equation "
                         f"on a finite-sum model (bea verify {args.rule} --stochastic --model linear-regression "
                         f"--order 1), or derive it with bea derive {args.rule}")
    return run(args, RULES, _split_assignments, _Entry)


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
    # A handler may return an outcome with an exit status (bea verify: 1 when a slope is off the expected one).
    status, summary = getattr(output, "status", 0), getattr(output, "summary", "")
    try:
        print(getattr(output, "output", output))
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if summary:
        print(f"bea: {summary}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
