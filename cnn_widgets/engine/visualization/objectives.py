"""Composable objectives Φ(x) to maximise or scan, each with a readable description.

An objective is a weighted sum of terms; every term reads one layer's output:

    logit(k)            pre-softmax class score k (the engine's logits layer)
    probability(k)      softmax probability of class k
    layer_mean(layer)   mean of a whole layer's output
    channel(layer, c)   mean of channel c over positions (unit c of a flat layer)
    unit(layer, index)  one unit: a flat index or a (channel, y, x) tuple

``a + b``, ``a - b``, ``2.0 * a``, ``-a`` and ``sum([...])`` compose, e.g. a "super-dog"
``sum(logit(k) for k in dog_classes)``. Objectives know nothing of a model until
:meth:`Objective.bind` checks them against an engine (layer names, class and unit ranges).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch

from ..core import validate as check
from ..core.errors import InvalidArgument, InvalidType, UnitOutOfRange

Index = int | tuple[int, ...]


@dataclass(frozen=True)
class Term:
    """One read-out. kind: logit | probability | layer_mean | channel | unit; layer: a layer
    name, or None for the engine's logits; index: class, channel or unit (None for a mean)."""
    kind: str
    layer: str | None
    index: Index | None = None

    def describe(self) -> str:
        if self.kind in ("logit", "probability"):
            return f"{self.kind}[{self.index}]"
        if self.kind == "layer_mean":
            return f"mean({self.layer})"
        if self.kind == "channel":
            return f"channel({self.layer}, {self.index})"
        idx = ":".join(str(i) for i in self.index) if isinstance(self.index, tuple) else self.index
        return f"unit({self.layer}, {idx})"

    def value(self, out: torch.Tensor) -> torch.Tensor:
        """(N,) read-out of this term from its layer's output (N, *shape)."""
        n = out.shape[0]
        if self.kind == "logit":
            return out[:, self.index]
        if self.kind == "probability":
            return torch.softmax(out, dim=1)[:, self.index]
        if self.kind == "layer_mean":
            return out.reshape(n, -1).mean(1)
        if self.kind == "channel":
            return out[:, self.index].reshape(n, -1).mean(1)
        return out.reshape(n, -1)[:, self.index]     # unit: a flat index once bound


class Objective:
    """Σ weight · term. Call :meth:`bind` with an engine before :meth:`evaluate`."""

    def __init__(self, terms: tuple[tuple[float, Term], ...], description: str | None = None):
        self.terms = tuple((float(w), t) for w, t in terms)
        bad = [f"{w:g}·{t.describe()}" for w, t in self.terms if not math.isfinite(w)]
        if bad:     # a NaN or infinite weight makes every value and gradient NaN or inf
            raise InvalidArgument(f"an objective's weights must be finite numbers; got "
                                  f"{', '.join(bad)}")
        self._description = description         # a bound objective keeps the user's text

    # -- algebra -------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, Real) and other == 0:     # sum() starts from 0
            return self
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    __radd__ = __add__

    def __sub__(self, other):
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-1.0) * other

    def __mul__(self, k):
        if not isinstance(k, Real):
            return NotImplemented
        return Objective(tuple((w * float(k), t) for w, t in self.terms))

    __rmul__ = __mul__

    def __neg__(self):
        return (-1.0) * self

    def __truediv__(self, k):
        if not isinstance(k, Real):
            return NotImplemented
        if k == 0:
            raise InvalidArgument(f"an objective divided by zero: {self.description} / {k!r}")
        return self * (1.0 / float(k))

    @property
    def description(self) -> str:
        if self._description is not None:
            return self._description
        parts = []
        for i, (w, t) in enumerate(self.terms):
            text = t.describe() if abs(w) == 1 else f"{abs(w):g}·{t.describe()}"
            sign = "-" if w < 0 else "+"
            parts.append((sign.strip("+") + text) if i == 0 else f" {sign} {text}")
        return "".join(parts) or "0"

    def __repr__(self):
        return f"Objective({self.description})"

    # -- against an engine -----------------------------------------------------------------
    def bind(self, engine) -> Objective:
        """Check every term against ``engine`` and return an objective whose layers are real
        names (logits resolved) and whose unit indices are flat. Raises LayerNotFound /
        UnitOutOfRange with the valid ranges."""
        bound = []
        for w, t in self.terms:
            info = engine.layer(t.layer)
            layer, shape = info.name, info.output_shape
            index: Any = t.index        # by kind: a class, a channel or a unit (int or tuple)
            if t.kind in ("logit", "probability"):
                if len(shape) != 1 or not 0 <= int(index) < shape[0]:
                    raise UnitOutOfRange(f"class {index} out of range: expected 0 <= class < "
                                         f"{shape[0] if len(shape) == 1 else engine.n_classes} "
                                         f"on layer {layer!r} with output shape {shape}")
                index = int(index)
            elif t.kind == "channel":
                if not 0 <= int(index) < shape[0]:
                    raise UnitOutOfRange(f"channel {index} out of range for layer {layer!r} "
                                         f"with output shape {shape}: expected 0 <= channel < "
                                         f"{shape[0]}")
                index = int(index)
            elif t.kind == "unit":
                (coord,) = engine.resolve_units(layer, index)
                index = int(np.ravel_multi_index(coord, shape))
            bound.append((w, Term(t.kind, layer, index)))
        return Objective(tuple(bound), self.description)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the terms read (bound objectives: real names), without repeats."""
        return tuple(dict.fromkeys(t.layer for _, t in self.terms))  # type: ignore[misc]  # bound

    def evaluate(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N,) objective from ``outputs``: layer name -> (N, *shape) output."""
        total = None
        for w, t in self.terms:
            v = t.value(outputs[t.layer]) * w     # type: ignore[index]  # bound
            total = v if total is None else total + v
        assert total is not None                # an objective has terms
        return total


def logit(k: int) -> Objective:
    """Pre-softmax score of class ``k``."""
    return Objective(((1.0, Term("logit", None, check.integer("class", k))),))


def probability(k: int) -> Objective:
    """Softmax probability of class ``k``."""
    return Objective(((1.0, Term("probability", None, check.integer("class", k))),))


def layer_mean(layer: str) -> Objective:
    """Mean of ``layer``'s whole output."""
    return Objective(((1.0, Term("layer_mean", str(layer))),))


def channel(layer: str, c: int) -> Objective:
    """Mean of channel ``c`` of ``layer`` over positions (unit ``c`` of a flat layer)."""
    return Objective(((1.0, Term("channel", str(layer), check.integer("channel", c))),))


def unit(layer: str, index: Index) -> Objective:
    """One unit of ``layer``: a flat index (row-major) or a coordinate tuple (c, y, x)."""
    try:
        index = (tuple(check.integer("unit", i) for i in index)
                 if isinstance(index, (tuple, list)) else check.integer("unit", index))
    except InvalidType:
        raise InvalidType(f"unit of layer {layer!r} must be a flat index (an integer) or a "
                          f"coordinate tuple of integers such as (channel, y, x); got "
                          f"{index!r}") from None
    return Objective(((1.0, Term("unit", str(layer), index)),))


def as_objective(target) -> Objective:
    """An objective, or a ``(layer, unit)`` pair meaning :func:`unit`."""
    if isinstance(target, Objective):
        return target
    if isinstance(target, (tuple, list)) and len(target) == 2 and isinstance(target[0], str):
        return unit(target[0], target[1])
    raise InvalidType(f"expected an objective (cnn_widgets.objectives) or a (layer, unit) pair; "
                    f"got {target!r}")
