"""The one trait validation of the widgets: :class:`InvalidTrait` and the checks a ``@validate``
method returns through. A refused value raises, and traitlets keeps the old one."""
from __future__ import annotations

import math
from collections.abc import Collection
from contextlib import contextmanager

import numpy as np
import traitlets as T

from ..engine import CnnWidgetsError, InvalidArgument
from .units import MAX_ITEMS, parse_indices

ENGINE_ERRORS = (CnnWidgetsError, ValueError, TypeError, LookupError)
MAX_STEPS = 100_000       # gradient steps one widget run may ask for


class InvalidTrait(T.TraitError, InvalidArgument):
    """A trait value a widget refuses: a ``TraitError`` for traitlets (which then keeps the
    old value) and an ``InvalidArgument`` (a ``CnnWidgetsError``) for the caller."""


def whole(name: str, value) -> int:
    """``value`` as an int if it is a Python or numpy integer; a bool (an int to Python, never
    a row, a count or a unit) or anything else is an InvalidTrait."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidTrait(f"{name} must be a whole number; got {value!r}")
    return int(value)


def finite(name: str, value) -> float:
    """``value`` as a float if it is a finite real number (not a bool), else an InvalidTrait."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value)):
        raise InvalidTrait(f"{name} must be a finite number; got {value!r}")
    return float(value)


class Whole(T.Int):
    """An int trait that refuses booleans and takes numpy integers (see :func:`whole`)."""

    def validate(self, obj, value):
        return super().validate(obj, whole(self.name, value))


class Finite(T.Float):
    """A float trait that refuses booleans, NaN and infinities (see :func:`finite`)."""

    def validate(self, obj, value):
        return super().validate(obj, finite(self.name, value))


class Checked(T.Any):
    """Any value goes to the widget's ``@validate`` method, None included (traitlets' ``Any``
    lets None past it)."""

    allow_none = False


def in_range(name: str, value, lo, hi):
    """``value`` if lo <= value <= hi, else an InvalidTrait naming the valid range."""
    if not lo <= value <= hi:
        raise InvalidTrait(f"{name} must be in {lo}..{hi}; got {value!r}")
    return value


def one_of(name: str, value, options: Collection, note: str = ""):
    """``value`` if it is one of ``options``, else an InvalidTrait listing them (and ``note``,
    e.g. why those)."""
    if value not in options:
        raise InvalidTrait(f"{name} must be one of {list(options)}{note}; got {value!r}")
    return value


@contextmanager
def refused(prefix: str = "", errors: tuple[type[BaseException], ...] = ENGINE_ERRORS):
    """Turn ``errors`` raised inside (the engine refusing a layer, a unit, an objective) into
    an InvalidTrait with the same message after ``prefix``."""
    try:
        yield
    except InvalidTrait:
        raise
    except errors as exc:
        raise InvalidTrait(f"{prefix}{exc}") from exc



def dataset_rows(value, n: int, what: str, limit: int = MAX_ITEMS) -> list[int]:
    """An ``indices`` trait's dataset rows, from a list (or array) of ints or their text
    ("0, 5, 10-12"): each in 0..n-1 (``n``: the dataset's images), at most ``limit`` of them;
    ``what`` names a row in the errors (e.g. "input row")."""
    if isinstance(value, str):
        with refused():
            value = parse_indices(value, n, what, limit=limit)
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise InvalidTrait(f"indices must be a list of dataset rows or their text (e.g. "
                           f"'0, 5, 10-12'); got {value!r}")
    rows = list(value)
    bad = [i for i in rows if isinstance(i, bool) or not isinstance(i, (int, np.integer))
           or not 0 <= i < n][:5]
    if bad:
        raise InvalidTrait(f"{what}s {bad} out of range: the dataset has {n} images"
                           + (f" (0..{n - 1})" if n else ""))
    if len(rows) > limit:
        raise InvalidTrait(f"{len(rows)} {what}s asked for; at most {limit} at once")
    return [int(i) for i in rows]
