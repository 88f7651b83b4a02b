"""Exact zero tests for polynomials in atoms that are not independent: sqrt(v)^2 = v, (1/v) v = 1.

`DifferentialAlgebra` writes Adam's preconditioner as a polynomial in the parameters and
the atoms r = sqrt(v), s = 1/v of its second moment v. Such a polynomial P can be zero
without being the zero polynomial (r^2 s - 1), so the slow manifold's zero tests used to
substitute the atoms and `expand` (most of the time of an Adam derivation). Here P is
reduced to a canonical form instead, in the same sparse polynomial ring:

* every inverse atom s = 1/v of degree d: P -> v^d P(s = 1/v), a polynomial (v != 0);
* every square root r = sqrt(w): r^e -> w^(e div 2) r^(e mod 2).

What is left is sum_S c_S prod_{i in S} r_i with c_S free of atoms, and it vanishes iff
every c_S does, because the products prod_{i in S} sqrt(w_i) are linearly independent over
the field of the parameters as long as no product of the w_i over a nonempty S is a square
there (Besicovitch 1940, "On the linear independence of fractional powers of integers",
J. London Math. Soc. 15, doi:10.1112/jlms/s1-15.1.3; the field version is Kummer theory).
That condition is checked once, by square-free factorization; when it fails, or an atom
is of another kind (exp, tanh, a cube root), `reduce` returns None and the caller falls
back to expanded expressions.

Most values tested are not zero, and the canonical form of a large one is costly (powers
of v). So `certainly_nonzero` first maps the value to the prime field F_p, p = 2^61 - 1:
the parameters and constants go to random residues, sqrt(w) to a square root of w(point)
mod p (a point where w is a square), 1/v to the inverse of v(point). Under the
independence above this is a ring homomorphism of the algebra the atoms generate, so a
nonzero image proves the value nonzero; a zero image (a zero value, or bad luck) leaves
the decision to the exact canonical form. The filter never declares a zero.
"""

from __future__ import annotations

import random
from itertools import combinations

import sympy as sp

__all__ = ["AtomRelations"]

_MAX_ROOTS = 6  # 2^6 subsets to check for squares; beyond that, fall back
_PRIME = 2**61 - 1  # = 3 mod 4: sqrt(a) = a^((p+1)/4) when a is a square
_DRAWS = 20  # points tried for one where every v is invertible and every w a square


class AtomRelations:
    """The relations of a `DifferentialAlgebra`'s atoms and the canonical reduction they allow."""

    def __init__(self, ring, atoms: list, convert):
        """atoms: (generator, expression) pairs; convert(expr) -> ring element (polynomial in the parameters)."""
        self.ring = ring
        self.inverses: list = []  # (generator index, base as a ring element)
        self.roots: list = []
        self.others: list = []  # generator indices of atoms with no relation known here
        index = {g: i for i, g in enumerate(ring.gens)}
        atom_indices = {index[g] for g, _ in atoms}
        for gen, expr in atoms:
            kind, base = _kind(expr)
            element = None
            if kind is not None:
                try:
                    element = convert(base)
                except Exception:  # noqa: BLE001 - a base outside the ring: no relation used
                    element = None
            if element is None or any(element.degree(ring.gens[j]) for j in atom_indices):
                self.others.append(index[gen])
            elif kind == "inverse":
                self.inverses.append((index[gen], element))
            else:
                self.roots.append((index[gen], element, base))
        self.independent = len(self.roots) <= _MAX_ROOTS and _independent([b for _, _, b in self.roots])
        self._images = None

    def certainly_nonzero(self, value) -> bool:
        """True when the value's image in F_p is nonzero (a proof); False decides nothing."""
        if self.others or not self.independent:
            return False
        if self._images is None:
            self._images = self._draw()
        if not self._images:
            return False
        images, coefficient = self._images
        total = 0
        for monom, coeff in value.terms():
            term = coefficient(coeff)
            if term is None:
                return False
            for image, e in zip(images, monom):
                if e:
                    term = term * pow(image, e, _PRIME) % _PRIME
            total += term
        return total % _PRIME != 0

    def _draw(self):
        """(images of the ring's generators, image of a coefficient) at a random admissible point, or ()."""
        rng = random.Random(0x5EED)
        symbols = set(self.ring.symbols) | set(getattr(self.ring.domain, "symbols", ()))
        atoms = {i for i, _ in self.inverses} | {i for i, _, _ in self.roots}
        for _ in range(_DRAWS):
            point = {x: rng.randrange(1, _PRIME) for x in symbols}
            images = [point[x] for x in self.ring.symbols]
            coefficient = _coefficient_image(self.ring.domain, point)
            ok = True
            for i, base in self.inverses + [(i, b) for i, b, _ in self.roots]:
                value = _image(base, images, coefficient, atoms)
                if value is None or value == 0:
                    ok = False
                    break
                if any(i == j for j, _ in self.inverses):
                    images[i] = pow(value, -1, _PRIME)
                else:
                    root = pow(value, (_PRIME + 1) // 4, _PRIME)
                    if root * root % _PRIME != value:
                        ok = False  # not a square here: another point
                        break
                    images[i] = root
            if ok:
                return images, coefficient
        return ()

    def reduce(self, value):
        """The canonical form of value (zero iff value is zero), or None when it cannot be decided here."""
        if any(value.degree(self.ring.gens[i]) for i in self.others):
            return None
        if self.roots and not self.independent:
            return None
        for i, base in self.inverses:
            value = _clear_inverse(self.ring, value, i, base)
        for i, base, _ in self.roots:
            value = _reduce_root(self.ring, value, i, base)
        return value


def _coefficient_image(domain, point):
    """The map of coefficients (QQ, or QQ(constants) on FLINT) to F_p at `point`; None where a denominator vanishes."""
    symbols = getattr(domain, "symbols", None)

    def image(c):
        if symbols is not None and hasattr(c, "numer") and hasattr(c.numer, "context"):
            values = [point[x] % _PRIME for x in symbols]
            numer, denom = int(c.numer(*values)) % _PRIME, int(c.denom(*values)) % _PRIME
        else:
            numer, denom = int(c.numerator) % _PRIME, int(c.denominator) % _PRIME
        return None if denom == 0 else numer * pow(denom, -1, _PRIME) % _PRIME

    return image


def _image(value, images, coefficient, skip) -> int | None:
    """A ring element free of the generators in `skip`, mapped to F_p."""
    total = 0
    for monom, coeff in value.terms():
        term = coefficient(coeff)
        if term is None:
            return None
        for i, (image, e) in enumerate(zip(images, monom)):
            if e:
                if i in skip:
                    return None
                term = term * pow(image, e, _PRIME) % _PRIME
        total += term
    return total % _PRIME


def _kind(expr) -> tuple:
    if isinstance(expr, sp.Pow) and expr.exp == -1:
        return "inverse", expr.base
    if isinstance(expr, sp.Pow) and expr.exp == sp.Rational(1, 2):
        return "root", expr.base
    return None, None


def _by_degree(ring, value, i: int) -> dict:
    """{j: coefficient of gen_i^j} for a sparse polynomial, gen_i removed from the coefficients."""
    parts: dict = {}
    for monom, coeff in value.terms():
        j = monom[i]
        rest = monom[:i] + (0,) + monom[i + 1:]
        parts.setdefault(j, {})[rest] = coeff
    return {j: ring.from_dict(terms) for j, terms in parts.items()}


def _clear_inverse(ring, value, i: int, base):
    parts = _by_degree(ring, value, i)
    top = max(parts, default=0)
    if top == 0:
        return value
    return sum((c * base ** (top - j) for j, c in parts.items()), ring.zero)


def _reduce_root(ring, value, i: int, base):
    parts = _by_degree(ring, value, i)
    if max(parts, default=0) < 2:
        return value
    gen = ring.gens[i]
    return sum((c * base ** (j // 2) * gen ** (j % 2) for j, c in parts.items()), ring.zero)


def _independent(bases: list) -> bool:
    """No product of the bases over a nonempty subset is a square (up to a rational constant, conservatively)."""
    for size in range(1, len(bases) + 1):
        for subset in combinations(bases, size):
            _, factors = sp.sqf_list(sp.Mul(*subset))
            if all(m % 2 == 0 for _, m in factors):
                return False
    return True
