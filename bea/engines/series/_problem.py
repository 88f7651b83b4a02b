"""Validation of what the user asks the engine to expand: losses, parameters, symbols.

Everything that would make a derived term wrong or meaningless is rejected
here, with a message that says what to do: non-smooth functions, undefined
functions, parameters that do not occur, symbols that collide with the step
size or with the rule's hyperparameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.core.function import AppliedUndef

from ..._errors import NonSmoothLossError, UnknownSymbolError
from ..._parse import check_loss
from ._jet import STEP_SIZE

__all__ = ["Problem", "as_loss", "check_smooth", "h_parts"]

#: Functions whose derivatives do not exist everywhere; BEA needs many derivatives.
NON_SMOOTH = (
    sp.Abs,
    sp.Heaviside,
    sp.Max,
    sp.Min,
    sp.Piecewise,
    sp.sign,
    sp.floor,
    sp.ceiling,
    sp.frac,
    sp.DiracDelta,
    sp.Mod,
    sp.re,
    sp.im,
    sp.arg,
    sp.conjugate,
)
_SMOOTH_HINTS = {
    "Abs": "sqrt(x**2 + eps**2)",
    "Max": "a softplus, log(1 + exp(k*x))/k (ReLU is Max(0, x))",
    "Min": "-log(exp(-k*x) + exp(-k*y))/k",
    "Heaviside": "a sigmoid, 1/(1 + exp(-k*x))",
    "sign": "tanh(k*x)",
}


def check_smooth(expr: sp.Expr, what: str = "the loss") -> None:
    """Raise `NonSmoothLossError` if `expr` uses a function that is not C-infinity."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, NON_SMOOTH):
            name = type(node).__name__
            hint = _SMOOTH_HINTS.get(name, "a smooth surrogate")
            raise NonSmoothLossError(
                f"{what} contains {node}, which is not differentiable everywhere; backward error analysis "
                f"needs derivatives of every order. Replace {name} by {hint}."
            )
        if isinstance(node, AppliedUndef):
            raise UnknownSymbolError(
                f"{what} calls {node.func}, which is not a known function. Write it out with SymPy "
                "functions (exp, log, tanh, ...): the engine must differentiate it."
            )


def as_loss(loss, what: str = "the loss") -> sp.Expr:
    """A loss given as a SymPy expression, a number, or text (parsed with every name a symbol)."""
    if isinstance(loss, str):
        from ..._parse import parse_expression

        return parse_expression(loss)
    try:
        return sp.sympify(loss, strict=True)
    except (sp.SympifyError, TypeError, ValueError):
        raise UnknownSymbolError(
            f"{what} must be a SymPy expression in the parameters (e.g. (a*b - 1)**2/2 with a, b = sympy.symbols('a b')), "
            f"got {loss!r} of type {type(loss).__name__}"
        ) from None


@dataclass(frozen=True)
class Problem:
    """Losses, their parameters and the remaining (constant) symbols, validated."""

    losses: tuple[sp.Expr, ...]
    params: tuple[sp.Symbol, ...]
    constants: tuple[sp.Symbol, ...]
    #: A problem on vector fields instead of losses (`build_fields`): fields[k][i] is component i of field k as
    #: given (h included), `parts[k][i][m]` its h^m part; `losses` is then empty.
    fields: tuple = ()
    parts: tuple = ()

    @property
    def n_inputs(self) -> int:
        """How many losses, or fields, the rule is applied to."""
        return len(self.fields) if self.fields else len(self.losses)

    @classmethod
    def build(
        cls,
        losses: Sequence,
        params: Sequence,
        *,
        reserved: Iterable[sp.Symbol] = (),
        constants: Sequence[sp.Symbol] | None = None,
    ) -> Problem:
        losses = tuple(as_loss(loss, "the loss" if len(losses) == 1 else f"loss {k + 1}") for k, loss in enumerate(losses))
        if not losses:
            raise UnknownSymbolError("no loss was given")
        params = _checked_params(params, "a, b")
        for k, loss in enumerate(losses):
            label = "the loss" if len(losses) == 1 else f"loss {k + 1}"
            if not isinstance(loss, sp.Expr) or isinstance(loss, sp.MatrixBase) or loss.is_Boolean:
                raise UnknownSymbolError(f"{label} must be a scalar SymPy expression, got {loss!r}")
            check_smooth(loss, label)
            check_loss(loss, params, label)  # kinks hidden in roots (sqrt(a**2)), complex or non-finite values, size
            if any(s.name == STEP_SIZE.name for s in loss.free_symbols):  # bea.h or any Symbol("h")
                raise UnknownSymbolError(f"{label} uses the symbol h, which is reserved for the step size; rename it")
        used = set().union(*(loss.free_symbols for loss in losses))
        missing = [p for p in params if p not in used]
        if missing:
            names = ", ".join(map(str, missing))
            raise UnknownSymbolError(
                f"parameter(s) {names} do not appear in any loss; remove them from the parameter list "
                "or check their spelling (symbols are matched by name and assumptions)"
            )
        return cls(losses, params, _constants(used, params, reserved, constants, "loss"))

    @classmethod
    def build_fields(
        cls,
        fields: Sequence,
        params: Sequence,
        *,
        reserved: Iterable[sp.Symbol] = (),
        constants: Sequence[sp.Symbol] | None = None,
    ) -> Problem:
        """Vector fields f = f^0 + h f^1 + ... (polynomial in h), one component per parameter, checked like losses."""
        if not fields:
            raise UnknownSymbolError("no vector field was given")
        params = _checked_params(params, "u, v")
        checked, parts = [], []
        for k, field in enumerate(fields):
            label = "the field" if len(fields) == 1 else f"field {k + 1}"
            if isinstance(field, (str, sp.Basic)) and not isinstance(field, sp.MatrixBase):
                raise UnknownSymbolError(
                    f"{label} must be a list of components, one per parameter (e.g. field=[u*(v - 2), v*(1 - u)]), "
                    f"got {field!r}"
                )
            components = list(field)
            if len(components) != len(params):
                raise UnknownSymbolError(
                    f"{label} has {len(components)} component(s) but there are {len(params)} parameter(s) "
                    f"{list(params)}: give one component f_i per parameter, theta_i' = f_i(theta)"
                )
            row, row_parts = [], []
            for i, component in enumerate(components):
                what = f"component {i + 1} ({params[i]}') of {label}"
                expr = as_loss(component, what)
                if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixBase) or expr.is_Boolean:
                    raise UnknownSymbolError(f"{what} must be a scalar SymPy expression, got {expr!r}")
                expr = expr.xreplace({s: STEP_SIZE for s in expr.free_symbols if s.name == STEP_SIZE.name})
                pieces = h_parts(expr, what)
                for m, piece in enumerate(pieces):
                    check_smooth(piece, what)
                    check_loss(piece, params, what)
                row.append(expr)
                row_parts.append(tuple(pieces))
            checked.append(tuple(row))
            parts.append(tuple(row_parts))
        used = set().union(*(p.free_symbols for row in parts for comp in row for p in comp))
        return cls((), params, _constants(used, params, reserved, constants, "field"), tuple(checked), tuple(parts))



def _checked_params(params, example: str) -> tuple:
    """The parameters: at least one, SymPy symbols, none listed twice."""
    params = tuple(params)
    if not params:
        raise UnknownSymbolError(f"no parameters were given; pass params=[{example}, ...] (--params {example.replace(' ', '')})")
    for p in params:
        if not isinstance(p, sp.Symbol):
            raise UnknownSymbolError(f"parameters must be SymPy symbols, got {p!r}")
    if len(set(params)) != len(params):
        raise UnknownSymbolError(f"a parameter is listed twice in {list(params)}")
    return params


def _constants(used: set, params: tuple, reserved, constants, what: str) -> tuple:
    """The symbols besides the parameters, checked: none a hyperparameter of the rule, all declared when
    `constants` is given."""
    reserved = set(reserved)
    clash = sorted((s for s in used if s in reserved and s not in params), key=str)
    if clash:
        raise UnknownSymbolError(
            f"the {what} uses {', '.join(map(str, clash))}, which the rule uses as a hyperparameter; rename it"
        )
    free = sorted(used - set(params), key=str)
    if constants is not None:
        unknown = [s for s in free if s not in set(constants)]
        if unknown:
            raise UnknownSymbolError(
                f"unknown symbol(s) {', '.join(map(str, unknown))} in the {what}: they are neither parameters "
                "nor declared constants; declare them or fix the spelling"
            )
    return tuple(free)

def h_parts(expr: sp.Expr, what: str) -> list[sp.Expr]:
    """[e_0, e_1, ...] with expr = sum_m h^m e_m; `UnknownSymbolError` unless expr is a polynomial in h."""
    if STEP_SIZE not in expr.free_symbols:
        return [expr]
    if not expr.is_polynomial(STEP_SIZE):
        raise UnknownSymbolError(
            f"{what} depends on the step size h as {expr}, which is not a polynomial in h; a field may contain h "
            "only polynomially (f = f^0 + h f^1 + h^2 f^2 + ...)"
        )
    poly = sp.Poly(expr, STEP_SIZE)
    out = [sp.S.Zero] * (poly.degree() + 1)
    for (power,), coeff in poly.terms():
        out[power] = sp.sympify(coeff)
    return out
