"""EtalonGrid state: simulated clicks and strokes, asserted on state and RGBA buffers (its
pictures themselves: test_etalon_grid_paint.py; its layout: test_etalon_grid_geometry.py)."""
import re

import numpy as np
import pytest
import traitlets
from conftest import painted_on, stop_after

from cnn_widgets import EtalonGrid
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets.etalon_grid import GAP, HEADER, Selection
from cnn_widgets.widgets.etalon_grid.paint import PENDING
from cnn_widgets.widgets.units import TopK


def rows_done(g, rgba=None):
    """How many rows of the grid picture show etalons (the others: their input, grey cells)."""
    layout = g._layouts["grid"]
    rgba = g.grid_rgba if rgba is None else rgba
    return sum(not (rgba[top:top + 4, left:left + 4] == PENDING).all()
               for top, left in (layout.corner(r, 1) for r in range(layout.rows)))


def grid(engine, **kw):
    """A grid with its first pictures computed (the constructor only queues them)."""
    g = EtalonGrid(engine, **kw)
    assert g.wait(30)
    return g


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def cell_centre(grid, row, col):
    h, w = grid.cell
    return col * (w + GAP[1]) + w / 2, HEADER + row * (h + GAP[0]) + h / 2


def test_default_grid_is_one_row_per_class_with_all_logits(engine):
    g = grid(engine)
    labels = engine.dataset.labels[g.indices].tolist()
    assert labels == list(range(10))
    res = g.grid_result
    assert res.W.shape == (10, 10, 1, 28, 28) and res.layer == engine.default_layer
    np.testing.assert_allclose(res.out, engine.predict(engine.dataset.images[g.indices]), atol=1e-5)
    h, w = g.cell
    assert g.grid_rgba.shape == (HEADER + 10 * (h + GAP[0]), 11 * (w + GAP[1]), 4)
    assert (g.controls.grid_canvas.width, g.controls.grid_canvas.height) == g.grid_rgba.shape[1::-1]
    scores = [c.text for c in g.captions if re.fullmatch(r"-?\d+\.\d\d", c.text)]
    assert scores == [f"{v:.2f}" for v in res.out.reshape(-1)]


def test_click_shows_the_exact_decomposition(engine):
    g = grid(engine)
    event(g.controls.grid_canvas, "mouse_down", *cell_centre(g, 4, 3))       # column 3 = unit 2
    assert g.selected == Selection("grid", 4, 2)
    nums = [float(v) for v in re.findall(r"-?\d+\.\d{4}", g.controls.detail_text.value)]
    linear, b, total, network = nums
    assert abs(linear + b - total) < 2e-4 and abs(total - network) < 2e-4
    assert abs(network - g.grid_result.out[4, 2]) < 1e-4
    assert g.detail_rgba.shape[:2] == (g.controls.detail_canvas.height, g.controls.detail_canvas.width)
    event(g.controls.grid_canvas, "mouse_down", *cell_centre(g, 4, 0))       # the input column: no change
    assert g.selected == Selection("grid", 4, 2)


def test_a_stroke_on_the_pad_updates_the_pad_row(engine):
    g = grid(engine)
    before = g.pad_row_rgba.copy()
    event(g.controls.drawing_pad.canvas, "mouse_down", 90, 40)
    for y in range(40, 190, 10):
        event(g.controls.drawing_pad.canvas, "mouse_move", 90, y)
    event(g.controls.drawing_pad.canvas, "mouse_up", 90, 190)
    event(g.controls.drawing_pad.canvas, "mouse_move", 200, 200)                      # pen up: no ink
    assert g.wait(60)
    assert g.pad[0, :, 20:].sum() == 0 and g.pad.max() > 0.9
    ink_cols = np.nonzero(g.pad[0].sum(0))[0]
    assert 9 <= ink_cols.min() and ink_cols.max() <= 13              # a vertical stroke near x = 11
    np.testing.assert_array_equal(g.pad_result.x[0], g.pad)
    np.testing.assert_allclose(g.pad_result.out[0], engine.predict(g.pad)[0], atol=1e-5)
    assert not np.array_equal(before, g.pad_row_rgba)
    g.clear_pad()
    assert g.wait(60) and g.pad.sum() == 0 and g.pad_result.x.sum() == 0


def test_changing_layer_and_units_recomputes(engine):
    g = grid(engine)
    g.controls.layer_box.value = "3"                                          # the second conv
    assert g.wait(60)
    assert g.grid_result.layer == "3" and g.units[0] == (0, 5, 5) and len(g.units) == 8
    g.controls.units_box.value = "2:1:1, 7:9:9"          # what Enter in the box sends
    g.controls.indices_box.value = "0, 1, 2"
    assert g.wait(60)
    assert g.grid_result.units == ((2, 1, 1), (7, 9, 9)) and g.grid_result.W.shape[:2] == (3, 2)


@pytest.mark.parametrize("box,text,message", [("units_box", "9:0:0", "out of range"),
                                              ("indices_box", "0, 999", "999"),
                                              ("units_box", "x", "not a unit"),
                                              ("indices_box", "3-1", "must go up")])
def test_bad_text_shows_an_error_and_keeps_the_picture(engine, box, text, message):
    g = grid(engine, layer="3")
    before = g.grid_result
    getattr(g.controls, box).value = text
    g.wait(60)
    assert message in g.error.value and g.grid_result is before


def test_count_regions_job_reports_the_engine_count(engine):
    g = grid(engine)
    g.controls.regions_button.click()
    assert g.wait(30)
    expected = engine.count_regions()
    assert g.region_count == expected and f"visit {expected.total} distinct" in g.controls.report.value
    assert g.progress.value == 1.0 and "done" in g.status.value and g.stop_button.disabled


def test_paper_check_agrees_and_stop_stops_it(engine):
    g = grid(engine, indices=[0, 1])
    g.check_with_paper()
    assert g.wait(60)
    fast, paper = g.paper_check.fast, g.paper_check.paper
    assert np.abs(fast.W - paper.W).max() <= 1e-5 * np.abs(paper.W).max()
    assert "relative difference" in g.controls.report.value

    g.indices = list(range(10))
    g.wait(60)
    g.paper_check = None
    g.check_with_paper()
    job = g.job("paper")
    while g.progress.value == 0 and job.state in ("pending", "running"):
        pass
    assert not g.stop_button.disabled
    g.stop_button.click()
    assert g.wait(60)
    assert job.state == "stopped" and "stopped at" in g.status.value and g.paper_check is None
    assert 0 < g.progress.value < 1 and g.stop_button.disabled


def test_errors_in_jobs_are_shown_in_the_widget(engine, monkeypatch):
    g = grid(engine)

    def broken(*a, **k):
        raise RuntimeError("injected engine failure")
    monkeypatch.setattr(engine, "etalons", broken)
    g.indices = [1, 2]
    assert g.wait(60)
    assert "injected engine failure" in g.error.value and "Traceback" in g.error.value
    assert g.progress.bar_style == "danger"


def test_newest_request_wins(engine):
    g = grid(engine)
    for first in range(5):
        g.indices = [first, first + 1]
    assert g.wait(60)
    assert g.grid_result.W.shape[0] == 2
    np.testing.assert_array_equal(g.grid_result.x, engine.dataset.images[[4, 5]].numpy())


def test_engine_without_dataset_still_has_a_pad(engine):
    from cnn_widgets import Engine
    bare = Engine(engine.model, engine.input_shape)
    g = grid(bare)
    assert g.grid_result is None and g.pad_result is not None


def test_a_new_front_end_gets_every_canvas_redrawn(engine, monkeypatch):
    g = grid(engine)
    g.selected = Selection("grid", 1, 1)                       # so the detail canvas has a picture too
    manager = g.controls.grid_canvas._canvas_manager
    sent = []
    monkeypatch.setattr(manager, "_send_custom", lambda command, buffers=None: sent.append(command))
    c = g.controls
    for canvas in (c.grid_canvas, c.pad_row_canvas, c.drawing_pad.canvas, c.detail_canvas):
        layer = canvas[0]                              # what is drawn on (a pictures.Surface)
        manager._current_canvas = layer                # what the manager believes after drawing
        sent.clear()
        canvas._handle_frontend_event(None, {"event": "client_ready"}, [])
        # a new front end has no current canvas: the redraw must switch to it first, then draw
        commands = sent[0] if sent and isinstance(sent[0][0], list) else sent
        assert commands and commands[0][1][0] == f"IPY_MODEL_{layer.model_id}", commands[:1]
        assert len(commands) > 1


def test_two_grids_on_one_engine_do_not_supersede_each_other(engine):
    a, b = grid(engine), grid(engine)
    a.indices = [1, 2]
    b.indices = [3]
    assert a.wait(60) and b.wait(60)
    assert a.grid_result.W.shape[0] == 2 and b.grid_result.W.shape[0] == 1
    assert a.runner is b.runner                                   # one worker per engine


def test_construction_never_waits_on_the_model_lock(engine):
    with held_elsewhere(engine) as still_held:
        g = EtalonGrid(engine)
        assert still_held() and g.grid_result is None
        assert rows_done(g) == 0 and g.grid_rgba.shape[0] > 10 * g.cell[0]   # the inputs at once
        g.indices = [1, 2]                       # observers only queue work too
        g.controls.layer_box.value = "3"
        assert still_held()
    assert g.wait(30) and g.grid_result.W.shape[:2] == (2, 8)


@pytest.mark.parametrize("trait,value,message", [
    ("indices", [0, 999], r"\[999\] out of range: the dataset has 40 images \(0\.\.39\)"),
    ("indices", [0] * 5000, "at most 100"),
    ("layer", "<b>nope</b>", "unknown layer .* layers in forward order: 0, 1, 2"),
    ("units", [3, 10], r"unit 10 out of range .* expected 0 <= unit < 10"),
    ("selected", Selection("grid", 10, 0), r"0 <= row < 10, 0 <= unit < 10"),
])
def test_bad_trait_values_are_refused_and_the_old_value_kept(engine, trait, value, message):
    g = grid(engine)
    before = getattr(g, trait)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(g, trait, value)
    assert getattr(g, trait) == before


@pytest.mark.parametrize("box,text", [("indices_box", "0-5000000"), ("units_box", "0-5000000"),
                                      ("indices_box", ", ".join(["1-3"] * 100000))])
def test_huge_ranges_are_refused_before_they_are_expanded(engine, box, text):
    import tracemalloc
    g = grid(engine)
    tracemalloc.start()
    getattr(g.controls, box).value = text
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, peak          # 5 million expanded indices would take ~200 MB
    assert "out of range" in g.error.value or "at most 100" in g.error.value
    assert len(g.error.value) < 2500 and g.grid_result.W.shape[:2] == (10, 10)


def test_class_names_and_errors_are_escaped(engine):
    from cnn_widgets import Engine
    names = [f"<img src=x onerror=alert({i})>" for i in range(10)]
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), class_names=names, device="cpu")
    g = grid(e)
    g.count_regions()
    event(g.controls.grid_canvas, "mouse_down", *cell_centre(g, 1, 2))
    assert g.wait(30)
    for text in (g.controls.report.value, g.controls.detail_text.value):
        assert "<img" not in text and "&lt;img src=x onerror=alert(" in text
    g.controls.units_box.value = "<script>1</script>"
    assert "<script>" not in g.error.value and "&lt;script&gt;" in g.error.value


@pytest.mark.parametrize("trait,value,message", [
    ("indices", [0, True], r"input rows \[True\] out of range"),
    ("units", [3, True], "units must be a whole number; got True"),
    ("selected", Selection("grid", True, 0), "selected.row must be a whole number; got True"),
])
def test_booleans_are_not_rows_or_units(engine, trait, value, message):
    """Issue 16: booleans were taken as integers (True as row 1, unit 1)."""
    from cnn_widgets.widgets.validate import InvalidTrait
    g = grid(engine)
    before = getattr(g, trait)
    with pytest.raises(InvalidTrait, match=message):
        setattr(g, trait, value)
    assert getattr(g, trait) == before


def test_a_paper_check_of_rows_no_longer_shown_is_not_reported(engine, late):
    """Issue 16: the paper's check of the old rows was reported under the new grid."""
    g = grid(engine, indices=[0, 1])
    said = []
    g.status.observe(lambda change: said.append(change["new"]), names="value")
    release = late(engine, "etalons", lambda *a, **kw: kw.get("method") == "paper")
    g.controls.paper_button.click()
    g.indices = [2, 3]
    release()
    assert g.wait(60) and g.paper_check is None and g.controls.report.value == ""
    assert g.job("paper").state in ("done", "stopped") and g.grid_result.x.shape[0] == 2
    assert [s for s in said if s.startswith("paper's algorithm: ") and s.endswith(
        ": indices changed since it was asked")], said


def test_the_enlarged_pad_etalon_follows_the_drawing(engine):
    """Issue 16: a pad cell's decomposition stayed the one of the drawing it was clicked on."""
    g = grid(engine)
    event(g.controls.pad_row_canvas, "mouse_down", *cell_centre(g, 0, 3))    # the pad row: unit 2
    assert g.selected == Selection("pad", 0, 2)
    before = g.detail_rgba.copy()
    event(g.controls.drawing_pad.canvas, "mouse_down", 90, 40)
    for y in range(40, 190, 10):
        event(g.controls.drawing_pad.canvas, "mouse_move", 90, y)
    assert g.wait(60) and g.pad_result.x[0].max() > 0.9
    assert f"the network gives {g.pad_result.out[0, 2]:.4f}" in g.controls.detail_text.value
    assert not np.array_equal(before, g.detail_rgba)


def test_rows_appear_as_their_etalons_are_done(engine):
    """Issue 17: a row is painted when its etalons are done, not when the whole grid is."""
    from cnn_widgets import Engine
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), batch_size=2, device="cpu")
    g = grid(e)
    painted = painted_on(g, g.controls.grid_canvas, lambda: rows_done(g))
    g.indices = [0, 1, 2, 3, 4]
    assert g.wait(30)
    assert painted[0] == 0 and painted[-1] == 5 and painted == sorted(painted)
    assert any(0 < n < 5 for n in painted), painted              # rows before the last ones


def test_stop_keeps_the_rows_done(engine):
    from cnn_widgets import Engine
    e = Engine(engine.model, engine.input_shape, dataset=(engine.dataset.images,
               engine.dataset.labels), batch_size=1, device="cpu")
    g = grid(e)
    stop_after(g, "_show_grid")
    g.indices = list(range(10, 20))
    assert g.wait(30) and g.job("grid").state == "stopped"
    assert 0 < len(g.grid_result.x) < 10 and rows_done(g) == len(g.grid_result.x)
    assert "stopped at" in g.status.value


def test_sheets_are_what_the_canvases_show(engine):
    g = grid(engine)
    g.selected = Selection("grid", 2, 3)
    c, sheets = g.controls, g._sheets()
    assert set(sheets) == {c.grid_canvas, c.pad_row_canvas, c.detail_canvas}
    for canvas, rgba in ((c.grid_canvas, g.grid_rgba), (c.pad_row_canvas, g.pad_row_rgba),
                         (c.detail_canvas, g.detail_rgba)):
        assert sheets[canvas].rgba is rgba and (canvas.width, canvas.height) == rgba.shape[1::-1]
    assert sheets[c.grid_canvas].captions == tuple(g.captions)


def test_typing_top_k_shows_each_rows_own_highest_classes(engine):
    g = grid(engine)
    g.controls.units_box.value = "top 3"
    assert g.wait(60) and g.units == TopK(3) and g.error.value == ""
    res = g.grid_result
    order = np.argsort(-engine.predict(engine.dataset.images[g.indices]), axis=1)[:, :3]
    assert [[u[0] for u in res.units_of(i)] for i in range(10)] == order.tolist()
    assert [c.text for c in g.captions[:4]] == ["input", "top 1", "top 2", "top 3"]
    g.units = [1, 2]
    assert g.controls.units_box.value == "1, 2"


# -- a classifier of 1000 classes (the imagenet_like fixture of conftest.py) ----------------
def test_a_large_classifier_shows_a_few_rows_each_with_its_top_5(imagenet_like):
    e = imagenet_like
    g = grid(e)
    assert g.indices == [0, 1, 2, 3] and g.units == TopK(5)
    assert g.controls.units_box.value == "top 5"
    res = g.grid_result
    assert res.W.shape == (4, 5, 3, 28, 28)
    order = np.argsort(-e.predict(e.dataset.images[:4]), axis=1)[:, :5]
    assert [[u[0] for u in res.units_of(i)] for i in range(4)] == order.tolist()
    texts = [c.text for c in g.captions]
    assert texts[:6] == ["input"] + [f"top {j}" for j in range(1, 6)]
    assert f"class {order[2, 0]}" in texts and f"{res.out[2, 0]:.2f}" in texts
    assert g.pad_result.W.shape[:2] == (1, 5) and "pad: predicted class " in \
        g.controls.pad_readout.value
    event(g.controls.grid_canvas, "mouse_down", *cell_centre_of(g, 3, 2))   # row 3, top 2
    assert g.selected == Selection("grid", 3, 1)
    assert f"<b>unit class {order[3, 1]}</b>, row 3" in g.controls.detail_text.value


def cell_centre_of(g, row, col):
    top, left = g._layouts["grid"].corner(row, col)
    return left + g.cell[1] / 2, top + g.cell[0] / 2


def test_classes_are_picked_by_name(imagenet_like):
    g = grid(imagenet_like)
    box = g.controls.class_box
    assert len(box.options) == 1000 and box.ensure_option and not box.disabled
    tabby = [o for o in box.options if "tabby" in o]                 # what typing "tabby" offers
    assert tabby == ["517: tabby cat"]
    box.value = tabby[0]
    assert g.wait(60) and g.units == [(517,)] and box.value == ""
    assert g.grid_result.units == ((517,),) and g.captions[1].text == "tabby cat"
    box.value = "3: class 3"
    assert g.wait(60) and g.units == [(517,), (3,)]
    box.value = "tabby"                                          # not an option: nothing changes
    assert "no class &#x27;tabby&#x27;" in g.error.value and g.units == [(517,), (3,)]
    g.layer = "0"
    assert box.disabled                                          # classes name the logits only


def test_the_digits_keep_every_logit(engine):
    g = EtalonGrid(engine)
    assert g.units == [(i,) for i in range(10)] and len(g.indices) == 10


def test_checking_with_the_paper_without_rows_says_so(engine):
    """Found while converting: with no dataset the button's handler raised AttributeError,
    which a click loses (nothing was shown)."""
    from cnn_widgets import Engine
    g = grid(Engine(engine.model, engine.input_shape, device="cpu"))
    g.check_with_paper()
    assert "no input rows to check" in g.error.value


def test_unlabelled_images_default_to_the_first_rows(imagenet_like):
    """zoo.vgg16's photos have no labels (-1): the default rows were none at all, so the grid
    showed nothing; now the first images, each captioned by its row (not "label" of the
    last class, which labels[-1] would name)."""
    import torch

    from cnn_widgets import Engine
    e = imagenet_like
    bare = Engine(e.model, e.input_shape, dataset=(e.dataset.images, torch.full((40,), -1)),
                  class_names=e.class_names, device="cpu")
    g = grid(bare)
    assert g.indices == [0, 1, 2, 3] and g.grid_result.W.shape[:2] == (4, 5)
    texts = [c.text for c in g.captions]
    assert ["row 0", "row 1", "row 2", "row 3"] == [t for t in texts if t.startswith("row ")]
    assert not any(t.startswith("label") for t in texts)


def test_the_blank_pads_row_waits_for_the_grids_rows(engine, late):
    """Issue 17: at construction the blank pad's etalons ran on the interactive lane and took
    the model between the grid's passes (a ResNet-50's first row came top-k backward passes
    later); they wait behind the grid's rows now. A stroke still goes first."""
    held = late(engine, "etalons", when=lambda x, *a, **kw: np.ndim(x) == 4)   # the grid's
    g = EtalonGrid(engine)
    assert held.entered.wait(30)
    pad = g.job("pad")
    assert pad.lane == "long" and pad.state == "pending" and g.pad_result is None
    held()
    assert g.wait(30) and pad.state == "done" and g.pad_result is not None


def test_stop_says_the_grid_stopped_not_its_pad(engine, late):
    """Stop also stops the pad's row queued behind the grid; a quiet job's stop leaves the
    status line to the grid's."""
    held = late(engine, "etalons", when=lambda x, *a, **kw: np.ndim(x) == 4)
    g = EtalonGrid(engine)
    assert held.entered.wait(30)
    g.stop()
    held()
    assert g.wait(30) and g.job("pad").state == "stopped" and g.job("grid").state == "stopped"
    assert g.status.value.startswith("etalons: stopped at")


def test_close_stops_the_grid_at_its_next_check(engine, late):
    """close() while the grid computes: its job stops at the next check and the engine is
    free for the next widget (issue 17: with whole-grid passes that took minutes)."""
    held = late(engine, "etalons", when=lambda x, *a, **kw: np.ndim(x) == 4)
    g = EtalonGrid(engine)
    assert held.entered.wait(30)
    job = g.job("grid")
    g.close()
    held()
    assert job.wait(30) and job.state == "stopped"
    with engine.borrow():                                # nobody holds the model any more
        pass
