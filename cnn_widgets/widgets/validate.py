"""The one trait validation of the widgets: :class:`InvalidTrait` and the checks a ``@validate``
method returns through. A refused value raises, and traitlets keeps the old one."""
from __future__ import annotations

from collections.abc import Collection
from contextlib import contextmanager

import traitlets as T

from ..engine import CnnWidgetsError, InvalidArgument

ENGINE_ERRORS = (CnnWidgetsError, ValueError, TypeError, LookupError)


class InvalidTrait(T.TraitError, InvalidArgument):
    """A trait value a widget refuses: a ``TraitError`` for traitlets (which then keeps the
    old value) and an ``InvalidArgument`` (a ``CnnWidgetsError``) for the caller."""


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

