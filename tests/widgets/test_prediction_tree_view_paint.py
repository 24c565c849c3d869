"""PredictionTreeView's pictures (pure: records in, RGBA sheets and captions out; no widget)."""
from types import SimpleNamespace

import numpy as np
import pytest
from test_prediction_tree_view_geometry import random_tree

from cnn_widgets.widgets.prediction_tree_view.geometry import (
    CAT_SIZE,
    TREE_SIZE,
    category_view,
    tree_layout,
)
from cnn_widgets.widgets.prediction_tree_view.paint import (
    BLUE,
    PINK,
    RED,
    blank,
    categories_sheet,
    detail_sheet,
    disc,
    line,
    tree_sheet,
    triangle,
)


def is_colour(px, colour, tol=2):
    return np.all(np.abs(px[..., :3].astype(int) - colour) <= tol, axis=-1)


def test_a_line_covers_its_pixels_and_nothing_far_from_it():
    rgba = blank(20, 30)
    line(rgba, (2.0, 10.0), (27.0, 10.0), RED, 2.0)           # pixel rows 9 and 10 (centres 9.5, 10.5)
    assert is_colour(rgba[9:11, 3:27], RED).all()
    assert (rgba[:8] == 255).all() and (rgba[12:] == 255).all() and (rgba[..., 3] == 255).all()
    rgba = blank(20, 20)
    line(rgba, (0.0, 0.0), (20.0, 20.0), BLUE, 1.0)
    assert is_colour(rgba[np.arange(20), np.arange(20)], BLUE, tol=60).all()   # the diagonal
    assert (rgba[0, 10:] == 255).all() and (rgba[15, :10] == 255).all()


def test_a_disc_and_its_ring():
    rgba = blank(30, 30)
    disc(rgba, (15.0, 15.0), 6, (255, 0, 0), (0, 0, 0), 1.0)
    yy, xx = np.mgrid[0:30, 0:30] + 0.5
    d = np.hypot(xx - 15, yy - 15)
    assert is_colour(rgba[d < 4], (255, 0, 0)).all()           # filled inside
    assert (rgba[..., :3][d > 8] == 255).all()                 # nothing outside
    ring = rgba[(d > 5.8) & (d < 6.2)][..., :3].astype(int)
    assert ring.max() < 120                                    # a dark outline
    empty = blank(30, 30)
    disc(empty, (15.0, 15.0), 6, None, (0, 0, 0))              # a ring only
    assert (empty[d < 4] == 255).all() and empty[(d > 5.8) & (d < 6.2)][..., 0].max() < 120
    tri = blank(30, 30)
    triangle(tri, [(5.0, 5.0), (25.0, 5.0), (5.0, 25.0)], (0, 0, 0))
    assert (tri[7, 7, :3] == 0).all() and (tri[22, 22, :3] == 255).all()


@pytest.mark.parametrize("k, long_names", [(10, False), (40, True)])
def test_the_hierarchy_sheet_draws_the_path_in_red_and_labels_every_row(k, long_names):
    h, d, mst, _ = random_tree(k, seed=k)
    names = [f"category number {i}" if long_names else str(i) for i in range(k)]
    leaf = 5
    view = category_view(h, -1, leaf, d, mst)
    sheet = categories_sheet(h, view, names)
    assert sheet.rgba.shape == (*CAT_SIZE, 4) and sheet.rgba.dtype == np.uint8
    labels = sheet.captions[2:2 + len(view.rows)]
    assert [c.y for c in labels] == [int(round(view.xy[r][1] + 4)) for r in view.rows]
    for c, r in zip(labels, view.rows):
        if r < h.n:
            assert c.text.endswith(names[r]) or c.text.endswith("…")
        else:
            assert f"({h.size[r]})" in c.text
    disc_text = [c.text for c in sheet.captions[2 + len(view.rows):]]
    if long_names:                                              # a letter per row and disc
        assert disc_text == [chr(65 + i) for i in range(len(view.rows))]
        assert [c.text[0] for c in labels] == disc_text
    else:                                                       # the digits: their names
        assert disc_text == [names[r] for r in view.discs]
    # the red path: red pixels on every red segment, none elsewhere than red segments
    red = is_colour(sheet.rgba, RED, tol=30)
    for a, b, is_red in view.lines(h):
        mid = (int((a[1] + b[1]) / 2), int((a[0] + b[0]) / 2))
        if is_red and abs(a[0] - b[0]) > 4:
            assert red[mid], (a, b)
    assert red.sum() > 0
    # the chosen row (or the group holding it) and its disc in pink
    row = next(r for r in view.rows if r in view.red)
    x, y = view.discs[row]
    assert is_colour(sheet.rgba[int(y), int(x)], PINK)
    assert is_colour(sheet.rgba[int(view.xy[row][1]), 330 - 10], PINK)


def tiny_tree():
    """A prediction-tree-like record: leaves 0..3, node 4 = (0, 1), node 5 = (4, 2); top
    (5, 3); critical filters 7 and 9."""
    kids = {4: (0, 1), 5: (4, 2), -1: (5, 3)}
    return SimpleNamespace(
        images=np.arange(4), name="cat", layer="conv", n_filters=12, n_nodes=6,
        merges=SimpleNamespace(size=np.array([1, 1, 1, 1, 2, 3])),
        children=lambda k: kids.get(k, ()), critical=lambda k: {4: 7, 5: 9}.get(k, -1),
        top=(5, 3))


def test_the_tree_sheet_draws_the_path_in_red_with_its_critical_filters():
    t = tiny_tree()
    pos = tree_layout(t.top, t.children, TREE_SIZE[1], TREE_SIZE[0])
    sheet = tree_sheet(t, pos, frozenset({-1, 4, 5}), {5, 4, 1}, 4, TREE_SIZE)
    assert sheet.rgba.shape == (*TREE_SIZE, 4)
    texts = [c.text for c in sheet.captions]
    assert texts[0].startswith("prediction tree of 'cat' at conv: 4 images, 12 filters")
    assert sorted(texts[1:]) == ["f7", "f9"]                    # the path's super nodes
    red = is_colour(sheet.rgba, RED, tol=30)
    for a, b in [(5, 4), (4, 1)]:                               # the path's edges
        (x0, y0), (x1, y1) = pos[a], pos[b]
        assert red[int((y0 + y1) / 2), int((x0 + x1) / 2)]
    (x0, y0), (x1, y1) = pos[4], pos[0]                          # not on the path
    assert not red[int((y0 + y1) / 2), int((x0 + x1) / 2)]
    x, y = pos[4]                                               # the selected node: a black ring
    assert sheet.rgba[int(y), int(x + 8)][:3].max() < 80
    closed = tree_sheet(t, tree_layout(t.top, t.children, 560, 320, {5}), frozenset({-1, 5}),
                        set(), -1, TREE_SIZE)
    assert "2" in [c.text for c in closed.captions]             # node 4 closed: its 2 images


def test_the_detail_sheet_tiles_the_images_enlarged_twice():
    images = [np.full((1, 5, 4), v, np.float32) for v in (0.0, 0.5, 1.0)]
    sheet = detail_sheet(images)
    assert sheet.rgba.shape[:2] == (2 * 5 + 2, 3 * (2 * 4 + 4)) and not sheet.captions
    assert sheet.rgba[3, 12 + 3, 0] == 128 and sheet.rgba[3, 24 + 3, 0] == 255
