"""SanityCheckView's layout math (pure, no widget): cell sizes, where cells and captions go,
which cell a click hits."""
import pytest

from cnn_widgets.widgets.sanity_check_view.geometry import (
    CELL_TARGET,
    GAP,
    HEADER,
    LABEL,
    Cell,
    GridLayout,
    cell_factor,
    cell_size,
    detail_size,
)


@pytest.mark.parametrize("hw,cell", [((28, 28), (56, 56)), ((8, 8), (56, 56)),
                                     ((224, 224), (56, 56)), ((32, 16), (32, 16)),
                                     ((299, 299), (59, 59))])
def test_a_cell_is_about_the_target_size_in_whole_steps(hw, cell):
    up, down = cell_factor(hw)
    assert (up == 1 or down == 1) and cell_size(hw) == cell
    assert cell_size(hw) == (hw[0] // down * up, hw[1] // down * up)
    assert max(cell) <= 2 * CELL_TARGET


def test_every_cell_centre_hits_that_cell_and_gaps_hit_nothing():
    g = GridLayout((56, 40), rows=3, cols=6)
    assert g.size == (HEADER + 3 * (56 + GAP[0]), LABEL + 6 * (40 + GAP[1]))
    for r in range(3):
        for c in range(6):
            top, left = g.corner(r, c)
            assert g.hit(left + 20, top + 28) == Cell(r, c)
            assert g.hit(left, top) == Cell(r, c) and g.hit(left + 39, top + 55) == Cell(r, c)
            assert g.hit(left + 40, top + 28) is None          # the gap right of it
            assert g.hit(left + 20, top + 56) is None          # its score line
    assert g.hit(LABEL - 1, HEADER + 10) is None               # the method names
    assert g.hit(LABEL + 10, HEADER - 1) is None               # the stage titles
    h, w = g.size
    assert g.hit(w + 5, HEADER + 10) is None and g.hit(LABEL + 10, h + 5) is None


def test_captions_sit_above_beside_and_below_their_cells():
    g = GridLayout((56, 56), rows=2, cols=3)
    for c in range(3):
        x, y = g.title_at(c)
        assert g.corner(0, c)[1] <= x < g.corner(0, c)[1] + 56 and 0 < y < HEADER
    for r in range(2):
        x, y = g.label_at(r)
        top = g.corner(r, 0)[0]
        assert x < LABEL and top < y < top + 56
        x, y = g.caption_at(r, 1)
        top, left = g.corner(r, 1)
        assert left <= x < left + 56 and top + 56 < y <= top + 56 + GAP[0]
    assert g.title_width == 56 + GAP[1] - 2


def test_the_detail_canvas_holds_three_panels_under_a_header():
    w, h = detail_size((28, 28))
    assert h == HEADER + 112 and w == 3 * (112 + 8)
    w, h = detail_size((224, 224))                       # shown as it is
    assert h == HEADER + 224 and w == 3 * (224 + 8)
    w, h = detail_size((512, 512))                       # shrunk 4 x 4 (512 // 112)
    assert h == HEADER + 128 and w == 3 * (128 + 8)
