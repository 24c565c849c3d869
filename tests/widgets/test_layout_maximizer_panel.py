"""MaximizerPanel's pure layout math, without a widget."""
import numpy as np

from cnn_widgets.widgets.layout.maximizer_panel import (
    curve,
    fool_titles,
    softmax,
    start_rows,
    top_class,
    unit_max,
    wrap,
    zoom,
)


def test_softmax_rows_sum_to_one_and_keep_the_order():
    p = softmax(np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.argmax(p[0]) == 1 and np.allclose(p[1], 1 / 3)
    assert top_class(p) == [(1, p[0, 1]), (0, p[1, 0])]


def test_zoom_wrap_and_start_rows():
    assert zoom((28, 28), 168) == 6 and zoom((32, 64), 84) == 1 and zoom((400, 400), 84) == 1
    assert wrap(7, 5) == [[0, 1, 2, 3, 4], [5, 6]] and wrap(0, 5) == []
    assert start_rows(38, 4, 40) == [38, 39, 0, 1]


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
