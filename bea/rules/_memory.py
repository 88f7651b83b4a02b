"""Rules with state: heavy-ball and Nesterov momentum, RMSProp, Adam, and any EMA rule.

A rule with memory carries state vectors s = (s_1, ..., s_m), each shaped like
theta, and a pure update

    (theta_{n+1}, s_{n+1}) = update(theta_n, s_n, grad, h, n),

where `n` is the step index (for bias corrections; the engine passes None, the
n -> infinity limit). Each state is an exponential moving average, or more
generally a linear recursion s_i' = decay_i s_i + (terms that do not depend on
s_i at h = 0). With every |decay_i| < 1 the state recursion has an attracting
slow manifold s = S_h(theta) (a power series in h; Fenichel; Kovachki & Stuart,
"Continuous time analysis of momentum methods", JMLR 2021); after the start-up
transients (decaying like decay^n) the iterates follow the one-step map
theta -> update(theta, S_h(theta)), whose modified equation is derived like any
other rule's.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import sympy as sp

from .._errors import InvalidHyperparameterError, InvalidRuleError
from .._parse import parse_expression
from ._base import Rule, exact
from ._custom import _check_signature, _check_step_function, call_step
from ._operations import sqrt

__all__ = ["Adam", "HeavyBall", "MemoryRule", "Nesterov", "RMSProp", "memory_rule"]


def _bias(decay, n):
    """1 - decay^{n+1}, the bias correction of an EMA started at 0 (1 in the large-n limit)."""
    return 1 if n is None else 1 - decay ** (n + 1)


@dataclasses.dataclass(frozen=True)
class MemoryRule(Rule):
    """Base class of rules with state; subclasses define `decays` and `update`."""

    def decays(self) -> tuple:
        """The contraction factor of each state's recursion at h = 0 (beta for an EMA with weight beta)."""
        raise NotImplementedError  # pragma: no cover - interface

    def init(self, theta, grad) -> tuple:
        """The state at n = 0 (zeros, as in every optimizer library)."""
        return tuple(0 * theta for _ in self.decays())

    def update(self, theta, state, grad, h, n):  # pragma: no cover - interface
        """One step: returns (theta_next, state_next); n is the step index or None (n -> infinity)."""
        raise NotImplementedError

    def step(self, theta, grad, h):
        raise TypeError(
            f"{self.name} keeps state; call update(theta, state, grad, h, n) (the engine and bea.iterate do)"
        )

    def validate(self):
        for name, value in zip(self._decay_names(), self.decays()):
            _check_unit_interval(name, value)

    def _decay_names(self) -> tuple:
        return tuple(f"decay {i + 1}" for i in range(len(self.decays())))


def _check_unit_interval(name, value):
    value = sp.sympify(value)
    if value.is_number and not (0 <= value < 1):
        raise InvalidHyperparameterError(
            f"{name} = {value} is outside [0, 1): the state recursion then has no attracting slow manifold "
            "(its transients never decay), so no modified equation on theta alone exists"
        )


def _check_positive(name, value, why):
    value = sp.sympify(value)
    if value.is_number and not value > 0:
        raise InvalidHyperparameterError(f"{name} = {value} must be > 0: {why}")


@dataclasses.dataclass(frozen=True)
class HeavyBall(MemoryRule):
    """Heavy-ball momentum (Polyak 1964), in the convention of optax.sgd(momentum=beta):

        v_{n+1} = beta v_n + grad E(theta_n),    theta_{n+1} = theta_n - h v_{n+1}.

    Modified equation on the slow manifold: f_0 = -grad E/(1 - beta),
    f_1 = -(1 + beta)/(2 (1 - beta)^3) H grad E (Ghosh et al., "Implicit
    regularization in heavy-ball momentum accelerated SGD", ICLR 2023,
    arXiv:2302.00849; Kovachki & Stuart, JMLR 2021).
    """

    beta: Any = sp.Symbol("beta")
    name = "heavy-ball"

    def decays(self):
        return (self.beta,)

    def _decay_names(self):
        return ("beta",)

    def update(self, theta, state, grad, h, n):
        (v,) = state
        v = self.beta * v + grad(theta)
        return theta - h * v, (v,)


@dataclasses.dataclass(frozen=True)
class Nesterov(HeavyBall):
    """Nesterov momentum in the form of Sutskever et al. (ICML 2013), gradient at the look-ahead point:

        v_{n+1} = beta v_n + grad E(theta_n - h beta v_n),    theta_{n+1} = theta_n - h v_{n+1}.
    """

    name = "nesterov"

    def update(self, theta, state, grad, h, n):
        (v,) = state
        v = self.beta * v + grad(theta - h * self.beta * v)
        return theta - h * v, (v,)


@dataclasses.dataclass(frozen=True)
class RMSProp(MemoryRule):
    """RMSProp as in Cattaneo, Klusowski & Shigida, "On the implicit bias of Adam", ICML 2024,
    arXiv:2309.00079, Definition 4.1 (eps inside the root):

        nu_{n+1} = rho nu_n + (1 - rho) grad E(theta_n)^2,
        theta_{n+1} = theta_n - h grad E(theta_n) / sqrt(nu_{n+1} + eps).
    """

    rho: Any = sp.Symbol("rho")
    eps: Any = sp.Symbol("epsilon", positive=True)
    name = "rmsprop"

    def decays(self):
        return (self.rho,)

    def _decay_names(self):
        return ("rho",)

    def validate(self):
        super().validate()
        _check_positive("eps", self.eps, "RMSProp divides by sqrt(nu + eps) and nu vanishes where the gradient does")

    def update(self, theta, state, grad, h, n):
        (nu,) = state
        g = grad(theta)
        nu = self.rho * nu + (1 - self.rho) * g * g
        return theta - h * g / sqrt(nu + self.eps), (nu,)


@dataclasses.dataclass(frozen=True)
class Adam(MemoryRule):
    """Adam (Kingma & Ba 2015) with bias correction, as in Cattaneo et al., arXiv:2309.00079, Definition 2.1:

        m_{n+1} = beta m_n + (1 - beta) g_n,    nu_{n+1} = rho nu_n + (1 - rho) g_n^2,
        theta_{n+1} = theta_n - h m^_{n+1} / sqrt(nu^_{n+1} + eps)        (eps="inside", the paper's),
        theta_{n+1} = theta_n - h m^_{n+1} / (sqrt(nu^_{n+1}) + eps)      (eps="outside", optax's eps),

    m^ = m/(1 - beta^{n+1}), nu^ = nu/(1 - rho^{n+1}), g_n = grad E(theta_n). `weight_decay`
    adds decoupled weight decay (AdamW, Loshchilov & Hutter 2019): - h lambda theta_n.
    The first correction of the large-n field is the paper's eqs (2)-(3).
    """

    beta: Any = sp.Symbol("beta")
    rho: Any = sp.Symbol("rho")
    eps: Any = sp.Symbol("epsilon", positive=True)
    eps_position: str = dataclasses.field(default="inside", metadata={"choice": True})
    weight_decay: Any = 0
    name = "adam"

    def decays(self):
        return (self.beta, self.rho)

    def _decay_names(self):
        return ("beta", "rho")

    def validate(self):
        super().validate()
        if self.eps_position not in ("inside", "outside"):
            raise InvalidHyperparameterError(f"eps_position must be 'inside' or 'outside', got {self.eps_position!r}")
        if self.eps_position == "inside":
            _check_positive("eps", self.eps, "Adam divides by sqrt(nu + eps) and nu vanishes where the gradient does")
        elif sp.sympify(self.eps).is_number and self.eps < 0:
            raise InvalidHyperparameterError(f"eps = {self.eps} must be >= 0")

    def update(self, theta, state, grad, h, n):
        m, nu = state
        g = grad(theta)
        m = self.beta * m + (1 - self.beta) * g
        nu = self.rho * nu + (1 - self.rho) * g * g
        m_hat, nu_hat = m / _bias(self.beta, n), nu / _bias(self.rho, n)
        if self.eps_position == "inside":
            direction = m_hat / sqrt(nu_hat + self.eps)
        else:
            direction = m_hat / (sqrt(nu_hat) + self.eps)
        if self.weight_decay != 0:
            direction = direction + self.weight_decay * theta
        return theta - h * direction, (m, nu)


@dataclasses.dataclass(frozen=True)
class CustomMemoryRule(MemoryRule):
    """A rule with state given by functions (see `memory_rule`)."""

    fn: Callable = None
    decay_values: tuple = ()
    init_fn: Callable | None = dataclasses.field(default=None, metadata={"hyper": False})
    params: tuple = ()
    label: str = dataclasses.field(default="custom", metadata={"choice": True})
    name = "custom-memory"

    def __post_init__(self):
        _check_step_function(self.fn, "memory_rule(update)", "update(theta, state, grad, h, n, **hyperparameters)")
        if self.init_fn is not None:
            _check_step_function(self.init_fn, "memory_rule(init=)", "init(theta, grad, **hyperparameters)")
        params = tuple((k, exact(v, f"hyperparameter {k}")) for k, v in self.params)
        object.__setattr__(self, "params", params)
        decays = tuple(exact(v, f"decay {i + 1}") for i, v in enumerate(self.decay_values))
        known = set(dict(params)) | {s.name for _, v in params for s in v.free_symbols}
        for i, decay in enumerate(decays):
            unknown = sorted(s.name for s in decay.free_symbols if s.name not in known)
            if unknown:
                raise InvalidRuleError(
                    f"decay {i + 1} = {decay} uses {', '.join(unknown)}, which the rule does not take as "
                    f"hyperparameters: pass {unknown[0]}=None (a symbol) or a value to memory_rule"
                )
        # In the hyperparameters' values: numbers where they are given, so that the numerical
        # iteration (`numeric`) and the range checks see numbers, not the names of the decays.
        object.__setattr__(self, "decay_values", tuple(_resolve(d, dict(params)) for d in decays))
        super().__post_init__()

    def validate(self):
        super().validate()
        names = [k for k, _ in self.params]
        _check_signature(self.fn, ["theta", "state", "grad", "h", "n"], names)
        if self.init_fn is not None:
            _check_signature(self.init_fn, ["theta", "grad"], names)

    def decays(self):
        return tuple(_resolve(d, dict(self.params)) for d in self.decay_values)

    def init(self, theta, grad):
        if self.init_fn is None:
            return super().init(theta, grad)
        return tuple(self.init_fn(theta, grad, **dict(self.params)))

    def update(self, theta, state, grad, h, n):
        theta, state = call_step(self.fn, theta, tuple(state), grad, h, n, **dict(self.params))
        return theta, tuple(state)


def _resolve(decay, params: dict):
    """The decay with each hyperparameter's symbol (matched by name) replaced by its value."""
    decay = sp.sympify(decay)  # a float on the numerical copy (`Rule.numeric`)
    return decay.xreplace({s: params[s.name] for s in decay.free_symbols if s.name in params})


def memory_rule(update: Callable, *, decays, init: Callable | None = None, name: str = "custom", **hyperparameters):
    """Make a rule with state from `update(theta, state, grad, h, n, **hyperparameters) -> (theta, state)`.

    `decays` lists each state's contraction factor at h = 0 (an expression in the
    hyperparameters, e.g. ["beta2", "beta1"]); hyperparameters without a value
    are symbols of their name. `init(theta, grad, **hyperparameters)` gives the
    state at n = 0 (zeros by default). Example, AdaBelief (Zhuang et al. 2020)::

        def adabelief(theta, state, grad, h, n, beta1, beta2, eps):
            m, s = state
            g = grad(theta)
            m = beta1 * m + (1 - beta1) * g
            s = beta2 * s + (1 - beta2) * (g - m) * (g - m) + eps
            return theta - h * m / bea.rules.sqrt(s + eps), (m, s)

        bea.rules.memory_rule(adabelief, decays=["beta1", "beta2"], beta1=None, beta2=None, eps=None)
    """
    _check_step_function(update, "memory_rule(update)", "update(theta, state, grad, h, n, **hyperparameters)")
    if isinstance(decays, (str, sp.Basic, numbers.Number)) or not isinstance(decays, Iterable):
        raise InvalidRuleError(
            f"decays must be a list with one contraction factor per state, e.g. decays=['beta'], got {decays!r}"
        )
    values = {k: sp.Symbol(k) if v is None else v for k, v in hyperparameters.items()}
    # Names in decays are the hyperparameters' symbols ("beta" is not SymPy's beta function).
    symbols = {k: sp.Symbol(k) for k in hyperparameters}
    decays = tuple(parse_expression(d, symbols) if isinstance(d, str) else d for d in decays)
    return CustomMemoryRule(fn=update, decay_values=decays, init_fn=init, params=tuple(values.items()), label=name)
