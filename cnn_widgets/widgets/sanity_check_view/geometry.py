"""Geometry of the SanityCheckView (pure, canvas pixels): the cell size, where each map of the
grid sits, where its captions go, which cell a click hits, and the detail panels.

The grid is ``rows`` methods by ``cols`` stages (column 0: the original model; column k: the
k-th randomised layer, or the other model); every cell is ``cell`` = (h, w) px with ``GAP``
below (its score) and right of it, right of a ``LABEL`` column of method names and below a
``HEADER`` of stage titles.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..draw import cell_at, scale_factor, scaled_size, tile_corner

HEADER = 18          # px above the first row, for the stage titles
LABEL = 104          # px left of the first column, for the method names
GAP = (16, 6)        # px below (the score) and right of each cell
CELL_TARGET = 56     # about this many px per cell
DETAIL_TARGET = 112  # about this many px per detail panel
DETAIL_GAP = 8       # px between the detail panels
DETAIL_PANELS = 3    # the input, the original map, the changed map


@dataclass(frozen=True)
class Cell:
    """A cell of the grid: ``row`` (a method) and ``col`` (a stage; 0 = the original model)."""
    row: int
    col: int


def cell_factor(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(up, down): a cell shows a map enlarged ``up`` times, or, for inputs of more than twice
    :data:`CELL_TARGET` px, shrunk ``down`` times (block means)."""
    return scale_factor(input_hw, CELL_TARGET)


def cell_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) px of a grid cell."""
    return scaled_size(input_hw, cell_factor(input_hw))


def detail_factor(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(up, down) of the detail panels, as :func:`cell_factor` for :data:`DETAIL_TARGET`."""
    return scale_factor(input_hw, DETAIL_TARGET)


def detail_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(width, height) px of the detail canvas."""
    h, w = scaled_size(input_hw, detail_factor(input_hw))
    return DETAIL_PANELS * (w + DETAIL_GAP), h + HEADER


@dataclass(frozen=True)
class GridLayout:
    """Where the cells of one grid sheet are. cell: (h, w) px; rows: methods; cols: stages
    (the original first)."""
    cell: tuple[int, int]
    rows: int
    cols: int
    gap: tuple[int, int] = GAP
    origin: tuple[int, int] = (HEADER, LABEL)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) px of the sheet."""
        return self.corner(self.rows, self.cols)

    def corner(self, row: int, col: int) -> tuple[int, int]:
        """(top, left) px of a cell."""
        return tile_corner(row, col, self.cell, self.gap, self.origin)

    def hit(self, x: float, y: float) -> Cell | None:
        """The cell under canvas point (x, y), or None (gap, header, labels, outside)."""
        rc = cell_at(x, y, self.cell, self.gap, self.origin, (self.rows, self.cols))
        return None if rc is None else Cell(*rc)

    def title_at(self, col: int) -> tuple[int, int]:
        """(x, y) of a stage title."""
        return self.corner(0, col)[1] + 2, self.origin[0] - 5

    def label_at(self, row: int) -> tuple[int, int]:
        """(x, y) of a method's name, left of its row, level with the cell's middle."""
        return 2, self.corner(row, 0)[0] + self.cell[0] // 2 + 4

    def caption_at(self, row: int, col: int) -> tuple[int, int]:
        """(x, y) of the score under a cell."""
        top, left = self.corner(row, col)
        return left + 2, top + self.cell[0] + 12

    @property
    def title_width(self) -> int:
        """px a stage title or a score may take."""
        return self.cell[1] + self.gap[1] - 2
