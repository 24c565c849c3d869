"""InverseSetGallery's layout math (pure: no widget)."""
import numpy as np
import pytest

from cnn_widgets.widgets.inverse_set_gallery.geometry import (
    CELL,
    GAP,
    HEADER,
    MAX_PANELS,
    PANEL,
    cell_at,
    cell_corner,
    detail_size,
    gallery_width,
    label_at,
    picker_limits,
    range_lines,
    shown_indices,
    shrink_factor,
)


def test_shown_indices_spread_evenly_with_both_ends():
    assert shown_indices(0) == [] and shown_indices(3) == [0, 1, 2]
    s = shown_indices(1000, 50)
    assert len(s) == 50 and s[0] == 0 and s[-1] == 999 and s == sorted(set(s))


def test_every_cell_is_hit_at_its_centre_and_the_title_and_gaps_miss():
    n = 23
    assert cell_corner(12, cols=10) == (HEADER + CELL + GAP[0], 2 * (CELL + GAP[1]))
    for i in range(n):
        top, left = cell_corner(i, cols=10)
        assert cell_at(left + CELL / 2, top + CELL / 2, n, cols=10) == i
        x, y = label_at(i, cols=10)                          # its caption: below it, in the gap
        assert top + CELL < y <= top + CELL + GAP[0] and left <= x < left + CELL
        assert cell_at(x, y, n, cols=10) is None
    assert cell_at(5, HEADER - 1, n, cols=10) is None                 # the title
    assert cell_at(CELL + 1, HEADER + 5, n, cols=10) is None          # the gap right of cell 0
    top, left = cell_corner(n, cols=10)
    assert cell_at(left + 5, top + 5, n, cols=10) is None             # past the last cell
    assert cell_at(-1, HEADER + 5, n) is None and cell_at(5000, HEADER + 5, n) is None
    assert gallery_width(10) == 10 * (CELL + GAP[1])


def test_large_inputs_shrink_to_about_a_cell_and_small_ones_do_not():
    assert shrink_factor((224, 224), CELL) == 4 and shrink_factor((28, 28), CELL) == 1
    assert shrink_factor((224, 224), PANEL) == 2
    w, h = detail_size()
    assert w >= MAX_PANELS * PANEL and h > PANEL


def test_ranges_and_limits():
    values = np.arange(101.0)
    lo, hi, step = picker_limits(values, 70.0, 90.0)
    assert (lo, hi) == (-25.0, 125.0) and step == pytest.approx(150 / 400)
    assert picker_limits(np.zeros(0), 8.0, 10.0)[:2] == (7.5, 10.5)
    x, y = range_lines(1.0, 2.0, 5.0)
    np.testing.assert_array_equal(x, [[1, 1], [2, 2]])
    np.testing.assert_array_equal(y, [[0, 5], [0, 5]])
