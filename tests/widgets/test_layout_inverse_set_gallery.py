"""InverseSetGallery's pure layout math, without a widget."""
import numpy as np
import pytest

from cnn_widgets.widgets.layout.inverse_set_gallery import (
    GAP,
    cell_at,
    cell_boxes,
    default_range,
    picker_limits,
    range_lines,
    shown_indices,
)


def test_shown_indices_spread_evenly_with_both_ends():
    assert shown_indices(0) == [] and shown_indices(3) == [0, 1, 2]
    s = shown_indices(1000, 50)
    assert len(s) == 50 and s[0] == 0 and s[-1] == 999 and s == sorted(set(s))


def test_every_cell_box_is_hit_at_its_centre_and_gaps_miss():
    cell = (56, 56)
    boxes = cell_boxes(23, cell, cols=10)
    assert boxes[12] == (56 + GAP[0], 2 * (56 + GAP[1]), 56, 56)
    for i, (top, left, h, w) in enumerate(boxes):
        assert cell_at(left + w / 2, top + h / 2, 23, cell, cols=10) == i
    assert cell_at(56 + 1, 10, 23, cell, cols=10) is None          # the gap right of cell 0
    assert cell_at(10, 56 + 1, 23, cell, cols=10) is None          # the label row below it
    assert cell_at(3 * 62 + 5, 2 * 72 + 5, 23, cell, cols=10) is None   # past the last cell
    assert cell_at(-1, 5, 23, cell) is None and cell_at(5000, 5, 23, cell) is None


def test_ranges_and_limits():
    values = np.arange(101.0)
    assert default_range(values) == pytest.approx((70.0, 90.0))
    lo, hi, step = picker_limits(values, 70.0, 90.0)
    assert (lo, hi) == (-25.0, 125.0) and step == pytest.approx(150 / 400)
    assert picker_limits(np.zeros(0), 8.0, 10.0)[:2] == (7.5, 10.5)
    x, y = range_lines(1.0, 2.0, 5.0)
    np.testing.assert_array_equal(x, [[1, 1], [2, 2]])
    np.testing.assert_array_equal(y, [[0, 5], [0, 5]])
