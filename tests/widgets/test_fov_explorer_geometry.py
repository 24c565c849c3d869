"""FOVExplorer's geometry (pure, no widget): the grid of a layer's positions over the image,
which position a point hits, the boxes of a cell and of a field, the canvases' sizes."""
from cnn_widgets.widgets.fov_explorer.geometry import (
    HEADER,
    PANEL,
    PANEL_GAP,
    PositionGrid,
    field_box,
    image_scale,
    recon_size,
    slice_scale,
)


def test_position_grid_hits_cells_and_hides_lines_when_too_fine():
    p = PositionGrid(7, 7, (280, 280))
    assert p.cell == (40.0, 40.0)
    assert p.position_at(0.5 * 40, 6.5 * 40) == (6, 0) and p.position_at(279, 279) == (6, 6)
    assert p.position_at(-1, 5) is None and p.position_at(5, 280) is None
    assert p.cell_box(6, 0) == (0, 240, 40, 40)
    lines = p.lines()
    assert len(lines) == 12 and (0.0, 40.0, 280.0, 40.0) in lines
    assert PositionGrid(100, 100, (280, 280)).lines() == []     # 2.8 px cells: no grid
    assert image_scale((28, 28)) == 10 and image_scale((224, 224)) == 1


def test_cells_of_an_uneven_grid_tile_the_image_in_whole_pixels():
    p = PositionGrid(3, 7, (224, 224))                # 74.67 x 32 px cells
    for y in range(3):
        boxes = [p.cell_box(y, x) for x in range(7)]
        assert boxes[0][0] == 0 and sum(b[2] for b in boxes) == 224
        assert all(a[0] + a[2] == b[0] for a, b in zip(boxes, boxes[1:]))   # no gap, no overlap
    assert sum(p.cell_box(y, 0)[3] for y in range(3)) == 224
    for y in range(3):
        for x in range(7):                            # a cell's centre hits that cell
            left, top, w, h = p.cell_box(y, x)
            assert p.position_at(left + w / 2, top + h / 2) == (y, x)


def test_field_box_and_the_canvas_sizes():
    assert field_box(2, 9, 3, 7, 10) == (30, 20, 40, 70)
    assert recon_size() == (5 * (PANEL + PANEL_GAP), PANEL + HEADER)
    assert slice_scale((10, 10)) == 5 and slice_scale((7, 7)) == 8 and slice_scale((100, 9)) == 1
