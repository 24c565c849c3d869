"""SanityCheckView state: traits, requests, Stop, closing, maps painted as they arrive, asserted
on state and RGBA buffers against the engine's own sanity checks (its pictures themselves:
test_sanity_check_view_paint.py; its layout: test_sanity_check_view_geometry.py)."""
import numpy as np
import pytest
import torch
import traitlets
from conftest import painted_on, stop_after
from torch import nn

from cnn_widgets import Engine, SanityCheckView, jobs
from cnn_widgets.engine.sanity.maps import METHODS
from cnn_widgets.testing import untouched
from cnn_widgets.widgets.sanity_check_view import DEFAULT_METHODS, ORDER, Cell
from cnn_widgets.widgets.sanity_check_view.paint import PENDING


def view(engine, **kw):
    """A view with its first check computed (the constructor only queues it)."""
    w = SanityCheckView(engine, **kw)
    assert w.wait(60)
    return w


def cells_done(w) -> int:
    """How many cells of the grid picture show a map (the others are grey)."""
    g, rgba = w._layout, w.grid_rgba
    return sum(not (rgba[top:top + 4, left:left + 4] == PENDING).all()
               for top, left in (g.corner(r, c) for r in range(g.rows) for c in range(g.cols)))


def click(w, row, col):
    top, left = w._layout.corner(row, col)
    h, wd = w._layout.cell
    w.controls.grid_canvas._handle_frontend_event(
        None, {"event": "mouse_down", "x": left + wd / 2, "y": top + h / 2}, [])


def widget_models() -> int:
    """The widget models the kernel holds (ipywidgets' registry; a closed widget leaves it)."""
    from ipywidgets.widgets.widget import _instances
    return len(_instances)


@pytest.fixture
def every_partial(monkeypatch):
    """Jobs deliver every partial (no throttle): what is painted on the way is deterministic."""
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_S", 0.0)


def test_defaults_show_the_engines_cascade(engine):
    with untouched(engine.model):
        w = view(engine)
    assert w.indices == [0, 1, 2, 3] and w.methods == DEFAULT_METHODS and w.mode == "cascade"
    assert w.layers == engine.sanity_layers() and w.metric == "rank_abs" and w.shown == 0
    assert set(ORDER) == set(METHODS)
    ref = engine.sanity_check(engine.dataset.images[:4], methods=list(DEFAULT_METHODS))
    assert w.result.layers == ref.layers and w.result.methods == ref.methods
    np.testing.assert_array_equal(w.result.rank_abs, ref.rank_abs)
    assert len(w.rows) == len(DEFAULT_METHODS) * (len(ref.layers) + 1)
    assert w.grid_rgba.shape[:2] == w._layout.size and cells_done(w) == len(w.rows)
    assert (w.controls.grid_canvas.width, w.controls.grid_canvas.height) == w.grid_rgba.shape[1::-1]
    texts = [c.text for c in w.captions]
    assert texts[:len(ref.layers) + 1] == ["original", *ref.layers]
    scores = texts[len(ref.layers) + 1 + len(DEFAULT_METHODS):]
    assert scores == [f"{v:.2f}" for v in ref.rank_abs[:, :, 0].reshape(-1)]
    for k, m in enumerate(ref.methods):                    # the curves: 1 (the original), then
        line = w.controls.curves[m]                         # the engine's mean per stage
        assert line.visible and list(line.x) == list(range(len(ref.layers) + 1))
        np.testing.assert_allclose(line.y, [1.0, *ref.mean("rank_abs")[k]])
    assert not w.controls.curves["etalon"].visible and len(w.controls.curves["etalon"].y) == 0
    assert "done" in w.status.value and w.stop_button.disabled and w.progress.value == 1.0


def test_metric_and_shown_image_repaint_without_a_new_check(engine):
    w = view(engine)
    job, ref = w.job("check"), w.result
    w.controls.metric_box.value = "ssim"                    # a click on the toggle
    w.controls.shown_box.value = 2
    assert w.metric == "ssim" and w.shown == 2 and w.job("check") is job
    n = len(ref.layers) + 1 + len(w.methods)
    assert [c.text for c in w.captions][n:] == [f"{v:.2f}" for v in ref.ssim[:, :, 2].reshape(-1)]
    np.testing.assert_allclose(w.controls.curves["gradcam"].y[1:],
                               ref.mean("ssim")[w.methods.index("gradcam")])
    assert w.controls.y_axis.label == "SSIM"


def test_mode_methods_and_images_ask_for_a_new_check(engine):
    w = view(engine)
    w.controls.mode_box.value = "independent"
    w.controls.method_buttons["gradcam"].value = False
    w.controls.method_buttons["etalon"].value = True
    w.controls.indices_box.value = "5, 7"
    assert w.wait(60) and w.error.value == ""
    assert w.methods == ("gradient", "deconvnet_masks", "deconvnet", "random_masks", "etalon")
    assert w.indices == [5, 7] and w.mode == "independent"
    ref = engine.sanity_check(engine.dataset.images[[5, 7]], methods=list(w.methods),
                              cascade=False)
    np.testing.assert_array_equal(w.result.rank, ref.rank)
    assert not w.result.cascade and w.controls.shown_box.options == (
        ("row 5 (label 5)", 0), ("row 7 (label 7)", 1))


def test_the_data_test_compares_with_the_other_model(engine):
    from conftest import small_lenet
    other = small_lenet(3)
    w = view(engine, other=other, mode="data", methods=["gradient", "deconvnet_masks"])
    ref = engine.sanity_check_data(engine.dataset.images[:4], other,
                                   methods=["gradient", "deconvnet_masks"])
    assert w.result.layers == ("other model",) and w._layout.cols == 2
    np.testing.assert_array_equal(w.result.ssim, ref.ssim)
    assert [c.text for c in w.captions][:2] == ["original", "other"]
    without = view(engine)
    assert "data" not in [v for _label, v in without.controls.mode_box.options]
    with pytest.raises(traitlets.TraitError, match="needs other=.*lenet_digits_shuffled"):
        without.mode = "data"


def test_a_click_enlarges_a_map_beside_the_original(engine):
    w = view(engine, methods=["gradient", "gradcam"])
    click(w, 1, 2)                                          # Grad-CAM, layers down to the 2nd
    assert w.selected == Cell(1, 2)
    ref = w.result
    text = w.controls.detail_text.value
    assert f"<b>Grad-CAM</b>, {ref.layers[0]} down to {ref.layers[1]} re-initialised" in text
    assert f"SSIM {ref.ssim[1, 1, 0]:.2f}" in text and f"rank {ref.rank[1, 1, 0]:.2f}" in text
    assert w.detail_rgba.shape[1::-1] == (w.controls.detail_canvas.width,
                                         w.controls.detail_canvas.height)
    w.controls.grid_canvas._handle_frontend_event(None, {"event": "mouse_down", "x": 3, "y": 40}, [])
    assert w.selected == Cell(1, 2)                         # the method names: no change
    sheets = w._sheets()
    assert set(sheets) == {w.controls.grid_canvas, w.controls.detail_canvas}
    assert sheets[w.controls.grid_canvas].rgba is w.grid_rgba


def test_maps_are_painted_as_they_arrive(engine, every_partial):
    w = view(engine)
    painted = painted_on(w, w.controls.grid_canvas, lambda: cells_done(w))
    w.indices = [4, 5]
    assert w.wait(60)
    total = len(w.methods) * (len(w.layers) + 1)
    assert painted[0] == 0 and painted[-1] == total and painted == sorted(painted)
    assert len([n for n in painted if 0 < n < total]) >= total - 2, painted


def test_stop_keeps_the_maps_done(engine, every_partial):
    w = view(engine)
    stop_after(w, "_show_rows")
    w.indices = [6, 7, 8]
    assert w.wait(60) and w.job("check").state == "stopped"
    total = len(w.methods) * (len(w.layers) + 1)
    assert 0 < len(w.rows) < total and cells_done(w) == len(w.rows) and w.result is None
    assert "stopped at" in w.status.value and w.stop_button.disabled
    done = len(w.rows)
    del w._show_rows
    w.controls.run_button.click()                            # Run again: the whole check
    assert w.wait(60) and len(w.rows) == total > done and w.result is not None


def test_a_check_of_images_no_longer_asked_for_is_not_shown(engine, late, every_partial):
    w = view(engine)
    shown = []
    real = w._show_rows
    w._show_rows = lambda rows: (shown.append(rows[0].maps.shape[0]), real(rows))
    release = late(engine, "sanity_check", lambda x, **kw: len(x) == 3)
    w.indices = [1, 2, 3]
    assert release.entered.wait(30)
    first = w.job("check")
    w.indices = [9]                                         # asked while the first is held
    release()
    assert w.wait(60) and first.state == "superseded"
    assert shown and set(shown) == {1}                      # nothing of the 3 images landed
    assert w.result.x.shape[0] == 1 and all(r.maps.shape[0] == 1 for r in w.rows)


def test_a_check_the_state_left_behind_is_dropped(engine, late):
    """No new check replaces it (no images asked for): the request decides."""
    w = view(engine)
    said = []
    w.status.observe(lambda change: said.append(change["new"]), names="value")
    release = late(engine, "sanity_check")
    w.indices = [1, 2]
    assert release.entered.wait(30)
    job = w.job("check")
    w.indices = []                                          # no images: nothing to check
    release()
    assert w.wait(60) and job.state == "stopped" and w.rows == () and w.result is None
    assert w.job("check") is job and w.grid_rgba is None and w.error.value == ""
    assert said[-1] == "sanity check: stopped: indices changed since it was asked", said


def test_closing_leaves_no_widget_models_and_stops_the_check(engine, late):
    start = widget_models()
    w = view(engine)
    assert widget_models() > start
    w.close()
    assert widget_models() == start
    w = SanityCheckView(engine, indices=[1])
    held = late(engine, "sanity_check")
    w.indices = [2]
    assert held.entered.wait(30)
    job = w.job("check")
    w.close()
    rows = w.rows
    held()
    assert job.wait(30) and job.state == "stopped" and w.rows is rows
    assert widget_models() == start


@pytest.mark.parametrize("trait,value,message", [
    ("indices", [0, 999], r"\[999\] out of range: the dataset has 40 images \(0\.\.39\)"),
    ("indices", [0, True], r"image rows \[True\] out of range"),
    ("indices", list(range(33)), "at most 32"),
    ("shown", 4, r"shown \(a position in indices\) must be in 0\.\.3; got 4"),
    ("shown", True, "shown must be a whole number; got True"),
    ("methods", ["gradient", "smoothgrad"], "methods must be one of .*got 'smoothgrad'"),
    ("methods", [], "pick at least one"),
    ("metric", "pearson", r"metric must be one of \['rank_abs', 'rank', 'ssim'\]"),
    ("layers", ["9", "nope"], "layers must be one of .* top first.*got 'nope'"),
    ("selected", Cell(9, 0), r"selected.row must be in 0\.\.4; got 9"),
])
def test_bad_trait_values_are_refused_and_the_old_value_kept(engine, trait, value, message):
    w = view(engine)
    before = getattr(w, trait)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(w, trait, value)
    assert getattr(w, trait) == before


def test_a_typo_and_the_last_method_switched_off_show_an_error(engine):
    w = view(engine, methods=["gradient"])
    w.controls.indices_box.value = "3-1"
    assert "must go up" in w.error.value and w.indices == [0, 1, 2, 3]
    w.controls.method_buttons["gradient"].value = False
    assert "pick at least one" in w.error.value and w.methods == ("gradient",)


def test_a_refused_argument_leaves_no_widget_models_behind(engine):
    start = widget_models()
    with pytest.raises(traitlets.TraitError, match="must be an Engine or a torch.nn.Module"):
        SanityCheckView(engine, other="shuffled")
    with pytest.raises(traitlets.TraitError):
        SanityCheckView(engine, layers=["nope"])
    assert widget_models() == start


def test_an_engine_without_a_dataset_says_so(engine):
    bare = Engine(engine.model, engine.input_shape)
    w = SanityCheckView(bare)
    assert w.wait(60) and w.job("check") is None and w.indices == []
    assert w.grid_rgba is None and w._shown[w.controls.grid_canvas].startswith("no dataset")


# -- a classifier of 1000 classes ------------------------------------------------------------
@pytest.fixture
def imagenet_like():
    """A deep thin CNN (20 layers with parameters) with 1000 logits and 40 images."""
    torch.manual_seed(0)
    convs = [m for _ in range(18) for m in (nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())]
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), *convs, nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 8 * 8, 1000))
    x = torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    return Engine(model, (3, 16, 16), dataset=(x, torch.arange(40) * 7), device="cpu")


def test_a_large_model_checks_one_image_and_the_top_16_layers(imagenet_like):
    e = imagenet_like
    w = view(e, methods=["gradient", "gradcam"])
    assert len(e.sanity_layers()) == 20 and w.indices == [0]
    assert w.layers == e.sanity_layers()[:16] and w.layers[0] == "40"      # the logits first
    assert w._layout.cols == 17 and len(w.rows) == 2 * 17
    assert w.result.original_classes.tolist() == [int(e.predict(e.dataset.images[:1]).argmax())]


def test_unlabelled_images_default_to_the_first_row(imagenet_like):
    """Photos without labels (-1, as zoo.vgg16's): the default images were none at all."""
    e = imagenet_like
    bare = Engine(e.model, e.input_shape, dataset=(e.dataset.images, torch.full((40,), -1)),
                  device="cpu")
    w = view(bare, methods=["gradient"], layers=["40"])
    assert w.indices == [0] and w.controls.shown_box.options == (("row 0", 0),)
    assert len(w.rows) == 2 and w.result.rank.shape == (1, 1, 1)


def test_class_names_are_escaped(engine):
    names = [f"<img src=x onerror=alert({i})>" for i in range(10)]
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), class_names=names, device="cpu")
    w = view(e, methods=["gradient"])
    click(w, 0, 1)
    text = w.controls.detail_text.value
    assert "<img" not in text and "&lt;img src=x onerror=alert(" in text
