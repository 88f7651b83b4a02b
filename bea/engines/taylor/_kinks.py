"""Non-differentiable operations on the path of a JAX function, and how close the point is to their kinks.

The numeric engine differentiates an optimizer step in h. At `sign`, `abs`, `max`/`min` (relu, clipping), comparisons
feeding `select_n` (`jnp.where`), `floor`/`ceil`/`round`, `clamp`, `reduce_max`/`argmax` and `sort`, JAX's derivative
is the one-sided (or zero) derivative of the piece the point lies on: the Taylor coefficients, hence the modified
field, are those of that smooth piece, valid only while the iterates stay on it (Hairer, Lubich & Wanner,
doi:10.1007/3-540-30666-8, Ch. IX assume a smooth step). `find_kinks` runs the function's jaxpr on the concrete
arguments in one compiled call (inside jit, custom_jvp/custom_vjp, remat, the branch a cond takes, scans up to
`_UNROLL` steps; while loops and longer scans are searched, not evaluated) and reports each such operation that
depends on the arguments and feeds an output: the output leaves it feeds and the relative distance of its argument
to the kink, e.g. min_i |x_i| / max_j |x_j| for sign(x) (optax.lion, Chen et al., arXiv:2302.06675).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ..._errors import InvalidHyperparameterError, InvalidRuleError
from ._step import CALLS

__all__ = ["Kink", "find_kinks"]

_INPUT, _EXTREMUM = "input", "extremum"  # taint markers: depends on the arguments; is a max/min (up to its shape)
_EXTREMA = ("max", "min", "reduce_max", "reduce_min", "clamp")
_SHAPE_OPS = ("broadcast_in_dim", "reshape", "squeeze", "expand_dims", "convert_element_type", "copy", "transpose")
_KINKS = frozenset(("sign", "abs", "max", "min", "lt", "gt", "le", "ge", "eq", "ne", "clamp", "floor", "ceil", "round",
                    "reduce_max", "argmax", "reduce_min", "argmin", "sort",  # the ones below without a distance:
                    "cummax", "cummin", "reduce_window_max", "reduce_window_min", "select_and_scatter_add",
                    "select_and_gather_add", "top_k", "rem"))
_UNROLL = 32  # scans up to this length are unrolled to evaluate their kinks; longer ones and while loops are not


@dataclasses.dataclass(frozen=True)
class Kink:
    """One non-differentiable operation on the path of `fn(*args)`.

    `operation` is JAX's primitive name, `location` the first frame outside JAX that emitted it ("file.py:123
    (function)", "" if unknown), `parameters` the output leaves (`jax.tree_util.keystr`) that depend on it, `near`
    the components of its argument within the tolerance of the kink, `distance` the least relative one (inf: not run).
    """

    operation: str
    location: str
    parameters: tuple[str, ...]
    near: int
    distance: float

    def describe(self) -> str:
        """One line: the operation, where, what it feeds, how close the point is to the kink."""
        where = f" at {self.location}" if self.location else ""
        if math.isinf(self.distance):
            closeness = "distance to the kink not evaluated (a while loop, a long scan, a branch not taken)"
        elif self.near:
            closeness = f"{self.near} component{'s' * (self.near > 1)} at the kink (relative distance {self.distance:.1e})"
        else:
            closeness = f"nearest component at relative distance {self.distance:.1e} from the kink"
        fed, more = ", ".join(p or "the output" for p in self.parameters[:4]), len(self.parameters) - 4
        return f"{self.operation}{where} feeding {fed}{f' and {more} more' if more > 0 else ''}: {closeness}"


def _scaled(gap, *arrays):
    """|gap| relative to the largest finite magnitude in `arrays`: 0 at the kink, inf against an infinite bound."""
    scale = max(float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)) for a in map(np.asarray, arrays))
    gap = np.abs(np.asarray(gap, dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gap == 0, 0.0, gap / scale)  # nan (inf - inf) is no evidence of a kink: ignored


def _distances(eqn, ins, outs):
    """Relative distance of each component to the kink of `eqn`, or None where none is computed."""
    name, ins = eqn.primitive.name, [np.asarray(v) for v in ins]
    if name in ("sign", "abs"):
        return _scaled(ins[0], ins[0])
    if name in ("max", "min", "lt", "gt", "le", "ge", "eq", "ne"):
        return _scaled(ins[0] - ins[1], ins[0], ins[1])
    if name == "clamp":  # clamp(low, x, high)
        return _scaled(np.minimum(np.abs(ins[1] - ins[0]), np.abs(ins[2] - ins[1])), *ins)
    if name in ("floor", "ceil"):
        return np.abs(ins[0] - np.round(ins[0]))
    if name == "round":
        return np.abs(ins[0] - np.floor(ins[0]) - 0.5)
    if name in ("reduce_max", "argmax", "reduce_min", "argmin"):  # the two largest (smallest) along the axes
        x, axes = ins[0], tuple(eqn.params["axes"])
        rows = np.sort(np.moveaxis(x, axes, tuple(range(-len(axes), 0))).reshape(-1, math.prod(x.shape[a] for a in axes)))
        top = rows[:, :2] if name in ("reduce_min", "argmin") else rows[:, -2:]
        return _scaled(top[:, 1] - top[:, 0], x) if rows.shape[1] > 1 else np.empty(0)
    if name == "sort":  # neighbours among the sorted keys
        return _scaled(np.diff(outs[0], axis=eqn.params["dimension"]), outs[0])
    return None


def _location(eqn) -> str:
    """"file.py:123 (function)" of the first frame outside JAX that emitted `eqn` ("" when JAX does not say)."""
    from jax._src import source_info_util  # private, hence the broad except: without it only the location is lost

    try:
        frame = source_info_util.user_frame(eqn.source_info.traceback)
        path = frame.file_name.split("site-packages" + os.sep)[-1].removeprefix(os.getcwd() + os.sep)
        return f"{path}:{frame.start_line} ({frame.function_name.replace('<locals>.', '')})"
    except Exception:  # noqa: BLE001
        return ""


def _is_kink(eqn, taints) -> bool:
    """A kink primitive with a floating operand that depends on the arguments (constants and counters are smooth).
    Not eq/ne of x with itself (isnan) or with a max of x (the tie tests of max's and reduce_max's derivatives)."""
    if eqn.primitive.name in ("eq", "ne") and (eqn.invars[0] is eqn.invars[1] or any(_EXTREMUM in t for t in taints)):
        return False
    return eqn.primitive.name in _KINKS and any(_floating(v) and _INPUT in t for v, t in zip(eqn.invars, taints))


def _floating(var) -> bool:
    import jax.numpy as jnp
    return jnp.issubdtype(getattr(var.aval, "dtype", np.bool_), jnp.inexact)


class _Walker:
    """Runs a jaxpr equation by equation under `jax.jit` (one compilation), carrying per value the set of kinks
    (and `_INPUT`) it depends on, and returning the operands of every kink it passes for `_distances`."""

    def __init__(self):
        self.kinks, self.occurrences, self.enclosing, self.guards = {}, [], [], []

    def record(self, eqn, key, ins, outs):
        if key not in self.kinks:  # JAX's own functions (jax.nn.relu) have no frame: name the call that entered them
            location = next(filter(None, map(_location, [eqn, *reversed(self.enclosing)])), "")
            self.kinks[key] = (eqn, location)
        if ins is not None:  # the arrays come out of the compiled call; the branches taken are checked on them
            arrays = (list(ins), list(outs) if eqn.primitive.name == "sort" else [], [i for i, _ in self.guards])
            self.occurrences.append((key, arrays, [b for _, b in self.guards]))

    def jaxpr(self, jaxpr, consts, values, taints, path):
        from jax.extend.core import ClosedJaxpr, Literal

        if isinstance(jaxpr, ClosedJaxpr):
            jaxpr, consts = jaxpr.jaxpr, jaxpr.consts
        env = {v: (c, frozenset()) for v, c in zip(jaxpr.constvars, consts)}
        env.update((v, (x, t)) for v, x, t in zip(jaxpr.invars, values, taints))
        read = lambda v: (v.val, frozenset()) if isinstance(v, Literal) else env[v]  # noqa: E731
        for eqn in jaxpr.eqns:
            ins, in_taints = zip(*map(read, eqn.invars)) if eqn.invars else ((), ())
            outs, out_taints = self.equation(eqn, list(ins), list(in_taints), path + (id(eqn),))
            env.update((v, (x, t)) for v, x, t in zip(eqn.outvars, outs, out_taints))
        outs = [read(v) for v in jaxpr.outvars]
        return [x for x, _ in outs], [t for _, t in outs]

    def equation(self, eqn, ins, taints, key):
        name, params = eqn.primitive.name, eqn.params
        self.enclosing.append(eqn)
        if name in CALLS and ("jaxpr" in params or "call_jaxpr" in params):
            outs, out_taints = self.jaxpr(params.get("jaxpr", params.get("call_jaxpr")), (), ins, taints, key)
        elif name == "scan" and 0 < params["length"] <= _UNROLL:
            outs, out_taints = self.scan(params, ins, taints, key)
        else:
            with eqn.ctx.manager:  # as jax.core.eval_jaxpr does
                outs = eqn.primitive.bind(*ins, **eqn.primitive.get_bind_params(params))
            outs = list(outs) if eqn.primitive.multiple_results else [outs]
            union = frozenset().union(*taints) - (frozenset() if name in _SHAPE_OPS else {_EXTREMUM})
            if name == "stop_gradient":  # derivatives do not flow through it (logsumexp's max shift): kinks stop here
                union &= {_INPUT}
            if name == "cond":  # every branch, its kinks checked only where it is the one taken
                for number, branch in enumerate(params["branches"]):
                    self.guards.append((ins[0], (number, len(params["branches"]))))
                    union = union.union(*self.jaxpr(branch, (), ins[1:], taints[1:], key)[1])
                    self.guards.pop()
            union |= {_EXTREMUM} if name in _EXTREMA else frozenset()
            out_taints = [union | self.unevaluated(params, key) if _INPUT in union and name != "cond" else union] * len(outs)
        self.enclosing.pop()
        if _is_kink(eqn, taints):
            self.record(eqn, key, ins, outs)
            out_taints = [t | {key} for t in out_taints]
        return outs, out_taints

    def unevaluated(self, params, path):
        """Kinks inside sub-jaxprs not run here (while loops, long scans): reported without a distance."""
        from jax.extend.core import jaxprs_in_params

        keys = set()
        for eqn in (eqn for jaxpr in jaxprs_in_params(params) for eqn in jaxpr.eqns):
            key = path + (id(eqn),)
            if eqn.primitive.name in _KINKS and any(map(_floating, eqn.invars)):
                self.record(eqn, key, None, None)
                keys.add(key)
            keys |= self.unevaluated(eqn.params, key)
        return frozenset(keys)

    def scan(self, params, ins, taints, key):
        """A short scan unrolled, so that its kinks are evaluated at every iteration."""
        import jax.numpy as jnp

        nc, ncarry, length = params["num_consts"], params["num_carry"], params["length"]
        carry, carry_taints = ins[nc:nc + ncarry], taints[nc:nc + ncarry]
        xs, ys, ys_taints = ins[nc + ncarry:], [None] * length, None
        for i in reversed(range(length)) if params["reverse"] else range(length):
            outs, out_taints = self.jaxpr(params["jaxpr"], (), ins[:nc] + carry + [x[i] for x in xs],
                                          taints[:nc] + carry_taints + taints[nc + ncarry:], key)
            carry, carry_taints, ys[i] = outs[:ncarry], out_taints[:ncarry], outs[ncarry:]
            ys_taints = [a | b for a, b in zip(ys_taints, out_taints[ncarry:])] if ys_taints else out_taints[ncarry:]
        return carry + [jnp.stack(column) for column in zip(*ys)], carry_taints + ys_taints


def _closeness(eqn, occurrences, tolerance):
    """(near, distance), the worst over the occurrences of one kink (a loop's iterations); None where it was
    evaluated and no component is at a finite distance (x == inf in nan_to_num, max(x, -inf), a max of one)."""
    near, distance, evaluated = 0, math.inf, False
    for (ins, outs, indices), branches in occurrences:
        if all(int(np.clip(i, 0, n - 1)) == b for i, (b, n) in zip(indices, branches)):
            d = _distances(eqn, ins, outs)
            evaluated, d = evaluated or d is not None, np.empty(0) if d is None else np.asarray(d)[~np.isnan(d)]
            near, distance = max(near, int(np.sum(d <= tolerance))), min(distance, float(np.min(d, initial=math.inf)))
    return None if evaluated and math.isinf(distance) else (near, distance)


def find_kinks(fn, *args, tolerance: float = 1e-12) -> tuple[Kink, ...]:
    """The non-differentiable operations on the path of `fn(*args)` that depend on `args` and feed its output.

    `fn(*args)` returns a pytree; `args` are concrete pytrees. Each `Kink` names the output leaves it feeds
    (forward data flow; kinks seen only through `stop_gradient` do not count) and the components of its argument
    within `tolerance` of the kink: |x| / max|x| for sign/abs, |a - b| / max(|a|, |b|) (over the array) for
    max/min and comparisons, the gap of the two largest values for reduce_max/argmax, of neighbours for sort,
    to the nearer bound for clamp, to the nearest integer (half-integer: round) for floor/ceil. Operations on
    constants or integers (step counters), isnan/isinf tests and the tie tests in max's derivative are not reported.
    """
    import jax

    if not callable(fn):
        raise InvalidRuleError(f"find_kinks needs a function, got {type(fn).__name__}; pass fn with fn(*args) -> pytree")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < math.inf):
        raise InvalidHyperparameterError(f"tolerance must be a finite number >= 0 (a relative distance), got {tolerance!r}")
    closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    leaves, walker = jax.tree_util.tree_leaves(args), _Walker()

    def run(*values):
        walker.out_taints = walker.jaxpr(closed, (), list(values), [frozenset({_INPUT})] * len(values), ())[1]
        return [arrays for _, arrays, _ in walker.occurrences]

    arrays, kinks = jax.jit(run)(*leaves), []
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(shape)[0]]
    for key, (eqn, location) in walker.kinks.items():
        fed = tuple(p for p, t in zip(paths, walker.out_taints) if key in t)
        closeness = fed and _closeness(eqn, [(a, b) for (k, _, b), a in zip(walker.occurrences, arrays) if k == key], tolerance)
        if closeness:
            kinks.append(Kink(operation=eqn.primitive.name, location=location, parameters=fed, near=closeness[0],
                              distance=closeness[1]))
    return tuple(kinks)
