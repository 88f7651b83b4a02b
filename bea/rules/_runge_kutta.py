"""Runge-Kutta maps of the gradient flow, explicit or implicit, given by a Butcher tableau."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sympy as sp

from .._errors import InvalidHyperparameterError
from ._base import Rule, exact
from ._operations import fixed_point

__all__ = [
    "RungeKutta",
    "EULER",
    "MIDPOINT",
    "HEUN",
    "RK4",
    "TABLEAUS",
    "BACKWARD_EULER",
    "GAUSS2",
    "GAUSS4",
    "RADAU_IIA3",
    "LOBATTO_IIIA2",
    "LOBATTO_IIIB2",
    "IMPLICIT_TABLEAUS",
]


@dataclasses.dataclass(frozen=True)
class RungeKutta(Rule):
    """A Runge-Kutta method applied to theta' = f(theta) = -grad E(theta).

        k_i = f(theta + h sum_j a_ij k_j),   theta_{n+1} = theta_n + h sum_i b_i k_i

    (Butcher, Numerical Methods for Ordinary Differential Equations, 3rd ed.,
    Wiley 2016, doi:10.1002/9781119121534; Hairer, Lubich & Wanner, Geometric
    Numerical Integration, Sections II.1 and III.1, doi:10.1007/3-540-30666-8).
    With `A` strictly lower triangular the stages are computed one after another
    (explicit); otherwise the stage equations k = f(theta + h A k) are solved
    together by `bea.rules.fixed_point`: exactly as power series in h by the engine
    (they have a unique solution near k = f(theta) for small h, by the implicit
    function theorem, for every tableau), to round-off on arrays. Entries may be
    irrational (Gauss: sqrt(3)); they stay exact. `c`, if given, must be the row sums
    of `A` (the engine treats autonomous fields; leave it out for tableaus whose
    nodes differ from the row sums, such as Lobatto IIIB).
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
        if self.c is not None:
            if len(self.c) != s:
                raise InvalidHyperparameterError(f"c must have {s} entries, got {len(self.c)}")
            for i, (ci, row) in enumerate(zip(self.c, self.A)):
                if sp.expand(ci - sum(row)) != 0:
                    raise InvalidHyperparameterError(f"c[{i}] = {ci} is not the row sum {sum(row)} of A; fix the tableau")

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        """Whether A is strictly lower triangular (each stage uses only the ones before it)."""
        return all(row[j] == 0 for i, row in enumerate(self.A) for j in range(i, len(row)))

    def step(self, theta, grad, h):
        if self.explicit:
            ks = []
            for row in self.A:
                ks.append(-grad(_point(theta, h, row, ks)))
        else:
            # the stage equations k_i = f(theta + h sum_j a_ij k_j), all stages at once, from k_i = f(theta)
            start = -grad(theta)
            ks = fixed_point(lambda ks: tuple(-grad(_point(theta, h, row, ks)) for row in self.A),
                             tuple(start for _ in self.b))
        return _point(theta, h, self.b, ks)

    @classmethod
    def from_tableau(cls, A: Sequence, b: Sequence, c: Sequence | None = None, label: str = "runge-kutta"):
        return cls(A=tuple(map(tuple, A)), b=tuple(b), c=None if c is None else tuple(c), label=label)


def _point(theta, h, weights, ks):
    """theta + h sum_j w_j k_j, skipping zero weights (theta itself when all vanish)."""
    terms = [w * k for w, k in zip(weights, ks) if w != 0]
    return theta + h * sum(terms[1:], terms[0]) if terms else theta


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
#: The named explicit tableaus, by command-line name.
TABLEAUS = {"euler": EULER, "midpoint": MIDPOINT, "heun": HEUN, "rk4": RK4}

# Implicit tableaus (Hairer, Lubich & Wanner 2006, Sec. II.1.3-II.1.4; Butcher 2016, Sec. 34).
_r3 = sp.sqrt(3)
_quarter = sp.Rational(1, 4)
#: Backward Euler: k = f(theta + h k), the proximal point step on a gradient field (order 1).
BACKWARD_EULER = RungeKutta.from_tableau([[1]], [1], [1], label="backward-euler")
#: The implicit midpoint rule, the 1-stage Gauss method (order 2, symmetric and symplectic).
GAUSS2 = RungeKutta.from_tableau([[_half]], [1], [_half], label="gauss2")
#: The 2-stage Gauss method (order 4), nodes 1/2 -+ sqrt(3)/6.
GAUSS4 = RungeKutta.from_tableau(
    [[_quarter, _quarter - _r3 / 6], [_quarter + _r3 / 6, _quarter]],
    [_half, _half],
    [_half - _r3 / 6, _half + _r3 / 6],
    label="gauss4",
)
#: The 2-stage Radau IIA method (order 3, stiffly accurate).
RADAU_IIA3 = RungeKutta.from_tableau(
    [[sp.Rational(5, 12), sp.Rational(-1, 12)], [sp.Rational(3, 4), _quarter]],
    [sp.Rational(3, 4), _quarter],
    [sp.Rational(1, 3), 1],
    label="radau-iia3",
)
#: The 2-stage Lobatto IIIA method: the trapezoidal rule (order 2).
LOBATTO_IIIA2 = RungeKutta.from_tableau([[0, 0], [_half, _half]], [_half, _half], [0, 1], label="lobatto-iiia2")
#: The 2-stage Lobatto IIIB method (order 2); its nodes (0, 1) are not the row sums (1/2, 1/2) of A, so c is
#: left out (autonomous fields only need A and b). With IIIA it forms the Lobatto IIIA-IIIB pair.
LOBATTO_IIIB2 = RungeKutta.from_tableau([[_half, 0], [_half, 0]], [_half, _half], label="lobatto-iiib2")
#: The named implicit tableaus, by command-line name.
IMPLICIT_TABLEAUS = {
    "backward-euler": BACKWARD_EULER,
    "gauss2": GAUSS2,
    "gauss4": GAUSS4,
    "radau-iia3": RADAU_IIA3,
    "lobatto-iiia2": LOBATTO_IIIA2,
    "lobatto-iiib2": LOBATTO_IIIB2,
}
