"""Checks of the numbers and lists the engine's public calls take: each raises
:class:`InvalidType` / :class:`InvalidArgument` naming the argument and what it accepts; and
of the numbers a computation gives back (:func:`finite`)."""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from .errors import InvalidArgument, InvalidType, NonFiniteResult


def integer(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum] (either bound optional); a float with an
    integral value is accepted, a bool is not."""
    if isinstance(value, bool) or not (isinstance(value, Integral) or (
            isinstance(value, Real) and math.isfinite(value) and float(value).is_integer())):
        raise InvalidType(f"{name} must be an integer{_range(minimum, maximum)}; got {value!r}")
    v = int(value) if isinstance(value, Integral) else int(float(value))
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise InvalidArgument(f"{name} must be an integer{_range(minimum, maximum)}; got {v}")
    return v


def count(name: str, value, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (a number of images, steps, bins, ...)."""
    return integer(name, value, minimum)


def optional_count(name: str, value, minimum: int = 1) -> int | None:
    """None, or :func:`count`."""
    return None if value is None else count(name, value, minimum)


def number(name: str, value, *, above: float | None = None, at_least: float | None = None,
           below: float | None = None) -> float:
    """``value`` as a finite float, > ``above``, >= ``at_least`` and < ``below`` (each optional)."""
    want = " and ".join(f"{op} {b:g}" for op, b in ((">", above), (">=", at_least), ("<", below))
                        if b is not None)
    want = f"a finite number {want}".rstrip()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidType(f"{name} must be {want}; got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (above is not None and v <= above) or \
            (at_least is not None and v < at_least) or (below is not None and v >= below):
        raise InvalidArgument(f"{name} must be {want}; got {value!r}")
    return v


# numpy's and scikit-learn's seeds stop at 2**32 - 1 (torch's at 2**64 - 1): one range for all
MAX_SEED = 2**32 - 1


def seed(value) -> int:
    """A random seed: an integer in 0..2**32 - 1 (every generator the engine uses takes it)."""
    return integer("seed", value, 0, MAX_SEED)


def one_of(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise InvalidArgument(f"{name} must be one of {', '.join(map(repr, options))}; "
                              f"got {value!r}")
    return value


def name_list(name: str, value, example: str = "'relu1'") -> list:
    """A non-empty list/tuple; a bare string (where a list of them is meant) is refused."""
    if isinstance(value, str):
        raise InvalidType(f"{name} must be a list, e.g. [{example}]; got the string {value!r} "
                          f"(write [{value!r}])")
    try:
        items = list(value)
    except TypeError:
        raise InvalidType(f"{name} must be a list, e.g. [{example}]; got {value!r}") from None
    if not items:
        raise InvalidArgument(f"{name} is empty; pass at least one, e.g. [{example}]")
    return items


def layer_list(host, layers, name: str = "layers") -> tuple[str, ...] | None:
    """None (the capability's default), or a non-empty list of the host's layer names."""
    if layers is None:
        return None
    return tuple(host.layer(n).name for n in name_list(name, layers))


def class_index(host, name: str, value) -> int:
    """A class of the model: 0 <= value < n_classes."""
    v = integer(name, value)
    if not 0 <= v < host.n_classes:
        raise InvalidArgument(f"{name} {v} out of range: expected 0 <= {name} < {host.n_classes}")
    return v


def finite(t, what: str, first: int = 0) -> np.ndarray:
    """Tensor or array ``t`` (images first) as a CPU numpy array; :class:`NonFiniteResult`
    naming ``what`` and the image (``first`` + row) if any value is NaN or inf."""
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    bad = ~np.isfinite(a)
    if bad.any():
        i = first + int(np.argwhere(bad)[0][0])
        raise NonFiniteResult(f"{what} at image {i} contain NaN or inf: the model's output is "
                              f"not finite there (check its weights and buffers); no result is "
                              f"reported")
    return a


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" in {lo}..{hi}"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}" if hi is not None else ""
