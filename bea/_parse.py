"""Parsing expressions given as text (command line, JSON), strictly.

Every name that is not called is a symbol, so hyperparameter-like names such as
`gamma`, `beta` or `E` are symbols rather than SymPy's gamma function, beta
function or Euler's number. Called names must be SymPy functions.
"""

from __future__ import annotations

import io
import keyword
import tokenize

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

from ._errors import ParseError

__all__ = ["parse_expression", "parse_symbols"]

_CONSTANTS = {"pi": sp.pi}
_FUNCTION_HELPERS = (sp.sqrt, sp.root, sp.cbrt, sp.Rational, sp.Integer)


def _names(text: str) -> tuple[set[str], set[str]]:
    """Names used as variables, and names called as functions."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise ParseError(f"cannot parse {text!r}: {exc}") from None
    variables, called = set(), set()
    for tok, nxt in zip(tokens, tokens[1:] + [None]):
        if tok.type == tokenize.NAME:
            if keyword.iskeyword(tok.string) or tok.string.startswith("_"):
                raise ParseError(f"cannot parse {text!r}: {tok.string!r} is not allowed in an expression")
            if nxt is not None and nxt.string == "(":
                called.add(tok.string)
            else:
                variables.add(tok.string)
        elif tok.type == tokenize.OP and tok.string in (";", ":", "=", "[", "]", "{", "}", ".", "@", ":="):
            raise ParseError(f"cannot parse {text!r}: unexpected {tok.string!r}")
    return variables, called


def parse_expression(text: str, symbols: dict[str, sp.Symbol] | None = None) -> sp.Expr:
    """Parse a scalar expression; names map to `symbols` when given there, else to new symbols."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("an expression is empty")
    text = text.replace("^", "**")
    variables, called = _names(text)
    local = {name: sp.Symbol(name) for name in variables if name not in _CONSTANTS}
    local.update({k: v for k, v in (symbols or {}).items() if k in variables})
    local.update({k: v for k, v in _CONSTANTS.items() if k in variables})
    for name in called:
        function = getattr(sp, name, None)
        if not (isinstance(function, sp.FunctionClass) or function in _FUNCTION_HELPERS):
            raise ParseError(
                f"cannot parse {text!r}: {name}(...) is not a SymPy function "
                "(use exp, log, tanh, sqrt, ...; ReLU is Max(0, x), which is not smooth)"
            )
    try:
        expr = parse_expr(text, local_dict=local, transformations=standard_transformations, evaluate=True)
    except Exception as exc:  # parse_expr raises many types (SyntaxError, TypeError, TokenError, ...)
        raise ParseError(f"cannot parse {text!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(expr, sp.Expr):
        raise ParseError(f"{text!r} is not a scalar expression (got {type(expr).__name__})")
    return expr


def parse_symbols(text: str) -> list[sp.Symbol]:
    """'a,b,c' -> [a, b, c]."""
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ParseError(f"{name!r} in {text!r} is not a valid parameter name; use a comma-separated list like a,b")
    return [sp.Symbol(n) for n in names]
