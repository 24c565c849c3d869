"""Frozen results of engine calls: CPU numpy arrays that widgets draw and tests assert on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .memory import ResultArray

_BLOCK = 2 ** 22         # float64 values converted at once by Etalons.linear_part (32 MB)


@dataclass(frozen=True)
class LayerInfo:
    """One entry of the layer registry: a leaf module in forward order."""
    name: str
    kind: str                       # the module's class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]   # per sample, without the batch dimension

    @property
    def n_units(self) -> int:
        return int(np.prod(self.output_shape))


@dataclass(frozen=True)
class Etalons:
    """Exact per-input affine maps f_p(x) = <W_p(x), x> + b_p(x) of P units at N inputs.

    W: (N, P, *input_shape); b, out: (N, P); units: P unit indices (tuples into the layer's
    output shape), or () when each input has its own, ``row_units`` (N lists of P: each input's
    top-k units); exact: whether the map is exact on a neighbourhood of x (piecewise-linear
    network) or only the Jacobian (tangent plane), with the reason in ``reason``.
    """
    W: np.ndarray
    b: np.ndarray
    out: np.ndarray
    x: np.ndarray
    layer: str
    units: tuple[tuple[int, ...], ...]
    exact: bool
    reason: str
    method: str
    row_units: tuple[tuple[tuple[int, ...], ...], ...] | None = None

    def units_of(self, i: int) -> tuple[tuple[int, ...], ...]:
        """The P units of input ``i`` (column j of its W, b and out is unit j)."""
        return self.units if self.row_units is None else self.row_units[i]

    @property
    def contributions(self) -> np.ndarray:
        """The votes W ⊙ x, (N, P, *input_shape); each map sums to out - b. As large as W and
        held where W is (a disk-backed W gives a disk-backed array), filled map by map."""
        if not isinstance(self.W, np.memmap):
            return self.W * self.x[:, None]
        out = ResultArray(self.W.shape, self.W.dtype, on_disk=True)
        for i in range(len(self.W)):
            for p in range(self.W.shape[1]):
                out.write(i, p, (self.W[i, p] * self.x[i])[None])
        return out.array()

    @property
    def linear_part(self) -> np.ndarray:
        """<W_p, x>, (N, P) float32, summed in float64 a few maps at a time (never a copy of
        the whole W)."""
        n, p = self.b.shape
        x = self.x.reshape(n, -1).astype(np.float64)
        step = max(1, _BLOCK // x.shape[1])
        out = np.empty((n, p), np.float32)
        for i in range(n):
            for j in range(0, p, step):
                out[i, j:j + step] = self.W[i, j:j + step].reshape(-1, x.shape[1]).astype(
                    np.float64) @ x[i]
        return out


@dataclass(frozen=True)
class RegionCount:
    """Distinct activation patterns (linear regions) among a set of inputs.

    per_class: class index -> (images seen, distinct patterns); total: distinct patterns overall;
    layers: the ReLU/max-pool modules whose states make up a pattern.
    """
    per_class: dict[int, tuple[int, int]]
    total: int
    images: int
    layers: tuple[str, ...]
