"""InverseSetGallery's pure layout math and records: which samples the gallery shows, where
each cell lies and which one a click hits, the range picker's limits and the default range;
a constraint, samples, a detail, a unit's values. Numpy only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLS = 10               # samples per gallery row
MAX_SHOWN = 50          # samples drawn (evenly picked from all collected)
GAP = (16, 6)           # px below (label) and right of each cell
DETAIL_SCALE = 4        # px per input pixel in the detail panels
MAX_K, MAX_N = 1000, 100000     # seeds and samples one run may ask for


@dataclass(frozen=True)
class Constraint:
    """One unit of the intersection and its range [lo, hi] (None: the default range, the
    70th-90th percentile on the dataset, not computed yet)."""
    layer: str
    unit: tuple[int, ...]
    lo: float | None = None
    hi: float | None = None


@dataclass(frozen=True)
class Samples:
    """images (m, C, H, W) and their activations (m, P), one column per constraint."""
    images: np.ndarray
    activations: np.ndarray


@dataclass(frozen=True)
class Detail:
    """A sample shown enlarged: its index, image (C, H, W) and etalons (one per unit)."""
    sample: int
    image: np.ndarray
    etalons: tuple


@dataclass(frozen=True)
class UnitValues:
    """A unit's value on every dataset image (empty without a dataset)."""
    layer: str
    unit: tuple[int, ...]
    values: np.ndarray


def shown_indices(m: int, limit: int = MAX_SHOWN) -> list[int]:
    """At most ``limit`` sample indices spread evenly over 0..m-1, first and last included."""
    if m <= 0:
        return []
    return sorted(set(np.linspace(0, m - 1, min(m, limit)).round().astype(int).tolist()))


def cell_boxes(n: int, cell: tuple[int, int], cols: int = COLS,
               gap: tuple[int, int] = GAP) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) in px of the first ``n`` gallery cells, row by row."""
    h, w = cell
    return [((i // cols) * (h + gap[0]), (i % cols) * (w + gap[1]), h, w) for i in range(n)]


def cell_at(x: float, y: float, n: int, cell: tuple[int, int], cols: int = COLS,
            gap: tuple[int, int] = GAP) -> int | None:
    """The gallery cell (0..n-1) under canvas point (x, y), or None (a gap, or no cell)."""
    h, w = cell
    if x < 0 or y < 0:
        return None
    r, ry = divmod(int(y), h + gap[0])
    c, cx = divmod(int(x), w + gap[1])
    i = r * cols + c
    return i if ry < h and cx < w and c < cols and i < n else None


def default_range(values: np.ndarray) -> tuple[float, float]:
    """The 70th-90th percentile of a unit's values on the dataset."""
    lo, hi = np.percentile(values, [70, 90])
    return float(lo), float(hi)


def picker_limits(values: np.ndarray, lo: float, hi: float) -> tuple[float, float, float]:
    """(min, max, step) of the range slider: the dataset values and the range, padded by a
    quarter of their span; 400 steps."""
    vmin, vmax = (float(values.min()), float(values.max())) if len(values) else (lo, hi)
    pad = 0.25 * max(vmax - vmin, hi - lo, 1e-3)
    lo_lim, hi_lim = min(vmin, lo) - pad, max(vmax, hi) + pad
    return lo_lim, hi_lim, (hi_lim - lo_lim) / 400


def range_lines(lo: float, hi: float, top: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y (2, 2) of two vertical lines at ``lo`` and ``hi`` from 0 to ``top``."""
    return np.array([[lo, lo], [hi, hi]]), np.array([[0.0, top], [0.0, top]])
