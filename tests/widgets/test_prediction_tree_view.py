"""PredictionTreeView state: simulated clicks and hovers, asserted on state and RGBA sheets."""
import re

import numpy as np
import pytest
import torch
import traitlets as T
from torch import nn

from cnn_widgets import Engine, PredictionTreeView, objectives
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets.prediction_tree_view.geometry import MAX_SHOWN, REST, TREE_LEAVES


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def ready(view):
    """The view once its first picture (computed on the worker) is there."""
    assert view.wait(60)
    return view


def shows_a_sheet(view, canvas) -> bool:
    return canvas in view._sheets()


# 40 categories present among 1000 classes: 8 with 2 images, 32 with 1; 960 with none
PRESENT = [7 + 25 * i for i in range(40)]


@pytest.fixture
def thousand():
    """A tiny CNN with 1000 outputs and 1000 names, and 48 random images of 40 classes (seeds
    whose hierarchy has a path of 18 nodes: deeper than the rows shown)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 4 * 4, 1000))
    x = torch.rand(48, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    y = torch.tensor(PRESENT[:8] * 2 + PRESENT[8:])
    names = [f"species {i:03d}" for i in range(1000)]
    return Engine(model, (1, 16, 16), dataset=(x, y), class_names=names, device="cpu")


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
    assert f"path of image {v.image}" in v.controls.path_text.value
    assert shows_a_sheet(v, v.controls.cat_canvas) and shows_a_sheet(v, v.controls.tree_canvas)


def test_the_digits_show_every_class_from_the_root(engine):
    """The same view with 10 classes keeps its defaults: the whole hierarchy, every category a
    row and a disc, the whole tree."""
    v = ready(PredictionTreeView(engine))
    h = v.hierarchy
    assert v.focus == -1 and v.cat_view.focus == h.root
    assert sorted(v.cat_view.rows) == list(range(10)) and sorted(v.cat_pos) == list(range(10))
    assert v.tree_open == frozenset(range(len(v.tree.images), v.tree.n_nodes)) | {-1}
    assert v.controls.up_button.disabled
    captions = {c.text for c in v._sheets()[v.controls.cat_canvas].captions}
    assert {str(i) for i in range(10)} <= captions                  # names, not letters


def test_click_a_node_shows_its_critical_filter_and_its_top_images(engine):
    v = ready(PredictionTreeView(engine))
    c = v.controls
    node = v.path.nodes[0] if v.path.nodes[0] >= len(v.tree.images) else v.tree.n_nodes - 1
    x, y = v.node_pos[node]
    event(c.tree_canvas, "mouse_move", x + 2, y)
    assert c.hover.value.startswith(f"node {node}: {v.tree.merges.size[node]} images")
    event(c.tree_canvas, "mouse_down", x + 1, y - 1)
    assert v.selected == node
    assert v.wait()
    f = v.tree.critical(node)
    want = engine.top_images(objectives.channel(v.tree.layer, f), k=6)
    np.testing.assert_array_equal(v.top.indices, want.indices)
    assert f"critical filter <b>{f}</b>" in c.detail_text.value
    reach = np.flatnonzero(v.tree.merges.filters[node])
    assert f"reachable filters ({len(reach)})" in c.detail_text.value
    # the detail sheet shows those images, side by side, enlarged twice
    h, w = engine.input_shape[1:]
    assert v.detail_rgba.shape[:2] == (2 * h + 2, 6 * (2 * w + 4))
    assert v._sheets()[c.detail_canvas].rgba is v.detail_rgba
    first = np.asarray(want.images[0][0])
    np.testing.assert_array_equal(v.detail_rgba[:2 * h:2, :2 * w:2, 0],
                                  np.clip(np.rint(first * 255), 0, 255).astype(np.uint8))
    # another node: at once its own text, never the last node's images under it
    other = next(k for k in range(len(v.tree.images), v.tree.n_nodes)
                 if v.tree.critical(k) != f)
    v.selected = other
    assert c.detail_text.value.startswith(f"<b>node {other}</b>")
    g = v.tree.critical(other)
    assert v.top is None or v.top.objective == objectives.channel(v.tree.layer, g).description
    assert v.wait()
    want = engine.top_images(objectives.channel(v.tree.layer, g), k=6)
    np.testing.assert_array_equal(v.top.indices, want.indices)


def test_click_a_category_builds_its_tree_and_a_new_image_gets_its_path(engine):
    v = ready(PredictionTreeView(engine))
    c = v.controls
    x, y = v.cat_pos[3]
    event(c.cat_canvas, "mouse_move", x, y)
    assert c.hover.value.startswith("3 (4 images): nearest ")
    event(c.cat_canvas, "mouse_down", x, y)
    assert v.category == 3 and c.category_box.value == "3: 3"
    assert v.wait()
    assert v.tree.category == 3 and v.tree.name == "3"
    labels = engine.dataset.labels.numpy()
    assert v.image == int(np.flatnonzero(labels == 3)[0])
    other = int(np.flatnonzero(labels == 7)[1])
    c.image_box.value = other
    assert v.wait()
    want = v.tree.path(engine.dataset.images[other])
    assert v.path.nodes == want.nodes
    assert f"path of image {other}" in c.path_text.value


def test_noise_category_and_errors(engine):
    v = ready(PredictionTreeView(engine))
    v.controls.noise_box.value = True
    assert v.wait()
    assert v.cat_tree.names[-1] == "noise" and -1 in v.cat_pos
    x, y = v.cat_pos[-1]
    event(v.controls.cat_canvas, "mouse_down", x, y)                # noise has no tree
    assert v.category == 0
    with pytest.raises(T.TraitError, match=r"category must be in 0\.\.9; got 12"):
        PredictionTreeView(engine, category=12)
    with pytest.raises(T.TraitError, match=r"max_images must be in 2\.\.40; got 1"):
        PredictionTreeView(engine, max_images=1)


def test_a_drawn_image_gets_its_own_path(engine):
    v = ready(PredictionTreeView(engine))
    pad = v.controls.drawing_pad
    k = pad.scale
    event(pad.canvas, "mouse_down", 14.5 * k, 5.5 * k)
    for step in range(1, 12):
        event(pad.canvas, "mouse_move", 14.5 * k, (5.5 + 2 * step) * k)
    event(pad.canvas, "mouse_up", 14.5 * k, 27.5 * k)
    assert v.wait()
    assert v.use_pad and v.pad.max() > 0.9 and v.pad[0, 15:20, 14].min() > 0.5   # a vertical stroke
    want = v.tree.path(v.pad)
    assert v.path.nodes == want.nodes and "path of the drawn image" in v.controls.path_text.value
    v.controls.category_box.value = "2: 2"                          # the drawing stays the query
    assert v.wait()
    assert v.tree.category == 2 and v.use_pad and v.path.nodes == v.tree.path(v.pad).nodes
    v.controls.image_box.value = 5                                   # back to a dataset image
    assert v.wait()
    assert not v.use_pad and v.path.nodes == v.tree.path(engine.dataset.images[5]).nodes
    v.clear_pad()
    assert v.pad.max() == 0


def test_construction_and_observers_never_wait_for_the_engine(engine):
    """Issue 9 defect 7: the kernel thread never waits on the engine lock; what needs no
    computation (the hints) shows at once."""
    with held_elsewhere(engine) as still_held:
        v = PredictionTreeView(engine)
        v.category, v.controls.noise_box.value, v.image = 3, True, 7
        assert still_held()
        assert v.tree is None and v.cat_tree is None           # hints meanwhile
        assert v._shown[v.controls.cat_canvas].startswith("computing the category hierarchy")
        assert v._shown[v.controls.tree_canvas] == "computing the prediction tree of '3' (4 images)…"
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
                               ("layer", "9", "layer must be one of"),
                               ("focus", 3, "focus must be -1 (the root) or a merge of the "
                                            "hierarchy, 10..18; got 3")]:
        old = getattr(v, name)
        with pytest.raises(T.TraitError, match=re.escape(message)):
            setattr(v, name, bad)
        assert getattr(v, name) == old
    assert v.controls.category_box.value == "0: 0" and v.controls.image_box.value == v.image
    v.controls.category_box.value = "eleven"                     # typed, not an option
    assert v.category == 0 and "no category &#x27;eleven&#x27;" in v.error.value


def test_class_names_are_shown_as_text(engine):
    """Issue 9 defect 9: a class name with markup is escaped in the widget's HTML."""
    evil = "<img src=x onerror=alert(1)>"
    names = [evil] + [str(i) for i in range(1, 10)]
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), class_names=names, device="cpu")
    v = ready(PredictionTreeView(e))
    for text in (v.controls.path_text.value, v.controls.breadcrumb.value):
        assert "&lt;img src=x onerror=alert(1)&gt;" in text and "<img" not in text


@pytest.mark.parametrize("name", ["selected", "category", "image", "focus"])
def test_a_boolean_is_not_a_node_category_or_image(engine, name):
    """Issue 16: ``selected=True`` was taken as node 1, raised a broadcast error and stayed."""
    from cnn_widgets.widgets.validate import InvalidTrait
    v = ready(PredictionTreeView(engine))
    old = getattr(v, name)
    with pytest.raises(InvalidTrait, match=f"^{name} must be a whole number; got True$"):
        setattr(v, name, True)
    assert getattr(v, name) == old and v.wait() and not v.error.value


# -- 1000 classes ---------------------------------------------------------------------------
def test_a_thousand_classes_show_a_bounded_hierarchy_and_every_class_is_searchable(thousand):
    v = ready(PredictionTreeView(thousand))
    c, h = v.controls, v.hierarchy
    assert v.category == PRESENT[0] and v.tree.category == PRESENT[0]   # the first with 2 images
    assert len(c.category_box.options) == 1000 and c.category_box.options[757] == "757: species 757"
    assert h.n == 40                                        # only the classes with images
    # the first category's path is shown, open and red, from an ancestor of it
    leaf = v.cat_tree.classes.index(v.category)
    path = h.path(leaf)
    assert v.cat_view.focus in path and leaf in v.cat_view.rows
    assert v.cat_view.red == frozenset(path[path.index(v.cat_view.focus):])
    assert len(v.cat_view.rows) <= MAX_SHOWN and any(k >= h.n for k in v.cat_view.rows)
    # from the root: the 16 highest groups and categories, each a disc
    v.zoom(-1)
    assert v.cat_view.focus == h.root and len(v.cat_view.rows) == MAX_SHOWN
    assert v.cat_view.red == frozenset(path[:MAX_SHOWN])     # to the group that holds it
    assert len(v.cat_view.discs) == MAX_SHOWN
    sheet = v._sheets()[c.cat_canvas]
    assert len(sheet.captions) == 2 + 2 * MAX_SHOWN
    labels = [t.text for t in sheet.captions[2:2 + MAX_SHOWN]]
    assert labels[0].startswith("A ") and all(len(t) <= 22 for t in labels)     # cut to fit
    assert [t.text for t in sheet.captions[2 + MAX_SHOWN:]] == [t[0] for t in labels]


def test_search_a_class_zooms_to_show_the_path_to_it(thousand):
    v = ready(PredictionTreeView(thousand))
    c, h = v.controls, v.hierarchy
    # the class whose path from the root is longest: deeper than the rows shown
    deepest = max(range(h.n), key=lambda k: len(h.path(k)))
    path = h.path(deepest)
    assert len(path) > MAX_SHOWN                             # else this test shows nothing
    target = v.cat_tree.classes[deepest]
    c.category_box.value = f"{target}: species {target:03d}"      # picked from the search box
    assert v.category == target
    want = path[len(path) - MAX_SHOWN]                       # as high as still shows the leaf
    assert v.focus == want and v.cat_view.focus == want
    assert deepest in v.cat_view.rows and v.cat_view.red == frozenset(path[-MAX_SHOWN:])
    assert len(v.cat_view.rows) <= MAX_SHOWN
    crumb = c.breadcrumb.value
    assert crumb.startswith("all 40 › ") and crumb.endswith(f"<b>species {target:03d}</b>")
    assert f"<u>{h.size[want]}</u>" in crumb and not c.up_button.disabled
    # zoom out goes up one merge at a time, to the root
    c.up_button.click()
    assert v.focus == h.parent[want] and v.cat_view.focus == h.parent[want]
    c.top_button.click()
    assert v.focus == -1 and v.cat_view.focus == h.root and c.up_button.disabled
    # a click on a closed group zooms into it; the grey disc zooms out again
    group = next(k for k in v.cat_view.rows if k >= h.n)
    x, y = v.cat_view.xy[group]
    event(c.cat_canvas, "mouse_move", x + 30, y)
    assert c.hover.value.startswith(f"{h.size[group]} categories (")
    event(c.cat_canvas, "mouse_down", x + 30, y)
    assert v.focus == group and set(v.cat_view.rows) <= set(h.leaves(group)) | set(
        range(h.n, 2 * h.n - 1))
    x, y = v.cat_view.discs[REST]
    event(c.cat_canvas, "mouse_down", x, y)
    assert v.focus == (-1 if h.parent[group] == h.root else h.parent[group])


def test_a_class_without_images_is_searchable_and_says_why_it_has_no_tree(thousand):
    v = ready(PredictionTreeView(thousand))
    c = v.controls
    c.category_box.value = "3: species 003"                         # no images
    assert v.wait()
    focus = v.focus
    assert v.tree is None and not v.error.value
    assert v._shown[c.tree_canvas] == ("'species 003' has 0 image(s) in the dataset: a "
                                       "prediction tree needs at least 2")
    assert "no images in the dataset" in c.breadcrumb.value and not v.cat_view.red
    assert v.focus == focus                                  # the hierarchy stays where it was
    c.category_box.value = f"{PRESENT[20]}: species {PRESENT[20]:03d}"     # one image
    assert v.wait()
    assert v.tree is None and not v.error.value and "has 1 image(s)" in v._shown[c.tree_canvas]
    leaf = v.cat_tree.classes.index(PRESENT[20])
    assert leaf in v.cat_view.rows                           # in the hierarchy, with its path


def test_the_hierarchy_paints_the_classes_scanned_so_far(thousand, late):
    """Progressive painting: the first picture is the hierarchy of the classes of the first
    chunks of images (1, then up to 2), shown while the scan goes on; Stop then ends the scan
    before its next chunk."""
    calls = []
    held = late(thousand, "activations", lambda x, layers: len(calls) == 3)
    counted = thousand.activations
    thousand.activations = lambda x, layers: calls.append(len(x)) or counted(x, layers)
    v = PredictionTreeView(thousand)
    assert held.entered.wait(30)
    scanned = sum(calls[:2])                    # the third chunk is held
    with v.runner.lock:
        assert calls[0] == 1 and v.cat_tree.classes == tuple(PRESENT[:scanned])
        assert shows_a_sheet(v, v.controls.cat_canvas)
    v.stop()
    held()
    job = v.job("categories")
    assert job.wait(30) and job.state == "stopped"
    assert len(calls) == 3 and v.cat_tree.classes == tuple(PRESENT[:scanned])
    assert "stopped" in v.status.value


def test_the_prediction_tree_shows_a_bounded_number_of_nodes():
    """A category of 150 images: at most TREE_LEAVES nodes at the bottom, the path open."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(96, 1))
    x = torch.rand(150, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    e = Engine(model, (1, 8, 8), dataset=(x, torch.zeros(150, dtype=torch.long)),
               class_names=["a"], device="cpu")
    v = ready(PredictionTreeView(e))
    bottom = [k for k in v.node_pos if k not in v.tree_open]
    assert len(bottom) <= TREE_LEAVES < len(v.tree.images)
    assert set(v.path.nodes) - {v.path.nodes[-1]} <= v.tree_open and v.path.nodes[-1] in v.node_pos
