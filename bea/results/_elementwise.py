"""The coordinate-free result of element-wise rules: display, evaluation on losses, lowering to JAX.

Terms are element expressions (`_elementwise`): products, quotients and powers act
component by component, atoms are contractions nabla^{m+1} E[w_1, ..., w_m]. In the
notation of Cattaneo, Klusowski & Shigida (arXiv:2309.00079, eqs 2-3) the atom
nabla^2 E(grad E/sqrt(grad E^2 + eps)) is the gradient of the perturbed one-norm
||grad E||_{1,eps} = sum_j sqrt(d_j E^2 + eps), and is printed as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ..engines.elementwise._elementwise import THETA, atom_arguments, inner_arguments, is_atom, is_inner

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

__all__ = ["ElementwiseModifiedEquation", "present"]


def _gradient_symbol():
    from ..engines.elementwise._elementwise import contract

    return contract([])


def _one_norm_scale(argument):
    """s if argument == grad E / sqrt(grad E^2 + s) (the perturbed one-norm's gradient direction), else None."""
    g = _gradient_symbol()
    factors = sp.Mul.make_args(argument)
    if len(factors) != 2 or g not in factors:
        return None
    (root,) = [f for f in factors if f != g]
    if not root.is_Pow or root.exp != sp.Rational(-1, 2):
        return None
    scale = sp.expand(root.base - g**2)
    return scale if scale != 0 and not scale.has(g) and scale.free_symbols <= _scalars(scale) else None


def _scalars(expr):
    return {s for s in expr.free_symbols if not is_atom(s) and s != THETA}


def _names(expr, latex: bool) -> dict:
    """Display names of the atoms in expr (LaTeX, or plain text where the perturbed norm is recognised)."""
    out = {}
    for s in expr.free_symbols:
        if s == THETA:
            out[s] = r"\theta" if latex else "θ"
        elif is_atom(s):
            out[s] = _atom_name(s, latex)
        elif is_inner(s):
            out[s] = _inner_name(s, latex)
    return out


def _with_norms(expr) -> tuple:
    """expr with each |p|^2 written as the square of a positive norm symbol |p| (so that sqrt(|p|^2) shows as
    |p| and (|p|^2)^2 as |p|^4), and the LaTeX names of those symbols. Display only."""
    squares, names = {}, {}
    for s in sp.sympify(expr).free_symbols:
        if is_inner(s) and inner_arguments(s)[0] == inner_arguments(s)[1]:
            norm = sp.Symbol(str(s).removesuffix("²"), positive=True)
            squares[s] = norm**2
            names[norm] = _inner_name(s, True).removesuffix("^{2}")
    return (expr.xreplace(squares) if squares else expr), names


def _inner_name(invariant, latex: bool) -> str:
    """|p|^2 or <p, q> (p, q elements; 1 is the vector of ones)."""
    if not latex:
        return str(invariant)
    p, q = [sp.latex(w, symbol_names=_names(w, True)) if w != 1 else r"\mathbf{1}" for w in inner_arguments(invariant)]
    return rf"\left\|{p}\right\|^{{2}}" if p == q else rf"\left\langle {p}, {q}\right\rangle"


def _atom_name(atom, latex: bool) -> str:
    arguments = atom_arguments(atom)
    m = len(arguments)
    if m == 0:
        return r"\nabla E" if latex else "∇E"
    if m == 1:
        scale = _one_norm_scale(arguments[0])
        if scale is not None:
            return (rf"\nabla \|\nabla E\|_{{1,{sp.latex(scale)}}}" if latex else f"∇‖∇E‖_(1,{scale})")
    if not latex:
        return str(atom)
    inner = [sp.latex(w, symbol_names=_names(w, True)) for w in arguments]
    if m == 1:
        return rf"\nabla^{{2}} E\left({inner[0]}\right)"
    return rf"\nabla^{{{m + 1}}} E\left[{', '.join(inner)}\right]"


def present(expr) -> sp.Expr:
    """Group by the contractions beyond grad E (and theta); factor each coefficient, a function of grad E."""
    g = _gradient_symbol()
    groups: dict = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        key, coefficient = [], []
        for factor in sp.Mul.make_args(term):
            base = factor.base if factor.is_Pow else factor
            (key if (is_atom(base) and base != g) or base == THETA else coefficient).append(factor)
        k = sp.Mul(*key)
        groups[k] = groups.get(k, sp.S.Zero) + sp.Mul(*coefficient)
    reduced = {k: sp.cancel(sp.together(c)) for k, c in groups.items()}
    out = sp.Add(*[sp.factor(c) * k for k, c in reduced.items() if c != 0])
    if out.has(sp.sqrt(g**2)):  # eps outside the root: write |grad E|, and grad E^2 = |grad E|^2 with it
        out = out.replace(lambda e: e.is_Pow and e.base == g and e.exp.is_even, lambda e: sp.Abs(g) ** e.exp)
        out = sp.Add(*[sp.factor(t) for t in sp.Add.make_args(out)])
    return out


@dataclass(frozen=True)
class ElementwiseModifiedEquation:
    """f_0..f_order of an element-wise rule (RMSProp, Adam, ...) as element expressions, any dimension.

    Products, quotients and roots act component by component; `∇²E(w)` is the
    Hessian applied to the vector w.
    """

    rule: object
    order: int
    terms: tuple  # one element expression per order
    slow_manifold: tuple = ()  # rules with memory: each state on its slow manifold, sum_k h^k S_k

    colored = False
    n_players = 0

    def text(self, l: int) -> str:
        """f_l in plain text (SymPy syntax, element-wise)."""
        expr, _ = _with_norms(self.terms[l])
        text = str(expr.xreplace({s: sp.Symbol(n) for s, n in _names(expr, False).items()})) if expr != 0 else "0"
        return re.sub(r"\|\*\*([2-9])\b", lambda m: "|" + m.group(1).translate(_SUPERSCRIPTS), text)  # |∇E|**2 -> |∇E|²

    def latex(self, notation: str = "gradient") -> str:
        """The modified equation as a display formula, in seed 002's notation (element-wise operations)."""
        if notation != "gradient":
            raise ValueError("element-wise results are written in gradient notation only")
        rows = []
        for l, expr in enumerate(self.terms):
            if expr == 0:
                continue
            expr, norms = _with_norms(expr)
            body = sp.latex(expr, symbol_names={**_names(expr, True), **norms})
            power = "" if l == 0 else ("h" if l == 1 else f"h^{{{l}}}")
            rows.append(rf"{power}\left({body}\right)" if power else body)
        joined = " \\\\\n  &+ ".join(rows)
        return (f"\\begin{{aligned}}\n  \\dot{{\\theta}} &= {joined}\n  + \\mathcal{{O}}(h^{{{self.order + 1}}})\n"
                "\\end{aligned}")

    def modified_loss(self):
        """Raises `NoModifiedLossError`: element-wise fields are not gradients in general; the concrete view
        (`bea.modified_equation(rule, p, loss=..., params=...).modified_loss()`) decides on a given loss."""
        from ..exports import NoModifiedLossError

        name = getattr(self.rule, "name", "this rule")
        if any(is_inner(s) for term in self.terms for s in sp.sympify(term).free_symbols):
            reason = (f"{name} scales its field by inner products (f_0 = {self.text(0)}), which is not the gradient "
                      "of a loss of grad E in general")
        else:
            reason = (f"{name} acts element-wise: its field (f_0 = {self.text(0)}) is not the gradient of a loss in "
                      "general (only for separable losses); seed 002's Table 1 limits are gradients after "
                      "rescaling time per component")
        raise NoModifiedLossError(f"{reason}; on a concrete loss, the concrete view's modified_loss() decides")

    def evaluate(self, *, loss: sp.Expr, params) -> tuple[sp.Matrix, ...]:
        """The terms on a concrete loss, component by component (independent of the concrete engine)."""
        from ._terms import contract_on_loss

        params = list(params)
        cache: dict = {}

        def vector(expr):
            """An element as a column: atoms by index contraction, invariants <p, q> by sums over
            components, then the expression per component."""
            values = {s: atom(s) for s in expr.free_symbols if is_atom(s)}
            invariants = {s: sp.expand((vector(p).T * vector(q))[0]) for s in expr.free_symbols if is_inner(s)
                          for p, q in [inner_arguments(s)]}
            out = []
            for i in range(len(params)):
                point = {s: v[i] for s, v in values.items()}
                point[THETA] = params[i]
                out.append(expr.xreplace({**point, **invariants}))
            return sp.Matrix(out)

        def atom(s):
            if s not in cache:
                children = [vector(w) for w in atom_arguments(s)]
                cache[s] = sp.Matrix([contract_on_loss(sp.diff(loss, p), params, children) for p in params])
            return cache[s]

        return tuple(vector(expr) for expr in self.terms)

    def slow_manifold_to_jax(self, *, loss, allow_float32: bool = False) -> list:
        """One `state(params, h, **hyperparameters) -> pytree` per state: the state on its slow manifold."""
        from dataclasses import replace

        return [replace(self, order=0, terms=(state,), slow_manifold=()).to_jax(loss=loss, allow_float32=allow_float32)
                for state in self.slow_manifold]

    def to_jax(self, *, loss, allow_float32: bool = False):
        """`field(params, h, **hyperparameters) -> pytree`: atoms by nested jvps, element-wise operations on arrays."""
        from ..lowering._autodiff import lower_elementwise

        return lower_elementwise(self, loss, allow_float32=allow_float32)
