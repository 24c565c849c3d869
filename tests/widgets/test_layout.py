"""Pure layout math of EtalonGrid and FOVExplorer, without a widget or a browser."""
import numpy as np
import pytest

from cnn_widgets.widgets import draw
from cnn_widgets.widgets.layout.etalon_grid import GAP, HEADER, GridLayout, cell_scale, detail_size
from cnn_widgets.widgets.layout.fov_explorer import (
    PositionGrid,
    field_box,
    fit_box,
    image_scale,
)


def test_grid_corners_match_the_tiled_sheet_and_hits_invert_them():
    g = GridLayout.of((28, 28), rows=3, units=4)
    assert cell_scale((28, 28)) == 2 and g.cell == (56, 56) and g.cols == 5
    cells = [[np.zeros((56, 56, 4), np.uint8)] * 5] * 3
    sheet, corners = draw.tile(cells, g.cell, GAP, origin=(HEADER, 0))
    assert sheet.shape[:2] == g.size
    for r in range(3):
        for c in range(5):
            top, left = corners[r][c]
            assert g.corner(r, c) == (top, left)
            assert g.hit(left + 3, top + 55) == (r, c)
            assert g.unit_at(left + 3, top + 3) == (None if c == 0 else (r, c - 1))
    assert g.hit(10, HEADER - 1) is None                        # the header
    assert g.hit(10, HEADER + 56) is None                       # the score line under row 0
    assert g.hit(56 + 1, HEADER + 1) is None                    # the gap right of column 0
    assert g.hit(*reversed(g.size)) is None                     # beyond the last cell


def test_captions_and_frames_sit_around_their_cell():
    g = GridLayout((10, 8), rows=2, units=3)
    top, left = g.corner(1, 2)
    assert g.title_at(2) == (left + 2, HEADER - 5)
    assert g.caption_at(1, 2) == (left + 2, top + 10 + 12)      # inside the gap below
    assert g.caption_at(1, 2)[1] < g.corner(2, 2)[0]
    assert g.frame(1, 1) == (left - 1, top - 1, 10, 12)         # unit 1 = column 2
    assert detail_size((28, 28)) == (3 * (28 * 3 + 8), 28 * 3 + HEADER)


def test_position_grid_hits_cells_and_hides_lines_when_too_fine():
    p = PositionGrid(7, 7, (280, 280))
    assert p.cell == (40.0, 40.0)
    assert p.position_at(0.5 * 40, 6.5 * 40) == (6, 0) and p.position_at(279, 279) == (6, 6)
    assert p.position_at(-1, 5) is None and p.position_at(5, 280) is None
    assert p.cell_box(6, 0) == (0.0, 240.0, 40.0, 40.0)
    lines = p.lines()
    assert len(lines) == 12 and (0.0, 40.0, 280.0, 40.0) in lines
    assert PositionGrid(100, 100, (280, 280)).lines() == []     # 2.8 px cells: no grid
    assert image_scale((28, 28)) == 10 and image_scale((224, 224)) == 1


@pytest.mark.parametrize("h,w", [(28, 28), (10, 30), (30, 10)])
def test_fit_box_centres_the_longer_side_on_the_panel(h, w):
    s, nh, nw, top, left = fit_box(h, w, 120)
    assert max(nh, nw) == 120 and abs(nh / nw - h / w) < 0.05
    assert top == (120 - nh) // 2 and left == (120 - nw) // 2
    assert field_box(2, 9, 3, 7, 10) == (30, 20, 40, 70)
