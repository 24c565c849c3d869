"""PredictionTreeView's pure layout math, without a widget."""
import numpy as np
from scipy.cluster.hierarchy import dendrogram, linkage

from cnn_widgets.widgets.layout.prediction_tree_view import (
    CAT_SIZE,
    MARGIN,
    TITLE,
    category_at,
    category_layout,
    classical_mds,
    fit,
    nearest,
    spread,
    tree_layout,
)


def test_classical_mds_recovers_planar_distances():
    pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    d = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    got = classical_mds(d)
    np.testing.assert_allclose(np.hypot(*(got[:, None] - got[None]).transpose(2, 0, 1)), d,
                               atol=1e-9)


def test_spread_and_fit():
    p = spread(np.array([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]]), 20.0)
    assert np.hypot(*(p[0] - p[1])) >= 19.9 and np.allclose(p[2], [50, 50])
    f = fit(np.array([[0.0, 0.0], [2.0, 1.0]]), (10, 20, 100, 100))
    np.testing.assert_allclose(f, [[10, 45], [110, 95]])


def toy_tree():
    """Leaves 0..3; node 4 = (0, 1), node 5 = (4, 2); the root's children: 5 and 3."""
    kids = {4: (0, 1), 5: (4, 2)}
    return (5, 3), lambda k: kids.get(k, ())


def test_tree_layout_puts_leaves_at_the_bottom_and_parents_over_their_children():
    top, children = toy_tree()
    pos = tree_layout(top, children, 200, 100)
    assert set(pos) == {-1, 0, 1, 2, 3, 4, 5}
    assert [pos[k][1] for k in (0, 1, 2, 3)] == [100 - MARGIN] * 4
    assert [pos[k][0] for k in (0, 1, 2, 3)] == sorted(pos[k][0] for k in (0, 1, 2, 3))
    assert pos[4][0] == (pos[0][0] + pos[1][0]) / 2 and pos[5][0] == (pos[4][0] + pos[2][0]) / 2
    assert pos[-1] == ((pos[5][0] + pos[3][0]) / 2, TITLE + MARGIN)
    assert pos[-1][1] < pos[5][1] < pos[4][1] < pos[0][1]


def test_hit_tests_find_discs_and_dendrogram_labels():
    assert nearest({1: (10.0, 10.0), 2: (30.0, 10.0)}, 27, 12) == 2
    assert nearest({1: (10.0, 10.0)}, 40, 40) is None and nearest({}, 0, 0) is None
    vectors = np.random.default_rng(0).normal(size=(4, 6))
    d = 1 - np.corrcoef(vectors)
    dg = dendrogram(linkage(vectors, "weighted"), no_plot=True)
    lay = category_layout(dg["icoord"], dg["dcoord"], dg["leaves"], (0, 1, 2, -1), d)
    assert len(lay.lines) == 3 and all(line.shape == (4, 2) for line in lay.lines)
    assert set(lay.positions) == set(lay.leaf_x) == {0, 1, 2, -1}
    for cl, (x, y) in lay.positions.items():
        assert category_at(lay, x + 3, y - 3) == cl
        assert category_at(lay, lay.leaf_x[cl], CAT_SIZE[0] - MARGIN) == cl
    assert category_at(None, 0, 0) is None
