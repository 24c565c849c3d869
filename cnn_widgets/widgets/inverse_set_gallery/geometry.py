"""InverseSetGallery's layout math and records (pure): which samples the gallery shows, where
each cell lies below the gallery's title and which one a click hits, the detail panels, the
range picker's limits and lines; a constraint, the samples, a detail, a unit's values.
Numpy only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import draw

COLS = 10               # samples per gallery row
MAX_SHOWN = 50          # samples drawn (evenly picked from all collected)
CELL = 56               # px of a gallery cell (the input fitted into it)
GAP = (16, 6)           # px below (label) and right of each cell
HEADER = 18             # px above the cells: what the gallery shows (seeds or samples)
PANEL = 112             # px of a detail panel (the sample, its etalons)
PANEL_GAP = 8           # px between the detail panels
MAX_PANELS = 4          # the sample and the etalons of the first three units
MAX_K, MAX_N = 1000, 100000     # seeds and samples one run may ask for


@dataclass(frozen=True)
class Constraint:
    """One unit of the intersection and its range [lo, hi] (None: the default range, the
    70th-90th percentile on the dataset, not known yet)."""
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
    """A unit's value on every dataset image."""
    layer: str
    unit: tuple[int, ...]
    values: np.ndarray


def shown_indices(m: int, limit: int = MAX_SHOWN) -> list[int]:
    """At most ``limit`` sample indices spread evenly over 0..m-1, first and last included."""
    if m <= 0:
        return []
    return sorted(set(np.linspace(0, m - 1, min(m, limit)).round().astype(int).tolist()))


def shrink_factor(input_hw: tuple[int, int], size: int) -> int:
    """Block size that brings an input down to about ``size`` px before it is fitted (block
    means, not every n-th pixel: 224 px photos keep their detail at 56 px)."""
    return max(1, max(input_hw) // size)


def cell_corner(i: int, cols: int = COLS) -> tuple[int, int]:
    """(top, left) px of gallery cell ``i`` (row by row, below the title)."""
    return HEADER + (i // cols) * (CELL + GAP[0]), (i % cols) * (CELL + GAP[1])


def cell_at(x: float, y: float, n: int, cols: int = COLS) -> int | None:
    """The gallery cell (0..n-1) under canvas point (x, y), or None (title, gap, no cell)."""
    rows = -(-n // cols)
    hit = draw.cell_at(x, y, (CELL, CELL), GAP, (HEADER, 0), (rows, cols))
    if hit is None:
        return None
    i = hit[0] * cols + hit[1]
    return i if i < n else None


def label_at(i: int, cols: int = COLS) -> tuple[int, int]:
    """(x, y) px of the caption under cell ``i`` (its activations)."""
    top, left = cell_corner(i, cols)
    return left + 1, top + CELL + 11


def gallery_width(cols: int = COLS) -> int:
    return cols * (CELL + GAP[1])


def detail_size() -> tuple[int, int]:
    """(width, height) px of the detail canvas: the sample and up to three etalons."""
    return MAX_PANELS * (PANEL + PANEL_GAP), PANEL + HEADER


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
