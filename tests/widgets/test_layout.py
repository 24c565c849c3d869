"""Pure layout math of FOVExplorer, without a widget or a browser (EtalonGrid's:
test_etalon_grid_geometry.py)."""
import pytest

from cnn_widgets.widgets.layout.fov_explorer import (
    PositionGrid,
    field_box,
    fit_box,
    image_scale,
)


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
