"""Geometry of the FOVExplorer (pure, canvas pixels): the image's scale, the grid of a layer's
positions laid over it, which position a point hits, the box of a position's grid cell and of
its receptive field, and where the panels of the other canvases go; and the record of one
best-input search.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_PX = 280       # about this many px for the image's longer side
MIN_GRID_PX = 4      # grid lines finer than this would hide the image
PANEL = 120          # px of one reconstruction (and best-input) panel
PANEL_GAP = 6        # px between two panels
HEADER = 16          # px above the panels, for titles
RECON_PANELS = 5     # the input's field, then the four reconstructions
SLICE_PX = 56        # about this many px per activation slice
SLICE_GAP = 4        # px between two slices


@dataclass(frozen=True)
class BestInput:
    """The best-input search of one unit so far (``step`` of ``total``): the images (N, C, H,
    W), their starts, the objective's values (N,) and trace (steps, N), the unit's receptive
    field (what is shown of them) and the ascent's settings (``optimizer``, ``lr``)."""
    layer: str
    unit: tuple[int, ...]
    images: np.ndarray
    start: np.ndarray
    values: np.ndarray
    trace: np.ndarray
    field: object        # ReceptiveField
    step: int
    total: int
    optimizer: str
    lr: float


def image_scale(input_hw: tuple[int, int]) -> int:
    """Canvas px per input pixel of the image canvas."""
    return max(1, IMAGE_PX // max(input_hw))


def recon_size() -> tuple[int, int]:
    """(width, height) px of the reconstructions' canvas."""
    return RECON_PANELS * (PANEL + PANEL_GAP), PANEL + HEADER


def slice_scale(map_hw: tuple[int, int]) -> int:
    """Canvas px per position of an activation slice."""
    return max(1, SLICE_PX // max(map_hw))


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

    def cell_box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(left, top, width, height) whole px of a position's grid cell (edges rounded, so
        neighbouring cells tile the image)."""
        ch, cw = self.cell
        left, top = round(x * cw), round(y * ch)
        return left, top, round((x + 1) * cw) - left, round((y + 1) * ch) - top

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
