"""Geometry and records of the FOVExplorer (pure, canvas pixels): the grid of a layer's
positions laid over the enlarged image, which position a point hits, the box of a position's
grid cell and of its receptive field, and where an image goes on a square panel; what one view
and one best-input search hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ...engine.probing.activation_stats import ActivationSlices, ActivationStats
    from ...engine.probing.receptive_field import FieldMap
    from ...engine.probing.reconstruct import Reconstruction

IMAGE_PX = 280       # about this many px for the image's longer side
MIN_GRID_PX = 4      # grid lines finer than this would hide the image
PANEL = 120          # px of one reconstruction panel
HEADER = 16          # px above the panels, for titles


@dataclass(frozen=True)
class View:
    """What one (image, layer) shows: the layer's strongest slices, the image's activity per
    layer, the reconstructions of the layer's strongest unit and the layer's receptive fields."""
    layer: str
    slices: ActivationSlices
    stats: ActivationStats
    recon: Reconstruction
    fields: FieldMap


@dataclass(frozen=True)
class BestInput:
    """The best-input search of one unit so far (``step`` of ``total``): the images (N, C, H,
    W), their starts, the objective's values (N,) and trace (steps, N), and the layer's
    receptive fields (to crop to the unit's)."""
    layer: str
    unit: tuple[int, ...]
    images: np.ndarray
    start: np.ndarray
    values: np.ndarray
    trace: np.ndarray
    fields: FieldMap
    step: int
    total: int


def image_scale(input_hw: tuple[int, int]) -> int:
    """Canvas px per input pixel of the image canvas."""
    return max(1, IMAGE_PX // max(input_hw))


@dataclass(frozen=True)
class PositionGrid:
    """A layer's (rows, cols) positions over an image of ``image`` = (h, w) canvas px."""
    rows: int
    cols: int
    image: tuple[int, int]

    @property
    def cell(self) -> tuple[float, float]:
        """(h, w) canvas px of one grid cell."""
        return self.image[0] / self.rows, self.image[1] / self.cols

    def position_at(self, px: float, py: float) -> tuple[int, int] | None:
        """The (y, x) position under canvas point (px, py), or None outside the image."""
        ch, cw = self.cell
        if px < 0 or py < 0:
            return None
        y, x = int(py // ch), int(px // cw)
        return (y, x) if y < self.rows and x < self.cols else None

    def cell_box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """(left, top, width, height) px of a position's grid cell."""
        ch, cw = self.cell
        return float(x * cw), float(y * ch), float(cw), float(ch)

    def lines(self) -> list[tuple[float, float, float, float]]:
        """(x0, y0, x1, y1) of the inner grid lines; none when a cell is under
        :data:`MIN_GRID_PX` (the grid would hide the image)."""
        ch, cw = self.cell
        if min(ch, cw) < MIN_GRID_PX:
            return []
        h, w = self.image
        return ([(0.0, i * ch, float(w), i * ch) for i in range(1, self.rows)]
                + [(j * cw, 0.0, j * cw, float(h)) for j in range(1, self.cols)])


def field_box(top: int, bottom: int, left: int, right: int,
              k: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) canvas px of a receptive field given in input pixels
    (rows top..bottom-1, columns left..right-1) on an image enlarged ``k`` times."""
    return left * k, top * k, (right - left) * k, (bottom - top) * k


def fit_box(h: int, w: int, size: int) -> tuple[float, int, int, int, int]:
    """Where an (h, w) image goes on a (size, size) panel, longer side ``size``, centred:
    (scale, new h, new w, top, left)."""
    s = size / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    return s, nh, nw, (size - nh) // 2, (size - nw) // 2
