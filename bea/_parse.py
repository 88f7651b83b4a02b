"""Parsing expressions given as text (command line, JSON), strictly and with bounded work.

Every name that is not called is a symbol, so hyperparameter-like names such as
`gamma`, `beta` or `E` are symbols rather than SymPy's gamma function, beta
function or Euler's number; `pi` is the number pi. Decimals are exact: `0.5` is
1/2 and `1e-3` is 1/1000, in a loss, a `--set` value or anywhere else.

Text is parsed without evaluating (`evaluate=False`), then rebuilt bottom-up, and
every number, power and function call is checked *before* SymPy evaluates it, so
that no input makes the parser hang or exhaust memory (`10**10**10`, `9**9**9`,
`factorial(10**9)` are refused in microseconds). The limits, and why:

- `MAX_TEXT_LENGTH` characters per expression.
- `MAX_NUMBER_DIGITS` digits in any integer, numerator or denominator, written or
  computed (about the range 1e-100..1e100): larger ones serve no loss and make
  exact arithmetic slow (a square root of a 1000-digit integer takes a second).
- `MAX_EXPONENT` for integer exponents and for the numerator and denominator of
  rational ones: powers are expanded exactly, so `a**100000` makes terms of
  degree 10**5 (ten seconds for a first-order modified loss), `a**(10**8)` never ends.
- `MAX_EXACT_ARGUMENT` for numbers given to functions that SymPy evaluates
  exactly on numbers (factorial, binomial, gamma, ...).
- Only the functions in `FUNCTIONS` may be called: the smooth elementary ones, a few
  special functions, and the non-smooth ones (Abs, Max, ...) so that the smoothness
  check can name them and suggest a smooth replacement. Special polynomials
  (legendre, jacobi, ...) are left out: SymPy expands them, at a cost that grows
  with their degree.

Non-finite values (`inf`, `nan`, `oo`, `zoo`, or `1/0`) and complex ones (`I`,
`1j`, `sqrt(-1)`) are refused: losses and hyperparameters are finite real numbers.

`check_loss` adds what needs the parameters: a loss whose expanded form would be too
large (`MAX_EXPANDED_TERMS`), and fractional powers that are not smooth where their
base vanishes (`sqrt(a**2)` is |a|); see `check_loss`.
"""

from __future__ import annotations

import decimal
import io
import keyword
import math
import tokenize

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.parsing.sympy_parser import auto_number, auto_symbol, parse_expr, rationalize

from ._errors import NonSmoothLossError, ParseError, UnsupportedError

__all__ = [
    "FUNCTIONS",
    "MAX_EXACT_ARGUMENT",
    "MAX_EXPANDED_TERMS",
    "MAX_EXPONENT",
    "MAX_NUMBER_DIGITS",
    "MAX_TEXT_LENGTH",
    "check_loss",
    "estimated_terms",
    "parse_expression",
    "parse_symbols",
]

#: Longest expression accepted, in characters.
MAX_TEXT_LENGTH = 10_000
#: Most digits of an integer, numerator or denominator (written or computed while parsing).
MAX_NUMBER_DIGITS = 100
#: Largest integer exponent, and largest numerator and denominator of a rational exponent.
MAX_EXPONENT = 1000
#: Largest number given to a function that SymPy evaluates exactly (factorial, gamma, binomial, ...).
MAX_EXACT_ARGUMENT = 1000
#: Most terms a loss may have once fully expanded (an upper estimate, `estimated_terms`): the
#: engine works on expanded polynomials; (a + x + y)**729 would have 266,815 terms (minutes at order 0).
MAX_EXPANDED_TERMS = 10_000

_CONSTANTS = {"pi": sp.pi}
_NON_FINITE = (sp.nan, sp.zoo, sp.oo, -sp.oo)
#: Names that would read as infinities or NaN (SymPy's oo, zoo, nan; Python's inf).
_NON_FINITE_NAMES = {"inf", "infinity", "oo", "zoo", "nan"}
_OPERATORS = {"+", "-", "*", "/", "**", "(", ")", ","}
#: Names in the code the parser generates (numbers become Integer(...), a*b becomes Mul(a, b, evaluate=False)).
_GENERATED_NAMES = {"Integer", "Float", "Rational", "Add", "Mul", "Pow"}

_SMOOTH = (
    "exp", "log", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "asec", "acsc",
    "sinh", "cosh", "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh", "acoth", "asech", "acsch",
    "erf", "erfc", "erfi",
)
#: Evaluated exactly on numbers, at a cost that grows with them: numeric arguments are bounded.
_EXACT = ("factorial", "binomial", "gamma", "loggamma", "digamma", "polygamma")
#: Not smooth: parsed so that the smoothness check can name them and suggest a replacement.
_NON_SMOOTH = (
    "Abs", "Max", "Min", "Heaviside", "sign", "floor", "ceiling", "frac", "DiracDelta", "Mod",
    "re", "im", "arg", "conjugate",
)
#: Written as calls, built as powers: sqrt(x) = x**(1/2), cbrt(x) = x**(1/3), root(x, n) = x**(1/n).
_ROOTS = {"sqrt": sp.sqrt, "cbrt": sp.cbrt, "root": sp.root}
#: Every function an expression may call, by name.
FUNCTIONS: dict[str, object] = {
    **{name: getattr(sp, name) for name in _SMOOTH + _EXACT + _NON_SMOOTH},
    **_ROOTS,
}
_FUNCTION_LIST = "exp, log, sqrt, cbrt, root, sin, cos, tan, sinh, cosh, tanh, erf, their inverses, gamma, loggamma"


def _digits(n: int) -> int:
    """Decimal digits of |n|; estimated from the bit length where text would be long (Python refuses above 4300 digits)."""
    n = abs(int(n))
    return len(str(n)) if n.bit_length() < 4000 else math.ceil(n.bit_length() * math.log10(2))


def _short(expr, width: int = 40) -> str:
    """An expression for a message, cut to `width` characters (numbers by their digit count when long)."""
    if isinstance(expr, sp.Rational) and max(_digits(expr.p), _digits(expr.q)) > width:
        return f"a {max(_digits(expr.p), _digits(expr.q))}-digit number"
    text = str(expr)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_literal(token: str, text: str) -> None:
    """A number as written: real, and within MAX_NUMBER_DIGITS (checked before anything converts it)."""
    plain = token.replace("_", "").lower()
    if plain.endswith("j"):
        raise ParseError(f"cannot parse {text!r}: {token} is imaginary; losses and values must be real")
    too_big = ParseError(
        f"cannot parse {text!r}: the number {token[:30]}{'...' if len(token) > 30 else ''} has more than "
        f"{MAX_NUMBER_DIGITS} digits or an exponent beyond 1e±{MAX_NUMBER_DIGITS}; numbers are limited to "
        f"that range so that exact arithmetic stays fast"
    )
    if plain.startswith(("0x", "0o", "0b")):
        if len(plain) > 4 * MAX_NUMBER_DIGITS or _digits(int(plain, 0)) > MAX_NUMBER_DIGITS:
            raise too_big
        return
    if len(plain) > 4 * MAX_NUMBER_DIGITS:
        raise too_big
    try:
        value = decimal.Decimal(plain)
    except decimal.InvalidOperation:  # the tokenizer read a number: its exponent is beyond Decimal's range
        raise too_big from None
    if value == 0:
        return
    sign, digits, exponent = value.as_tuple()
    # The exact Rational has about len(digits) + |exponent| digits in its numerator or denominator.
    if abs(value.adjusted()) > MAX_NUMBER_DIGITS or len(digits) + max(0, -exponent) > MAX_NUMBER_DIGITS + 1:
        raise too_big


def _names(text: str) -> tuple[set[str], set[str]]:
    """Names used as variables, and names called as functions; refuses anything else that is not arithmetic."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except tokenize.TokenError:
        raise ParseError(f"cannot parse {text!r}: a parenthesis is not closed") from None
    except (IndentationError, SyntaxError) as exc:
        raise ParseError(f"cannot parse {text!r}: {exc.msg}") from None
    variables, called = set(), set()
    skip = (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)
    for tok, nxt in zip(tokens, tokens[1:] + [None]):
        if tok.type == tokenize.NAME:
            name = tok.string
            if keyword.iskeyword(name) or name.startswith("_") or not name.isidentifier():
                raise ParseError(f"cannot parse {text!r}: {name!r} is not allowed in an expression")
            if name.lower() in _NON_FINITE_NAMES:
                raise ParseError(
                    f"cannot parse {text!r}: {name} would be infinite or not a number; losses and values "
                    "must be finite (use a finite number, or rename the symbol)"
                )
            if name in _GENERATED_NAMES:
                raise ParseError(
                    f"cannot parse {text!r}: {name} is a name the parser itself uses (SymPy's {name}); rename the symbol"
                )
            if name == "I":
                raise ParseError(
                    f"cannot parse {text!r}: I is SymPy's imaginary unit and losses and values must be real "
                    "(rename a real constant called I)"
                )
            if nxt is not None and nxt.string == "(":
                called.add(name)
            else:
                variables.add(name)
        elif tok.type == tokenize.NUMBER:
            _check_literal(tok.string, text)
        elif tok.type == tokenize.OP and tok.string in _OPERATORS:
            continue
        elif tok.type in skip:
            continue
        elif tok.type == tokenize.STRING:
            raise ParseError(f"cannot parse {text!r}: quoted text {tok.string[:20]!r} is not allowed in an expression")
        else:
            raise ParseError(
                f"cannot parse {text!r}: unexpected {tok.string!r} (expressions use numbers, names, "
                "+ - * / ** ^, parentheses and function calls)"
            )
    return variables, called


class _Builder:
    """Rebuilds an unevaluated parse tree bottom-up, checking sizes before SymPy evaluates anything."""

    def __init__(self, text: str, placeholders: dict):
        self.text = text
        self.placeholders = placeholders  # placeholder function class -> function name
        self.checked: set = set()

    def fail(self, why: str) -> ParseError:
        return ParseError(f"cannot parse {self.text!r}: {why}")

    def build(self, node):
        if node.is_Atom:
            self.check_result(node)
            return node
        args = [self.build(arg) for arg in node.args]
        if isinstance(node, AppliedUndef) and node.func in self.placeholders:
            name = self.placeholders[node.func]
            self.check_call(name, args)
            function = FUNCTIONS[name]
        elif isinstance(node, sp.Pow):
            self.check_power(*args)
            function = sp.Pow
        elif isinstance(node, (sp.Add, sp.Mul)):
            function = node.func
        else:  # pragma: no cover - the grammar above makes only these
            raise self.fail(f"unexpected {type(node).__name__}")
        try:
            result = function(*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None
        self.check_result(result)
        return result

    def check_power(self, base, exponent) -> None:
        if exponent.is_Rational:
            p, q = int(exponent.p), int(exponent.q)
            if abs(p) > MAX_EXPONENT or q > MAX_EXPONENT:
                shown = str(exponent) if _digits(p) + _digits(q) <= 40 else f"of {_digits(p)}/{_digits(q)} digits"
                raise self.fail(
                    f"the exponent {shown} is beyond {MAX_EXPONENT} (integer exponents, and numerators and "
                    f"denominators of fractional ones, are limited to {MAX_EXPONENT}: powers are expanded "
                    "exactly, so larger ones make terms too large to derive)"
                )
            if base.is_zero and exponent.is_negative:
                raise self.fail("division by zero (0 to a negative power)")
            if base.is_Rational and base != 0:
                # Checked again exactly once computed; this estimate only keeps huge powers from being computed.
                digits = abs(p / q) * math.log10(max(abs(int(base.p)), int(base.q)))
                if digits > MAX_NUMBER_DIGITS + 1:
                    raise self.fail(
                        f"{_short(base)}**({exponent}) is a number of about {int(digits)} digits; numbers are limited to "
                        f"{MAX_NUMBER_DIGITS} digits so that exact arithmetic stays fast"
                    )

    def check_call(self, name: str, args) -> None:
        if name in _EXACT:
            for arg in args:
                if arg.is_Rational and (abs(arg) > MAX_EXACT_ARGUMENT or arg.q > MAX_EXACT_ARGUMENT):
                    raise self.fail(
                        f"{name}(...) of a number beyond {MAX_EXACT_ARGUMENT}: SymPy evaluates {name} exactly, "
                        "and the result would have too many digits"
                    )
        if name == "root" and len(args) >= 2:
            if len(args) > 2:
                raise self.fail("root(x, n, k) with a branch k is complex; use root(x, n)")
            if not args[1].is_Rational or args[1] == 0:
                raise self.fail("root(x, n) needs a nonzero rational n")
            self.check_power(args[0], 1 / args[1])

    def check_result(self, expr) -> None:
        for node in sp.preorder_traversal(expr, keys=None):
            if node in self.checked:
                continue
            self.checked.add(node)
            if isinstance(node, sp.Rational):
                if max(_digits(int(node.p)), _digits(int(node.q))) > MAX_NUMBER_DIGITS:
                    raise self.fail(
                        f"a number of about {max(_digits(int(node.p)), _digits(int(node.q)))} digits came out; "
                        f"numbers are limited to {MAX_NUMBER_DIGITS} digits so that exact arithmetic stays fast"
                    )
            elif node.is_Atom and node in _NON_FINITE:
                raise self.fail(f"it evaluates to {node}, which is not a finite number")
            elif node is sp.I:
                raise self.fail("it is complex (contains the imaginary unit I); losses and values must be real")
            elif isinstance(node, sp.Float):  # pragma: no cover - rationalize turns every decimal into a Rational
                raise self.fail("it contains a float; write exact numbers")


def parse_expression(text: str, symbols: dict[str, sp.Symbol] | None = None) -> sp.Expr:
    """Parse a scalar expression; names map to `symbols` when given there, else to new symbols.

    Decimals become exact rationals; sizes are checked before anything is evaluated (see the
    module docstring for the limits). Raises `ParseError` with a one-line message.
    """
    if not isinstance(text, str) or not text.strip():
        raise ParseError("an expression is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise ParseError(f"an expression of {len(text)} characters is longer than the {MAX_TEXT_LENGTH} accepted")
    text = text.replace("^", "**")
    variables, called = _names(text)
    both = variables & called
    if both:
        name = sorted(both)[0]
        raise ParseError(f"cannot parse {text!r}: {name} is used both as a name and as a function")
    local = {name: sp.Symbol(name) for name in variables if name not in _CONSTANTS}
    local.update({k: v for k, v in (symbols or {}).items() if k in variables})
    local.update({k: v for k, v in _CONSTANTS.items() if k in variables})
    placeholders = {}
    for name in called:
        if name not in FUNCTIONS:
            kind = "not a SymPy function" if not isinstance(getattr(sp, name, None), sp.FunctionClass) else (
                "not among the functions bea parses"
            )
            raise ParseError(
                f"cannot parse {text!r}: {name}(...) is {kind} (use {_FUNCTION_LIST}; "
                "ReLU is Max(0, x), which is not smooth)"
            )
        # Inert while parsing: the real function is applied by _Builder once its arguments are checked.
        placeholder = sp.Function(name)
        local[name] = placeholder
        placeholders[placeholder] = name
    try:
        raw = parse_expr(text, local_dict=local, transformations=(auto_symbol, auto_number, rationalize),
                         evaluate=False)
    except SyntaxError as exc:
        raise ParseError(f"cannot parse {text!r}: {exc.msg} (check the operators and parentheses)") from None
    except Exception as exc:  # parse_expr raises many types (TypeError, TokenError, RecursionError, ...)
        message = " ".join(str(exc).split())[:200]
        raise ParseError(f"cannot parse {text!r}: {type(exc).__name__}: {message}") from None
    if not isinstance(raw, sp.Expr):
        raise ParseError(f"{text!r} is not a scalar expression (got {type(raw).__name__})")
    try:
        expr = _Builder(text, placeholders).build(raw)
    except RecursionError:
        raise ParseError(f"cannot parse {text!r}: it is nested too deeply") from None
    if not isinstance(expr, sp.Expr) or expr.is_Boolean:
        raise ParseError(f"{text!r} is not a scalar expression (got {type(expr).__name__})")
    _check_real(expr, ParseError, f"cannot parse {text!r}: it")
    return expr


def parse_symbols(text: str) -> list[sp.Symbol]:
    """'a,b,c' -> [a, b, c]."""
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ParseError(f"{name!r} in {text!r} is not a valid parameter name; use a comma-separated list like a,b")
    return [sp.Symbol(n) for n in names]


# -- checks that need the whole loss and its parameters ----------------------------------------------


def _check_real(expr: sp.Expr, error: type, what: str) -> None:
    """Refuse non-finite numbers and visibly complex numeric parts (I, asin(2), (-1)**(1/3))."""
    bad = [str(value) for value in _NON_FINITE if expr.has(value)]
    if bad:
        raise error(f"{what} is not finite (it contains {', '.join(bad)}); losses and values must be finite")
    if expr.has(sp.I):
        raise error(f"{what} is complex (it contains the imaginary unit I); losses and values must be real")
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Pow, sp.Function)) and node.is_number and node.is_extended_real is False:
            raise error(f"{what} is complex ({node} is not a real number); losses and values must be real")


def estimated_terms(expr: sp.Expr, sizes: dict | None = None, cap: int = 10**9) -> int:
    """An upper estimate of the number of terms of `expr` fully expanded (capped at `cap`).

    A sum adds, a product multiplies, a power (s terms)**n has at most binomial(s + n - 1, n)
    (the monomials of degree n in s variables); a function counts its arguments' terms.
    `sizes` gives the estimate for symbols that stand for larger expressions (substituted values).
    """
    sizes = sizes or {}
    memo: dict = {}

    def terms(e) -> int:
        if e in memo:
            return memo[e]
        if e.is_Atom:
            out = sizes.get(e, 1)
        elif isinstance(e, sp.Add):
            out = sum(terms(a) for a in e.args)
        elif isinstance(e, sp.Mul):
            out = 1
            for a in e.args:
                out = min(cap, out * terms(a))
        elif isinstance(e, sp.Pow) and e.exp.is_Integer:
            out = _monomials(terms(e.base), abs(int(e.exp)), cap)
        elif isinstance(e, sp.Pow):
            out = terms(e.base) + terms(e.exp) - 1
        else:
            out = max(1, sum(terms(a) for a in e.args))
        memo[e] = out = min(cap, out)
        return out

    return terms(sp.sympify(expr))


def _monomials(s: int, n: int, cap: int) -> int:
    """binomial(s + n - 1, n), the monomials of degree n in s variables, capped (lgamma first: n may be huge)."""
    if s <= 1 or n == 0:
        return 1
    if math.lgamma(s + n) - math.lgamma(n + 1) - math.lgamma(s) > math.log(cap):
        return cap
    return min(cap, math.comb(s + n - 1, n))


def _degree(expr, param) -> int | None:
    """Degree of a polynomial in `param` (None when not a polynomial in it), exact via Poly on small input."""
    try:
        poly = sp.Poly(expr, param)
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return None
    if any(c.has(param) for c in poly.coeffs()):  # pragma: no cover - Poly puts param only in the generator
        return None
    return poly.degree()


def _vanishes(u, params) -> bool:
    """True when u provably has a real zero for generic constants: a polynomial of odd degree in a parameter."""
    if not (u.free_symbols & set(params)) or estimated_terms(u, cap=1000) >= 1000:
        return False  # free of the parameters (nonzero for generic constants), or too large to factor cheaply
    for p in params:
        if p in u.free_symbols:
            d = _degree(u, p)
            if d is not None and d % 2 == 1:
                return True
    return False


def _affine(u, params) -> bool:
    if estimated_terms(u, cap=1000) >= 1000:
        return False
    try:
        return sp.Poly(u, *params).total_degree() <= 1
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return False


def _vanishing_quadratic(base, params) -> bool:
    """base = sum of c_i l_i**2 (c_i > 0, l_i affine in the parameters) whose l_i have a common zero."""
    forms = []
    for term in sp.Add.make_args(base):
        coeff, rest = term.as_coeff_Mul()
        b, e = rest.as_base_exp()
        if not (coeff.is_positive and e == 2 and _affine(b, params)):
            return False
        if not (b.free_symbols & set(params)):
            return False  # a constant square: nonzero for generic constants, so no common zero
        forms.append(b)
    return len(forms) > 1 and sp.linsolve(forms, list(params)) != sp.EmptySet


def _kink(power, params) -> str | None:
    """Why `power` = base**r (r > 0 rational, not an integer) is not smooth, or None.

    The base is read as c * f_1 * f_2 * ... ; factors free of the parameters are nonzero for
    generic constants and factors of odd power only restrict the real domain (like log(a)),
    so they are passed over. A factor u**e with e even and u vanishing somewhere gives
    |u|**(e r) there: not smooth unless e r is an even integer. A factor Q**e with Q a
    non-negative quadratic that vanishes (sqrt(a**2 + b**2), a norm) gives Q**(e r): not
    smooth unless e r is an integer.
    """
    r = power.exp
    base = sp.factor_terms(power.base)
    for factor in sp.Mul.make_args(base):
        if not (factor.free_symbols & set(params)):
            continue
        u, e = factor.as_base_exp()
        if not (e.is_Integer and e > 0):
            continue
        m = e * r
        if e.is_even and not m.is_even and _vanishes(u, params):
            power = "" if m == 1 else f"**({m})"
            return f"which equals |{_short(u)}|{power} and is not differentiable where {_short(u)} = 0"
        if isinstance(u, sp.Add) and not m.is_integer and _vanishing_quadratic(u, params):
            return (f"a fractional power of {_short(u)}, a non-negative quadratic that vanishes (a norm): "
                    "not differentiable at its zeros")
    return None


def check_loss(loss: sp.Expr, params, what: str = "the loss", sizes: dict | None = None) -> None:
    """Refuse a loss that is not a smooth real function of `params`, or that is too large to expand.

    Raises `NonSmoothLossError` for non-finite or complex values and for fractional powers that
    are not smooth where their base vanishes: sqrt(u**2) = |u|, (u**2)**(3/2) = |u|**3,
    sqrt(a**2 + b**2) (a norm). The base must be visibly non-negative and vanish somewhere:
    u**(2k) with u a polynomial of odd degree in some parameter, or a sum of squares of
    affine functions of the parameters with a common zero. Constants are treated as generic
    values, so sqrt(a**2 + eps**2) and sqrt(a**2 + 1) are smooth in a and accepted; roots of
    expressions that change sign (sqrt(a), a**(1/3)) are smooth on their open domain, like
    log(a), and accepted. Raises `UnsupportedError` when the expanded loss would have more than
    `MAX_EXPANDED_TERMS` terms (`estimated_terms`; `sizes` as there) or an exponent is beyond
    `MAX_EXPONENT`.
    """
    loss = sp.sympify(loss)
    _check_real(loss, NonSmoothLossError, what)
    params = list(params)
    cap = 10 * MAX_EXPANDED_TERMS
    terms = estimated_terms(loss, sizes, cap=cap)
    if terms > MAX_EXPANDED_TERMS:  # first: the checks below factor parts of the loss
        raise UnsupportedError(
            f"{what} would expand into {'more than ' + str(cap) if terms >= cap else 'about ' + str(terms)} terms "
            f"(at most {MAX_EXPANDED_TERMS} are accepted): the engine works on expanded polynomials, so this "
            "would take minutes or more; lower the exponent or the number of terms raised to it"
        )
    for node in sp.preorder_traversal(loss):
        large = isinstance(node, sp.Pow) and node.exp.is_Rational and max(abs(node.exp.p), node.exp.q) > MAX_EXPONENT
        if large:
            raise UnsupportedError(
                f"{what} contains {_short(node)}: exponents beyond {MAX_EXPONENT} (numerators and denominators of "
                "fractional ones too) make terms too large to derive; rescale the loss"
            )
        if isinstance(node, sp.Pow) and node.exp.is_Rational and not node.exp.is_Integer and node.exp > 0:
            kink = _kink(node, params)
            if kink:
                raise NonSmoothLossError(
                    f"{what} contains {_short(node)}, {kink}; backward error analysis needs derivatives of "
                    "every order. Smooth it, e.g. sqrt(x**2 + eps**2) for |x|"
                )
