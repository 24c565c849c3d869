"""PredictionTreeView state: simulated clicks and hovers, asserted on state and RGBA buffers."""
import re
import time

import numpy as np
import pytest
import traitlets as T

from cnn_widgets import PredictionTreeView, objectives
from cnn_widgets.testing.threads import held_elsewhere


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def ready(view):
    """The view once its first picture (computed on the worker) is there."""
    assert view.wait(60)
    return view


def test_first_picture_is_the_first_category_and_its_first_image(engine):
    v = ready(PredictionTreeView(engine))
    labels = engine.dataset.labels.numpy()
    assert v.tree.category == 0 and v.tree.layer == "5"           # the last (C, H, W) layer
    np.testing.assert_array_equal(v.tree.images, np.flatnonzero(labels == 0))
    assert v.image == int(np.flatnonzero(labels == 0)[0])
    assert v.cat_tree.names == tuple(engine.class_names)
    # every node has a place; the path starts below the root and ends at a leaf
    assert set(v.node_pos) == set(range(v.tree.n_nodes)) | {-1}
    assert v.path.nodes[0] in v.tree.top and v.path.nodes[-1] < len(v.tree.images)
    assert f"path of image {v.image}" in v.path_text.value


def test_click_a_node_shows_its_critical_filter_and_its_top_images(engine):
    v = ready(PredictionTreeView(engine))
    node = v.path.nodes[0] if v.path.nodes[0] >= len(v.tree.images) else v.tree.n_nodes - 1
    x, y = v.node_pos[node]
    event(v.tree_canvas, "mouse_move", x + 2, y)
    assert v.hover.value.startswith(f"node {node}: {v.tree.merges.size[node]} images")
    event(v.tree_canvas, "mouse_down", x + 1, y - 1)
    assert v.selected == node
    assert v.wait()
    f = v.tree.critical(node)
    want = engine.top_images(objectives.channel(v.tree.layer, f), k=6)
    np.testing.assert_array_equal(v.top.indices, want.indices)
    assert f"critical filter <b>{f}</b>" in v.detail_text.value
    reach = np.flatnonzero(v.tree.merges.filters[node])
    assert f"reachable filters ({len(reach)})" in v.detail_text.value
    # the detail sheet shows those images, side by side, enlarged twice
    h, w = engine.input_shape[1:]
    assert v.detail_rgba.shape[:2] == (2 * h + 2, 6 * (2 * w + 4))
    first = np.asarray(want.images[0][0])
    np.testing.assert_array_equal(v.detail_rgba[:2 * h:2, :2 * w:2, 0],
                                  np.clip(np.rint(first * 255), 0, 255).astype(np.uint8))
    # another node: at once its own text, never the last node's images under it
    other = next(k for k in range(len(v.tree.images), v.tree.n_nodes)
                 if v.tree.critical(k) != f)
    v.selected = other
    assert v.detail_text.value.startswith(f"<b>node {other}</b>")
    g = v.tree.critical(other)
    assert v.top is None or v.top.objective == objectives.channel(v.tree.layer, g).description
    assert v.wait()
    want = engine.top_images(objectives.channel(v.tree.layer, g), k=6)
    np.testing.assert_array_equal(v.top.indices, want.indices)


def test_click_a_category_builds_its_tree_and_a_new_image_gets_its_path(engine):
    v = ready(PredictionTreeView(engine))
    x, y = v.cat_pos[3]
    event(v.cat_canvas, "mouse_move", x, y)
    assert v.hover.value.startswith("3: nearest ")
    event(v.cat_canvas, "mouse_down", x, y)
    assert v.category == 3 and v.category_box.value == 3
    assert v.wait()
    assert v.tree.category == 3 and v.tree.name == "3"
    labels = engine.dataset.labels.numpy()
    assert v.image == int(np.flatnonzero(labels == 3)[0])
    other = int(np.flatnonzero(labels == 7)[1])
    v.image_box.value = other
    assert v.wait()
    want = v.tree.path(engine.dataset.images[other])
    assert v.path.nodes == want.nodes
    assert f"path of image {other}" in v.path_text.value


def test_noise_category_and_errors(engine):
    v = ready(PredictionTreeView(engine))
    v.noise_box.value = True
    assert v.wait()
    assert v.cat_tree.names[-1] == "noise" and -1 in v.cat_pos
    x, y = v.cat_pos[-1]
    event(v.cat_canvas, "mouse_down", x, y)                         # noise has no tree
    assert v.category == 0
    with pytest.raises(T.TraitError, match=r"category must be in 0\.\.9; got 12"):
        PredictionTreeView(engine, category=12)


def test_a_drawn_image_gets_its_own_path(engine):
    v = ready(PredictionTreeView(engine))
    k = v.pad_scale
    event(v.pad_canvas, "mouse_down", 14.5 * k, 5.5 * k)
    for step in range(1, 12):
        event(v.pad_canvas, "mouse_move", 14.5 * k, (5.5 + 2 * step) * k)
    event(v.pad_canvas, "mouse_up", 14.5 * k, 27.5 * k)
    assert v.wait()
    assert v.use_pad and v.pad.max() > 0.9 and v.pad[0, 15:20, 14].min() > 0.5   # a vertical stroke
    want = v.tree.path(v.pad)
    assert v.path.nodes == want.nodes and "path of the drawn image" in v.path_text.value
    v.category_box.value = 2                                         # the drawing stays the query
    assert v.wait()
    assert v.tree.category == 2 and v.use_pad and v.path.nodes == v.tree.path(v.pad).nodes
    v.image_box.value = 5                                            # back to a dataset image
    assert v.wait()
    assert not v.use_pad and v.path.nodes == v.tree.path(engine.dataset.images[5]).nodes
    v.clear_pad()
    assert v.pad.max() == 0


def test_construction_and_observers_never_wait_for_the_engine(engine):
    """Issue 9 defect 7: the kernel thread never waits on the engine lock."""
    with held_elsewhere(engine):
        began = time.monotonic()
        v = PredictionTreeView(engine)
        v.category, v.noise_box.value, v.image = 3, True, 7
        assert time.monotonic() - began < 1.0
        assert v.tree is None and v.cat_tree is None           # placeholders meanwhile
    assert v.wait(60)
    assert v.tree.category == 3 and v.cat_tree.names[-1] == "noise"
    assert v.path.nodes == v.tree.path(engine.dataset.images[7]).nodes


def test_bad_trait_values_are_refused_and_the_old_value_kept(engine):
    """Issue 9 defect 8: tree ``selected=10**6`` raised to the caller and kept the value."""
    v = ready(PredictionTreeView(engine))
    n = v.tree.n_nodes
    for name, bad, message in [("selected", 10 ** 6, f"selected must be in -1..{n - 1}"),
                               ("image", -1, "image must be in 0..39"),
                               ("category", 10, "category must be in 0..9"),
                               ("layer", "9", "layer must be one of")]:
        old = getattr(v, name)
        with pytest.raises(T.TraitError, match=re.escape(message)):
            setattr(v, name, bad)
        assert getattr(v, name) == old
    assert v.category_box.value == v.category and v.image_box.value == v.image


def test_class_names_are_shown_as_text(engine):
    """Issue 9 defect 9: a class name with markup is escaped in the widget's HTML."""
    from cnn_widgets import Engine
    evil = "<img src=x onerror=alert(1)>"
    names = [evil] + [str(i) for i in range(1, 10)]
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), class_names=names, device="cpu")
    v = ready(PredictionTreeView(e))
    assert "&lt;img src=x onerror=alert(1)&gt;" in v.path_text.value
    assert "<img" not in v.path_text.value


@pytest.mark.parametrize("name", ["selected", "category", "image"])
def test_a_boolean_is_not_a_node_category_or_image(engine, name):
    """Issue 16: ``selected=True`` was taken as node 1, raised a broadcast error and stayed."""
    from cnn_widgets.widgets.validate import InvalidTrait
    v = ready(PredictionTreeView(engine))
    old = getattr(v, name)
    with pytest.raises(InvalidTrait, match=f"^{name} must be a whole number; got True$"):
        setattr(v, name, True)
    assert getattr(v, name) == old and v.wait() and not v.error.value

