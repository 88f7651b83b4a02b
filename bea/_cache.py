"""Bounded memoization: a derivation repeated across a sweep or a notebook is computed once per process.

`memoize(maxsize)` wraps a function whose result depends only on its arguments
(`bea.modified_equation`: the rule, the order, the losses, the parameters, the
values). The key is the arguments normalized to hashable values (`freeze`):
lists become tuples, dicts sorted item tuples, numbers keep their type (1 and
1.0 are different keys, although they derive the same thing), and SymPy objects
and rules (frozen dataclasses) compare by value. Arguments that cannot be
frozen (a NumPy array in a rule's field, an unhashable user object) bypass the
cache: the call derives as it would without it, never from a wrong entry.

A hit returns the stored result itself when it is immutable all the way down
(frozen dataclasses of tuples, SymPy expressions and immutable matrices, as
every bea result is), and a deep copy otherwise, so a caller cannot change what
the next caller gets. The least recently used entry goes first once `maxsize`
entries are held; exceptions are not cached.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import numbers
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from fractions import Fraction

__all__ = ["BoundedCache", "freeze", "is_immutable", "memoize"]

_MISSING = object()


class BoundedCache:
    """A least-recently-used mapping of at most `maxsize` entries, with hit and miss counts; thread-safe."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key, default=None):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key) -> bool:
        return key in self._data


class _Unfreezable(Exception):
    pass


def freeze(value) -> Hashable | None:
    """`value` as a hashable key that is equal only for equal inputs, or None where that is not possible.

    Containers become tuples tagged with their kind; numbers and strings are
    tagged with their type (so that True, 1 and 1.0 differ); everything else must
    be hashable itself (SymPy objects, frozen dataclasses such as rules, functions).
    """
    try:
        key = _freeze(value)
        hash(key)
    except (_Unfreezable, TypeError):
        return None
    return key


def _freeze(value):
    if value is None or isinstance(value, (str, bytes, bool, numbers.Number)) and not hasattr(value, "free_symbols"):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        items = [(_freeze(k), _freeze(v)) for k, v in value.items()]
        return ("dict", tuple(sorted(items, key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_freeze(v) for v in value))
    if getattr(type(value), "__hash__", None) is None or type(value).__module__.startswith("numpy"):
        raise _Unfreezable  # an unhashable object, or an array (whose == is element-wise)
    return value


def is_immutable(value, _seen=None) -> bool:
    """Whether nothing reachable from `value` can be changed in place (tuples, frozen dataclasses,
    SymPy expressions and immutable matrices, numbers, strings, functions, classes)."""
    import sympy as sp

    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return True
    seen.add(id(value))
    if value is None or isinstance(value, (str, bytes, bool, numbers.Number, Fraction, type, range)):
        return not isinstance(value, sp.MatrixBase)
    if isinstance(value, sp.Basic):
        return True  # SymPy expressions and ImmutableMatrix (mutable matrices are not Basic)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial, types.MethodType)):
        return True  # code, not data: a rule's step function
    if isinstance(value, (tuple, frozenset)):
        return all(is_immutable(v, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not type(value).__dataclass_params__.frozen:
            return False
        extra = set(getattr(value, "__dict__", {})) - {f.name for f in dataclasses.fields(value)}
        return not extra and all(is_immutable(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return False


def memoize(maxsize: int = 32, *, ignore: tuple[str, ...] = (), cacheable: Callable | None = None) -> Callable:
    """Decorator: remember the last `maxsize` results of a function of its arguments alone.

    `ignore` names arguments that do not change the result (`progress`); `cacheable(arguments)`, if
    given, may refuse the cache for a call (a rule running the user's own function, which may read
    state that changes between calls). A call
    with a private argument (a name starting with `_`) set, or with arguments
    `freeze` cannot turn into a key, is not cached. The wrapper has `.cache` (a
    `BoundedCache`, with `hits` and `misses`) and `.cache_clear()`.
    """

    def decorator(fn):
        signature = inspect.signature(fn)
        cache = BoundedCache(maxsize)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)  # let the function itself say what is wrong with the call
            bound.apply_defaults()
            arguments = bound.arguments
            if any(name.startswith("_") and value is not None for name, value in arguments.items()):
                return fn(*args, **kwargs)
            if cacheable is not None and not cacheable(arguments):
                return fn(*args, **kwargs)
            key = freeze(tuple((name, value) for name, value in arguments.items() if name not in ignore))
            if key is None:
                return fn(*args, **kwargs)
            hit = cache.get(key, _MISSING)
            if hit is not _MISSING:
                stored, immutable = hit
                return stored if immutable else copy.deepcopy(stored)
            result = fn(*args, **kwargs)
            immutable = is_immutable(result)
            cache.put(key, (result if immutable else copy.deepcopy(result), immutable))
            return result

        wrapper.cache = cache
        wrapper.cache_clear = cache.clear
        return wrapper

    return decorator


def built_in(value) -> bool:
    """Whether nothing reachable from a value's fields is a function defined outside bea: a rule built from
    bea's own classes and numbers, whose result depends on its fields alone (user functions may read
    globals or closures that change between calls, and compare by identity)."""
    if callable(value) and not isinstance(value, type) and not dataclasses.is_dataclass(value):
        module = getattr(value, "__module__", "") or ""
        return module == "bea" or module.startswith("bea.")  # not a user's beatrix_rules
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(built_in(v) for v in value)
    if isinstance(value, dict):
        return all(built_in(k) and built_in(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(built_in(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True
