"""Geometry of the EtalonGrid (pure, canvas pixels): the cell size, where each cell of the grid
sits, where its captions go, the frame of the row's strongest unit, which cell a click hits,
and the detail panels.

A grid is ``rows`` inputs by ``1 + units`` columns (the input, then one etalon per unit); every
cell is ``cell`` = (h, w) px with ``gap`` below (one caption line per ``lines``: the score, and
the unit's name when each row has its own units) and right of it, below a ``HEADER`` of column
titles.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..draw import cell_at, scale_factor, scaled_size, tile_corner

HEADER = 18          # px above the first row, for column titles
GAP = (16, 6)        # px below (one caption line) and right of each cell
LINE = 12            # px per further caption line below a cell
CELL_TARGET = 56     # about this many px per cell
DETAIL_TARGET = 84   # about this many px per detail panel
DETAIL_GAP = 8       # px between the detail panels
DETAIL_PANELS = 3    # input x, etalon W, votes W ⊙ x


@dataclass(frozen=True)
class Selection:
    """The clicked etalon: ``source`` "grid" or "pad", its ``row`` and ``unit`` (column - 1)."""
    source: str
    row: int
    unit: int


def cell_factor(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(up, down): a grid cell shows the input enlarged ``up`` times, or, for inputs of more
    than twice :data:`CELL_TARGET` px, shrunk ``down`` times (block means)."""
    return scale_factor(input_hw, CELL_TARGET)


def cell_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) px of a grid cell."""
    return scaled_size(input_hw, cell_factor(input_hw))


def detail_scale(input_hw: tuple[int, int]) -> int:
    """Canvas px per input pixel in the detail panels."""
    return max(1, DETAIL_TARGET // max(input_hw))


def detail_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """(width, height) px of the detail canvas."""
    h, w = input_hw
    s = detail_scale(input_hw)
    return DETAIL_PANELS * (w * s + DETAIL_GAP), h * s + HEADER


@dataclass(frozen=True)
class GridLayout:
    """Where the cells of one grid sheet are. cell: (h, w) px; rows: inputs; units: etalon
    columns (the input column comes first); lines: caption lines under each cell."""
    cell: tuple[int, int]
    rows: int
    units: int
    lines: int = 1
    origin: tuple[int, int] = (HEADER, 0)

    @classmethod
    def of(cls, input_hw: tuple[int, int], rows: int, units: int, lines: int = 1) -> GridLayout:
        return cls(cell_size(input_hw), rows, units, lines)

    @property
    def gap(self) -> tuple[int, int]:
        """(below, right) px of each cell."""
        return GAP[0] + LINE * (self.lines - 1), GAP[1]

    @property
    def cols(self) -> int:
        return self.units + 1

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) px of the sheet."""
        return self.corner(self.rows, self.cols)

    def corner(self, row: int, col: int) -> tuple[int, int]:
        """(top, left) px of a cell; col 0 is the input."""
        return tile_corner(row, col, self.cell, self.gap, self.origin)

    def hit(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the cell under canvas point (x, y), or None (gap, header, outside)."""
        return cell_at(x, y, self.cell, self.gap, self.origin, (self.rows, self.cols))

    def unit_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, unit) of the etalon under (x, y); None off the etalons (the input column too)."""
        hit = self.hit(x, y)
        return None if hit is None or hit[1] == 0 else (hit[0], hit[1] - 1)

    def title_at(self, col: int) -> tuple[int, int]:
        """(x, y) of a column title."""
        return self.corner(0, col)[1] + 2, self.origin[0] - 5

    def caption_at(self, row: int, col: int, line: int = 0) -> tuple[int, int]:
        """(x, y) of caption line ``line`` under a cell (the row's label, a unit's score or
        name)."""
        top, left = self.corner(row, col)
        return left + 2, top + self.cell[0] + 12 + LINE * line

    def frame(self, row: int, unit: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the frame drawn around an etalon cell."""
        top, left = self.corner(row, unit + 1)
        return left - 1, top - 1, self.cell[1] + 2, self.cell[0] + 2
