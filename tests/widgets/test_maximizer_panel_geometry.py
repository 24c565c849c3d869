"""MaximizerPanel's layout and presentation math (pure: no widget)."""
import numpy as np

from cnn_widgets.widgets.maximizer_panel.geometry import (
    CAPTION,
    GAP,
    MANY_CLASSES,
    TOP_BARS,
    Picture,
    bars,
    caption_at,
    cell_size,
    corner,
    curve,
    fool_titles,
    picture_size,
    scale,
    softmax,
    start_rows,
    top_class,
    unit_max,
    wrap,
)


def test_softmax_rows_sum_to_one_and_keep_the_order():
    p = softmax(np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.argmax(p[0]) == 1 and np.allclose(p[1], 1 / 3)
    assert top_class(p) == [(1, p[0, 1]), (0, p[1, 0])]


def test_small_images_are_enlarged_and_large_ones_shrunk_to_about_the_target():
    assert scale((28, 28), 168) == (6, 1) and cell_size((28, 28), 168) == (168, 168)
    assert scale((32, 64), 84) == (1, 1)
    assert scale((224, 224), 168) == (1, 1)                 # within half again: as it is
    up, down = scale((224, 224), 84)
    assert up == 1 and abs(224 / down - 84) < 84 / 2 and cell_size((224, 224), 84) == (74, 74)
    assert picture_size((28, 28), 2) == (2 * (168 + GAP), 168 + CAPTION)


def test_cells_and_captions_sit_on_the_grid():
    cell = (20, 30)
    assert corner(0, 0, cell) == (0, 0)
    assert corner(2, 3, cell, CAPTION) == (CAPTION + 2 * (20 + CAPTION), 3 * (30 + GAP))
    x, y = caption_at(1, 1, cell)
    top, left = corner(1, 1, cell)
    assert x == left and top + 20 < y <= top + 20 + CAPTION    # in the strip below the cell


def test_wrap_and_start_rows():
    assert wrap(7, 5) == [[0, 1, 2, 3, 4], [5, 6]] and wrap(0, 5) == []
    assert start_rows(38, 4, 40) == [38, 39, 0, 1]


def test_a_few_classes_show_every_bar_many_the_most_probable():
    p = softmax(np.random.default_rng(0).normal(size=(1, 10)))[0]
    labels, heights = bars(p, [f"c{i}" for i in range(10)])
    assert labels == [f"c{i}" for i in range(10)] and np.array_equal(heights, p)
    p = softmax(np.random.default_rng(1).normal(size=(1, 1000)))[0]
    labels, heights = bars(p, [f"c{i}" for i in range(1000)])
    best = np.argsort(-p)[:TOP_BARS]
    assert labels == [f"c{i}" for i in best] and np.array_equal(heights, p[best])
    assert list(heights) == sorted(heights, reverse=True) and TOP_BARS < MANY_CLASSES


def test_unit_max_and_titles():
    m = np.array([[[0.0, 2.0]], [[1.0, 4.0]]])
    np.testing.assert_allclose(unit_max(m), m / 4)
    np.testing.assert_array_equal(unit_max(np.zeros((2, 1, 2))), 0)
    assert fool_titles("cat", "dog")[3:] == ["CAM start cat", "CAM start dog", "CAM end cat",
                                             "CAM end dog"]


def test_curve_appends_the_final_values_and_never_gives_one_point():
    trace = np.array([[1.0, 2.0], [3.0, 4.0]])
    x, y = curve(trace, np.array([5.0, 6.0]))
    np.testing.assert_array_equal(x, [0, 1, 2])
    np.testing.assert_array_equal(y[:, 1], [2, 4, 6])
    x, y = curve(trace[:1])
    assert len(x) == 0 and y.shape == (0, 2)


def test_a_picture_knows_whether_its_overlay_is_its_own():
    images, other = np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2))
    assert not Picture(images, np.ones((1, 1))).exact_cam
    assert Picture(images, np.ones((1, 1)), cam=object(), cam_for=images).exact_cam
    assert not Picture(images, np.ones((1, 1)), cam=object(), cam_for=other).exact_cam
