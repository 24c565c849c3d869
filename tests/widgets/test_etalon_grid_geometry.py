"""EtalonGrid's layout math (pure: no widget, no browser)."""
import numpy as np
import pytest

from cnn_widgets.widgets import draw
from cnn_widgets.widgets.etalon_grid.geometry import (
    GAP,
    HEADER,
    LINE,
    GridLayout,
    cell_factor,
    cell_size,
    detail_size,
)


@pytest.mark.parametrize("lines", [1, 2])
def test_grid_corners_match_the_tiled_sheet_and_hits_invert_them(lines):
    g = GridLayout.of((28, 28), rows=3, units=4, lines=lines)
    assert cell_size((28, 28)) == (56, 56) == g.cell and g.cols == 5
    assert g.gap == (GAP[0] + LINE * (lines - 1), GAP[1])
    cells = [[np.zeros((56, 56, 4), np.uint8)] * 5] * 3
    sheet, corners = draw.tile(cells, g.cell, g.gap, origin=(HEADER, 0))
    assert sheet.shape[:2] == g.size
    for r in range(3):
        for c in range(5):
            top, left = corners[r][c]
            assert g.corner(r, c) == (top, left)
            assert g.hit(left + 3, top + 55) == (r, c)
            assert g.unit_at(left + 3, top + 3) == (None if c == 0 else (r, c - 1))
            assert g.hit(left + 3, top + 56) is None                # the caption lines below
    assert g.hit(10, HEADER - 1) is None                        # the header
    assert g.hit(56 + 1, HEADER + 1) is None                    # the gap right of column 0
    assert g.hit(*reversed(g.size)) is None                     # beyond the last cell


def test_captions_and_frames_sit_around_their_cell():
    g = GridLayout((10, 8), rows=2, units=3, lines=2)
    top, left = g.corner(1, 2)
    assert g.title_at(2) == (left + 2, HEADER - 5)
    assert g.caption_at(1, 2) == (left + 2, top + 10 + 12)      # inside the gap below
    assert g.caption_at(1, 2, 1) == (left + 2, top + 10 + 12 + LINE)
    assert g.caption_at(0, 2, 1)[1] < g.corner(1, 2)[0]          # both lines above the next row
    assert g.frame(1, 1) == (left - 1, top - 1, 10, 12)         # unit 1 = column 2
    assert detail_size((28, 28)) == (3 * (28 * 3 + 8), 28 * 3 + HEADER)


@pytest.mark.parametrize("hw,factor,cell", [((28, 28), (2, 1), (56, 56)),
                                            ((8, 8), (7, 1), (56, 56)),
                                            ((32, 32), (1, 1), (32, 32)),
                                            ((224, 224), (1, 4), (56, 56)),
                                            ((227, 200), (1, 4), (56, 50))])
def test_cells_are_about_56_px_for_small_and_large_inputs(hw, factor, cell):
    assert cell_factor(hw) == factor and cell_size(hw) == cell
