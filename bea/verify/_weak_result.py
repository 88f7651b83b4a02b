"""What the weak-error checks share: their inputs (rule, finite-sum model, test functions) and result.

A weak error is measured per test function phi (E[phi(theta_n)] against E[phi(X_{nh})]), so a
result holds one `SweepResult` per phi; its `slope` is the one furthest from the expected slope
and it `passes` when every phi's does.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import sympy as sp

from .._errors import NoStochasticModifiedEquationError
from ._checks import VerificationError, check_order, check_values
from ._stochastic_models import FiniteSumModel, stochastic_model
from ._sweep import TOLERANCE, SweepResult

__all__ = ["WeakErrorResult", "default_test_functions"]


@dataclasses.dataclass(frozen=True)
class WeakErrorResult:
    """Weak errors |E phi(rule) - E phi(SDE)| over step sizes, one `SweepResult` per test function phi.

    `sweeps`: (name of phi, its sweep); `exact`: names of the phi whose error is exactly 0 at every
    step size (left out: no slope to fit); `half_widths`: Monte Carlo only, the 95% confidence
    half-width of each error, per phi; `slope_intervals`: Monte Carlo only, a 95% interval for each
    slope (delta method on the log errors); `unresolved`: Monte Carlo only, the phi whose error stood
    below the Monte Carlo noise at all but two step sizes or fewer (reported, never fitted; at least one
    phi is fitted, else the check raises).
    """

    kind: str
    rule: str
    model: str
    order: int
    expected: int
    sweeps: tuple[tuple[str, SweepResult], ...]
    exact: tuple[str, ...] = ()
    half_widths: tuple[tuple[float, ...], ...] | None = None
    slope_intervals: tuple[tuple[float, float], ...] | None = None
    note: str = ""
    unresolved: tuple[str, ...] = ()

    @property
    def slopes(self) -> dict[str, float]:
        """The fitted slope per test function."""
        return {name: sweep.slope for name, sweep in self.sweeps}

    @property
    def worst(self) -> tuple[str, SweepResult]:
        """(name, sweep) of the test function whose slope is furthest from the expected one."""
        return max(self.sweeps, key=lambda item: abs(item[1].deviation))

    @property
    def slope(self) -> float:
        """The fitted slope furthest from `expected` over the test functions (`slopes` has them all)."""
        return self.worst[1].slope

    @property
    def h(self) -> tuple[float, ...]:
        return self.sweeps[0][1].h

    @property
    def flags(self) -> dict[str, tuple[str, ...]]:
        """Per test function: "" for a fitted point, else why it was left out."""
        return {name: sweep.flags for name, sweep in self.sweeps}

    @property
    def deviation(self) -> float:
        return self.slope - self.expected

    def passes(self, tolerance: float = TOLERANCE) -> bool:
        """Whether every test function's slope is within `tolerance` of the expected one."""
        return all(sweep.passes(tolerance) for _, sweep in self.sweeps)

    def to_dict(self) -> dict:
        functions = {}
        for k, (name, sweep) in enumerate(self.sweeps):
            entry = sweep.to_dict()
            if self.half_widths is not None:
                entry["half_width"] = list(self.half_widths[k])
            if self.slope_intervals is not None:
                entry["slope_interval"] = list(self.slope_intervals[k])
            functions[name] = entry
        return {"kind": self.kind, "rule": self.rule, "model": self.model, "order": self.order,
                "expected": self.expected, "slope": self.slope, "worst": self.worst[0], "h": list(self.h),
                "test_functions": functions, "exact": list(self.exact), "unresolved": list(self.unresolved),
                "note": self.note}

    def text(self, tolerance: float = TOLERANCE) -> str:
        """One line: the worst slope against the expected one, the range over phi, what was left out."""
        name, sweep = self.worst
        slopes = [s.slope for _, s in self.sweeps]
        flagged = sorted({f"h={h:g} ({f})" for _, s in self.sweeps for h, f in zip(s.h, s.flags) if f})
        line = (f"{self.kind} error: slope {sweep.slope:.3f} for {name} (expected {self.expected}"
                + ("" if self.passes(tolerance) else f", off by more than {tolerance:g}") + ")"
                + f"; {len(slopes)} test functions, slopes {min(slopes):.3f}..{max(slopes):.3f}")
        if self.slope_intervals is not None:
            k = [n for n, _ in self.sweeps].index(name)
            low, high = self.slope_intervals[k]
            line += f"; 95% interval of the worst slope {low:.2f}..{high:.2f}"
        if flagged:
            line += f"; left out: {', '.join(flagged)}"
        if self.exact:
            line += f"; exact at every h: {', '.join(self.exact)}"
        if self.unresolved:
            line += f"; below the Monte Carlo noise (not fitted): {', '.join(self.unresolved)}"
        return line + (f"; {self.note}" if self.note else "")


def default_test_functions(model: FiniteSumModel) -> dict[str, sp.Expr]:
    """The coordinates theta_i, the quadratic monomials theta_i theta_j (i <= j), and the mean loss E."""
    params = model.params
    out = {str(p): p for p in params}
    for p, q in itertools.combinations_with_replacement(params, 2):
        out[f"{p}*{q}" if p != q else f"{p}^2"] = p * q
    out["E"] = model.mean_loss
    return out


def resolve_model(model, *, losses=None, params=None, theta0=None) -> FiniteSumModel:
    """A FiniteSumModel from a model, its name, or losses/params/theta0."""
    if model is not None:
        if losses is not None or params is not None or theta0 is not None:
            raise VerificationError("give either model= or losses=, params= and theta0=, not both")
        if isinstance(model, str):
            return stochastic_model(model)
        if not isinstance(model, FiniteSumModel):
            raise VerificationError(f"model must be a bea.verify.FiniteSumModel or the name of one, got {model!r}")
        return model
    if losses is None or params is None or theta0 is None:
        raise VerificationError("give model= (a bea.verify.FiniteSumModel or its name), or all of losses=, params= "
                                "and theta0=")
    losses = [losses] if isinstance(losses, sp.Basic) else list(losses)
    return FiniteSumModel.from_losses("user", losses, params, theta0)


def resolve_test_functions(test_functions, model: FiniteSumModel) -> dict[str, sp.Expr]:
    """Named SymPy test functions in the model's params (a dict, a list, or None for the defaults)."""
    if test_functions is None:
        return default_test_functions(model)
    items = test_functions.items() if isinstance(test_functions, dict) else ((str(f), f) for f in test_functions)
    out = {}
    for name, phi in items:
        try:
            phi = sp.sympify(phi)
        except (sp.SympifyError, TypeError):
            raise VerificationError(f"test_functions: {phi!r} is not a SymPy expression") from None
        extra = phi.free_symbols - set(model.params)
        if extra:
            raise VerificationError(f"test_functions: {name} has symbols that are not parameters of {model.name}: "
                                    f"{', '.join(sorted(map(str, extra)))}")
        if phi.has(sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise):
            raise VerificationError(f"test_functions: {name} is not smooth; weak errors are for smooth test functions")
        out[str(name)] = phi
    if not out:
        raise VerificationError("test_functions is empty; give at least one, or None for the defaults")
    return out


def prepare(rule, model: FiniteSumModel, order, values, *, max_order=None):
    """(rule with its values bound, order): the rule is SGD or Langevin (or another StochasticRule),
    every hyperparameter has a value."""
    from ..rules._base import Rule
    from ..rules._stochastic import StochasticRule

    if not isinstance(rule, StochasticRule):
        hint = (": this checks stochastic modified equations; verify a deterministic rule with bea.verify.local_error"
                if isinstance(rule, Rule) else "")
        raise VerificationError(f"rule must be a stochastic rule such as bea.rules.SGD() or bea.rules.Langevin(), "
                                f"got {rule!r}{hint}")
    from ..rules._stochastic import SGD, Langevin

    # exact types: the rule's side is computed from SGD's and Langevin's own laws, so a subclass with another
    # step would be checked against the wrong law; other rules would fail only after the derivation
    if type(rule) not in (SGD, Langevin):
        raise VerificationError(
            f"the weak-error checks know the exact laws of bea.rules.SGD and bea.rules.Langevin, not {rule.name}; "
            "derive its SME with bea.stochastic_modified_equation and compare it with rule.iterate(...) yourself"
        )
    order = check_order(order)
    if max_order is not None and order > max_order:
        raise VerificationError(f"order {order} is above {max_order}, the highest this check supports")
    bound = check_values(rule, values, suggest=lambda name: f"pass values={{'{name}': ...}} or build the rule "
                         f"with {name}=...")
    return (rule.bind(bound) if bound else rule), order


def derive(rule, model: FiniteSumModel, order: int):
    """The rule's stochastic modified equation on the model (Langevin: on the mean loss), with the
    engine's refusal past an obstruction turned into advice for the verification."""
    from .._derive_stochastic import stochastic_modified_equation
    from ..rules._stochastic import Langevin

    kwargs = dict(loss=model.mean_loss) if isinstance(rule, Langevin) else dict(losses=model.losses)
    try:
        return stochastic_modified_equation(rule, order, params=model.params, **kwargs)
    except NoStochasticModifiedEquationError as exc:
        raise VerificationError(f"cannot verify order {order}: {exc}".split("; use order=")[0]
                                + f"; verify order {order - 1} or lower (no SDE exists at order {order} on "
                                f"{model.name})") from None


def fit(kind, hs, errors, flags, expected, note=""):
    """`_sweep._fit`, errors as floats."""
    from ._sweep import _fit

    return _fit(kind, [float(h) for h in hs], [float(e) for e in errors], list(flags), expected, note)


def as_float(value) -> float:
    """A float of an exact (or float) number, through 40 significant digits for exact ones."""
    if isinstance(value, sp.Basic):
        return float(sp.N(value, 40))
    return float(value)


def check_finite(values, what):
    if not np.all(np.isfinite(values)):
        raise VerificationError(f"{what} is not finite; choose smaller step sizes")
