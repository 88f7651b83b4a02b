"""Explicit Runge-Kutta maps of the gradient flow, given by a Butcher tableau."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sympy as sp

from .._errors import InvalidHyperparameterError
from ._base import Rule, exact

__all__ = ["RungeKutta", "EULER", "MIDPOINT", "HEUN", "RK4", "TABLEAUS"]


@dataclasses.dataclass(frozen=True)
class RungeKutta(Rule):
    """An explicit Runge-Kutta method applied to theta' = f(theta) = -grad E(theta).

        k_i = f(theta + h sum_{j<i} a_ij k_j),   theta_{n+1} = theta_n + h sum_i b_i k_i

    (Butcher, Numerical Methods for Ordinary Differential Equations, 3rd ed.,
    Wiley 2016, doi:10.1002/9781119121534; Hairer, Lubich & Wanner, Geometric
    Numerical Integration, Section III.1). `A` must be strictly lower triangular;
    `c`, if given, must be the row sums of `A` (the engine treats autonomous fields).
    """

    A: tuple = ()
    b: tuple = ()
    c: tuple | None = None
    label: str = dataclasses.field(default="runge-kutta", metadata={"choice": True})
    name = "runge-kutta"

    def __post_init__(self):
        try:
            A = tuple(tuple(exact(x, f"A[{i}][{j}]") for j, x in enumerate(row)) for i, row in enumerate(self.A))
            b = tuple(exact(x, f"b[{i}]") for i, x in enumerate(self.b))
            c = None if self.c is None else tuple(exact(x, f"c[{i}]") for i, x in enumerate(self.c))
        except TypeError:  # not iterable: a number where a row or a list was expected
            raise InvalidHyperparameterError(
                "a Butcher tableau is A (a list of rows), b and c (lists of numbers); "
                f"got A={self.A!r}, b={self.b!r}, c={self.c!r}"
            ) from None
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)
        super().__post_init__()

    def validate(self):
        s = len(self.b)
        if s == 0:
            raise InvalidHyperparameterError("a Butcher tableau needs at least one stage (b is empty)")
        if len(self.A) != s or any(len(row) != s for row in self.A):
            raise InvalidHyperparameterError(f"A must be {s} x {s} to match b, got rows of lengths {[len(r) for r in self.A]}")
        for i, row in enumerate(self.A):
            for j in range(i, s):
                if row[j] != 0:
                    raise InvalidHyperparameterError(
                        f"A[{i}][{j}] = {row[j]} makes the method implicit; only explicit tableaus "
                        "(strictly lower-triangular A) are supported"
                    )
        if self.c is not None:
            if len(self.c) != s:
                raise InvalidHyperparameterError(f"c must have {s} entries, got {len(self.c)}")
            for i, (ci, row) in enumerate(zip(self.c, self.A)):
                if sp.expand(ci - sum(row)) != 0:
                    raise InvalidHyperparameterError(f"c[{i}] = {ci} is not the row sum {sum(row)} of A; fix the tableau")

    @property
    def stages(self) -> int:
        return len(self.b)

    def step(self, theta, grad, h):
        ks = []
        for row in self.A:
            terms = [a * k for a, k in zip(row, ks) if a != 0]
            ks.append(-grad(theta + h * sum(terms[1:], terms[0]) if terms else theta))
        terms = [bi * k for bi, k in zip(self.b, ks) if bi != 0]
        return theta + h * sum(terms[1:], terms[0]) if terms else theta

    @classmethod
    def from_tableau(cls, A: Sequence, b: Sequence, c: Sequence | None = None, label: str = "runge-kutta"):
        return cls(A=tuple(map(tuple, A)), b=tuple(b), c=None if c is None else tuple(c), label=label)


_half = sp.Rational(1, 2)
EULER = RungeKutta.from_tableau([[0]], [1], [0], label="euler")
MIDPOINT = RungeKutta.from_tableau([[0, 0], [_half, 0]], [0, 1], [0, _half], label="midpoint")
HEUN = RungeKutta.from_tableau([[0, 0], [1, 0]], [_half, _half], [0, 1], label="heun")
RK4 = RungeKutta.from_tableau(
    [[0, 0, 0, 0], [_half, 0, 0, 0], [0, _half, 0, 0], [0, 0, 1, 0]],
    [sp.Rational(1, 6), sp.Rational(1, 3), sp.Rational(1, 3), sp.Rational(1, 6)],
    [0, _half, _half, 1],
    label="rk4",
)
#: The named tableaus, by command-line name.
TABLEAUS = {"euler": EULER, "midpoint": MIDPOINT, "heun": HEUN, "rk4": RK4}
