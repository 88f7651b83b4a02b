"""The recursive correction formula, in its general (Lie-derivative) form.

Barrett & Dherin (2021), Appendix A, "Implicit Gradient Regularization",
ICLR, arXiv:2009.11162: the exact flow of f~ = f_0 + h f_1 + h^2 f_2 + ...
started at theta is

    theta(h) = theta + sum_{l >= 0} h^{l+1} (f_l + sum_{n+k=l+1, n>=2} L_{n,k} / n!),

where theta^{(n)}(0) = sum_k h^k L_{n,k}. Matching a step expansion
Phi_h(theta) = theta + sum_l h^{l+1} d_{l+1} order by order gives

    f_l = d_{l+1} - sum_{n+k=l+1, n>=2} L_{n,k} / n!                     (A.14, generalised)

(for explicit Euler d_1 = f, d_{l+1} = 0 for l >= 1, which is A.14 itself).

The paper writes theta'' = d/dtheta |f~|^2/2 (A.8, A.11). That equals
f~' f~ only when the Jacobian f~' is symmetric, i.e. when every correction is
a gradient field, which fails from f_2 of gradient descent on. We use the
identity that holds for any vector field instead: the time derivative along
the flow is the Lie derivative, theta^{(n)} = (theta^{(n-1)})' f~, so

    L_{1,k} = f_k,        L_{n,k} = sum_{i+j=k} (L_{n-1,i})' f_j.

See also Hairer, Lubich & Wanner, Geometric Numerical Integration, 2nd ed.,
Springer 2006, Section IX.1, doi:10.1007/3-540-30666-8.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import factorial

from sympy import Rational

from ._algebra import Algebra

__all__ = ["corrections_from_expansion"]

Vector = tuple


def corrections_from_expansion(algebra: Algebra, expansion: Sequence[Vector], order: int) -> list[Vector]:
    """f_0, ..., f_order from the step expansion d_1, ..., d_{order+1} (d_k = expansion[k-1])."""
    if len(expansion) < order + 1:
        raise ValueError(f"need d_1..d_{order + 1}, got {len(expansion)} terms")
    dim = len(expansion[0])
    jacobians: dict[tuple[int, int], list] = {}
    lie: dict[tuple[int, int], Vector] = {}  # (n, k) -> L_{n,k}
    fields: list[Vector] = []

    def jacobian(n: int, k: int) -> list:
        key = (n, k)
        if key not in jacobians:
            vector = lie[key]
            jacobians[key] = [[algebra.diff(component, m) for m in range(dim)] for component in vector]
        return jacobians[key]

    def lie_term(n: int, k: int) -> Vector:
        # L_{n,k} = sum_{i+j=k} (L_{n-1,i})' f_j
        acc = [algebra.zero] * dim
        for i in range(k + 1):
            jac = jacobian(n - 1, i)
            f_j = fields[k - i]
            nonzero = [m for m in range(dim) if not algebra.is_zero(f_j[m])]
            for c in range(dim):
                row = jac[c]
                for m in nonzero:
                    if not algebra.is_zero(row[m]):
                        acc[c] = acc[c] + algebra.mul(row[m], f_j[m])
        return tuple(acc)

    for l in range(order + 1):
        acc = list(expansion[l])
        for n in range(2, l + 2):
            k = l + 1 - n
            lie[(n, k)] = lie_term(n, k)
            weight = Rational(1, factorial(n))
            for c in range(dim):
                if not algebra.is_zero(lie[(n, k)][c]):
                    acc[c] = acc[c] - lie[(n, k)][c] * weight
        fields.append(tuple(acc))
        lie[(1, l)] = fields[l]
    return fields
