"""Units of a layer: what users pass (flat indices, coordinate tuples, lists of them) as
coordinate tuples of the layer's output shape, with errors that name the valid ranges."""
from __future__ import annotations

import numpy as np

from .errors import UnitOutOfRange
from .results import LayerInfo
from .types import Units

MAX_DEFAULT_UNITS = 1024


def resolve_units(info: LayerInfo, units: Units = None) -> tuple[tuple[int, ...], ...]:
    """``units`` of the layer ``info`` as coordinate tuples (see ``ModelHost.resolve_units``)."""
    shape = info.output_shape
    if units is None:
        if info.n_units > MAX_DEFAULT_UNITS:
            raise UnitOutOfRange(f"layer {info.name!r} has {info.n_units} units {shape}; pass "
                                 f"units=[...] as flat indices or tuples {_axes(shape)}")
        return tuple(np.ndindex(*shape))
    if isinstance(units, (int, np.integer)) or (
            isinstance(units, tuple) and all(isinstance(u, (int, np.integer)) for u in units)):
        units = [units]                 # one unit; a tuple of ints is always a coordinate
    out = []
    for u in units:
        if isinstance(u, (int, np.integer)):
            if not 0 <= int(u) < info.n_units:
                raise UnitOutOfRange(f"unit {int(u)} out of range for layer {info.name!r}: "
                                     f"expected 0 <= unit < {info.n_units} (shape {shape})")
            out.append(tuple(int(i) for i in np.unravel_index(int(u), shape)))
        else:
            u = tuple(int(i) for i in u)
            if len(u) != len(shape) or any(not 0 <= i < s for i, s in zip(u, shape)):
                raise UnitOutOfRange(f"unit {u} out of range for layer {info.name!r} with "
                                     f"output shape {shape}: expected {_ranges(shape)}")
            out.append(u)
    if not out:
        raise UnitOutOfRange("units is empty; pass at least one unit")
    return tuple(out)


def _axes(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["channel", "y", "x"][-len(shape):] if len(shape) <= 3
                           else [f"d{i}" for i in range(len(shape))]) + ")"


def _ranges(shape: tuple[int, ...]) -> str:
    names = ["c", "y", "x"][-len(shape):] if len(shape) <= 3 else [f"d{i}" for i in range(len(shape))]
    return ", ".join(f"0 <= {n} < {s}" for n, s in zip(names, shape))
