"""InverseSetGallery state: picker (unit box, layer, class by name), range over the dataset
histogram (filling as its values come), Run (the seeds, then the samples as they come), click ->
enlarged sample with its etalon, intersections, Stop, an infeasible range reported, the
summary's naturalness numbers, what snapshot() holds."""
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
import traitlets as T
from torch import nn

from cnn_widgets import InverseSetGallery
from cnn_widgets.testing.generators import TinyGenerator
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets.inverse_set_gallery import CELL, COLS, GAP, HEADER, MAX_SHOWN


def span(c):
    return c.lo, c.hi


def unit_of(c):
    return c.layer, c.unit


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


@pytest.fixture
def gallery(engine):
    g = InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, K=5, n=60)
    assert g.wait(60)              # the unit's values and default range come from the worker
    return g


def test_picker_shows_the_units_histogram_and_a_range_inside_it(gallery, engine):
    values = engine.activations(engine.dataset.images, ["9"])["9"][:, 2]
    c = gallery.constraints[0]
    layer, unit, lo, hi = c.layer, c.unit, c.lo, c.hi
    assert (layer, unit) == ("9", (2,)) and gallery.controls.unit_box.value == "2"
    assert gallery.controls.data_bars.y.sum() == len(values)          # every dataset image counted
    assert gallery.controls.data_bars.visible                         # the placeholder is hidden
    assert (lo, hi) == pytest.approx(tuple(np.percentile(values, [70, 90])))
    assert gallery.controls.range_slider.value == pytest.approx((lo, hi))
    np.testing.assert_allclose(gallery.controls.range_lines.x, [[lo, lo], [hi, hi]])
    wider = ((gallery.controls.range_slider.min + lo) / 2, (hi + gallery.controls.range_slider.max) / 2)
    gallery.controls.range_slider.value = wider                       # dragging the slider sets the range
    assert span(gallery.constraints[0]) == pytest.approx(wider)
    gallery.controls.unit_box.value = "5"
    assert unit_of(gallery.constraints[0]) == ("9", (5,))
    gallery.controls.unit_box.value = "12"
    assert "0 &lt;= unit &lt; 10" in gallery.error.value and gallery.constraints[0].unit == (5,)
    gallery.controls.layer_box.value = "3"                            # a conv layer: channel 0, centred
    assert unit_of(gallery.constraints[0]) == ("3", (0, 5, 5)) and gallery.controls.unit_box.value == "0:5:5"
    assert gallery.wait(60) and gallery.constraints[0].lo is not None
    assert gallery.error.value == ""


def shown_sheet(g, canvas="gallery_canvas"):
    """What a canvas of the gallery shows (its Sheet, or None for a hint)."""
    return g._sheets().get(getattr(g.controls, canvas))


def test_run_shows_the_seeds_then_fills_the_gallery_with_samples_inside_the_range(gallery):
    seen = []
    original = gallery._show_live
    gallery._show_live = lambda batch: (original(batch), seen.append(
        (type(batch).__name__, len(gallery.images), shown_sheet(gallery))))
    gallery.run()
    assert gallery.wait(60)
    res = gallery.result
    lo, hi = span(gallery.constraints[0])
    assert res.n == 60 and ((res.activations >= lo) & (res.activations <= hi)).all()
    # the seeds as eq. 8 moves them (5 cells, framed), then each batch of samples
    kinds = [k for k, _, _ in seen]
    assert kinds[0] == "SeedBatch" and "SampleBatch" in kinds
    assert kinds == sorted(kinds, key=lambda k: k == "SampleBatch")      # seeds first
    seeds = seen[0][2]
    assert seeds.captions[0].text.startswith("seeds (eq. 8), step ") and len(seeds.captions) == 6
    arrivals = [m for k, m, _ in seen if k == "SampleBatch"]
    assert arrivals[0] >= 5 and arrivals == sorted(arrivals) and arrivals[-1] == 60
    assert len(gallery.shown) == min(60, MAX_SHOWN) and gallery.shown[-1] == 59
    sheet = shown_sheet(gallery)
    rows = -(-len(gallery.shown) // COLS)
    assert sheet.rgba.shape == (HEADER + rows * (CELL + GAP[0]), COLS * (CELL + GAP[1]), 4)
    assert sheet.captions[0].text == "60 samples inside the range(s), 50 shown (evenly spread)"
    assert sheet.captions[1].text == f"{res.activations[0, 0]:.2f}"
    assert gallery.controls.sample_bars.y.sum() == 60
    assert re.search(r"60 samples, all inside.*gradient steps: \d+ for the 5 seeds",
                     gallery.controls.summary.value)
    nat = res.naturalness           # the naturalness numbers, as the engine gives them
    assert f"median code norm {nat.code_norm:.2f} (the prior's {nat.prior_norm:.2f}" \
        in gallery.controls.summary.value
    assert f"{nat.in_range:.0%} inside on a fresh pass" in gallery.controls.summary.value
    assert "done" in gallery.status.value


def test_click_enlarges_a_sample_with_its_etalon(gallery):
    gallery.run()
    gallery.wait(60)
    top = HEADER + CELL + GAP[0]                                   # the second row
    event(gallery.controls.gallery_canvas, "mouse_down", 2 * (CELL + GAP[1]) + CELL / 2,
          top + CELL / 2)
    i = gallery.shown[COLS + 2]
    assert gallery.selected == i
    gallery.wait(30)
    value = float(re.search(r"f = (-?[0-9.]+)", gallery.controls.detail_text.value)[1])
    assert value == pytest.approx(gallery.result.activations[i, 0], abs=2e-3)
    detail = shown_sheet(gallery, "detail_canvas")
    assert [c.text for c in detail.captions] == [f"sample {i}", "etalon 9:2"]
    event(gallery.controls.gallery_canvas, "mouse_down", 5000, 5000)     # outside: no change
    event(gallery.controls.gallery_canvas, "mouse_down", 5, 5)           # the title: no change
    assert gallery.selected == i


def generated_range(engine, G, layer, unit):
    """The 20th-80th percentile of the unit on G's outputs: ranges the random net reaches."""
    with torch.no_grad():
        x = G(torch.randn(200, G.code_dim, generator=torch.Generator().manual_seed(2)))
    values = engine.activations(x, [layer])[layer][(slice(None), *unit)]
    return tuple(np.percentile(values, [20, 80]))


def test_added_unit_makes_an_intersection(gallery, engine):
    gallery.controls.range_slider.value = generated_range(engine, gallery.generator, "9", (2,))
    gallery.add_unit("3", (1, 4, 4), range=generated_range(engine, gallery.generator, "3",
                                                          (1, 4, 4)))
    assert len(gallery.constraints) == 2 and gallery.controls.layer_box.value == "3"
    c = gallery.controls
    assert c.unit_box.value == "1:4:4" and "intersection" in c.constraints_html.value
    gallery.controls.n_box.value = 30
    gallery.run()
    gallery.wait(60)
    acts = gallery.result.activations
    r = np.array([span(c) for c in gallery.constraints])
    assert acts.shape == (30, 2) and ((acts >= r[:, 0]) & (acts <= r[:, 1])).all()
    a, b = acts[gallery.shown[1]]
    assert shown_sheet(gallery).captions[2].text == f"{a:.2f}/{b:.2f}"
    gallery.remove_unit()
    assert len(gallery.constraints) == 1 and gallery.controls.layer_box.value == "9"


def test_stop_and_an_infeasible_range(gallery):
    gallery.controls.n_box.value = 100000
    gallery.run()
    job = gallery.job("run")
    while len(gallery.images) < 20 and job.state in ("pending", "running"):
        job.wait(0.05)
    gallery.stop()
    assert gallery.wait(30) and job.state == "stopped"
    assert gallery.result is None and "stopped" in gallery.status.value
    far = float(gallery.controls.data_bars.x.max()) + 1e4
    gallery.controls.range_slider.max = far + 10
    gallery.controls.range_slider.value = (far, far + 1)
    gallery.controls.n_box.value = 10
    gallery.run()
    gallery.wait(120)
    assert "InfeasibleRange" in gallery.status.value and "seeds reached" in gallery.status.value


def test_construction_and_the_picker_never_wait_for_the_engine(engine):
    """Issue 9 defect 7: the kernel thread never waits on the engine lock."""
    with held_elsewhere(engine) as still_held:
        g = InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, K=5, n=60)
        g.controls.unit_box.value = "4"
        assert still_held()
        assert g.constraints[0].lo is None and "[…]" in g.controls.constraints_html.value
    assert g.wait(60)
    values = engine.activations(engine.dataset.images, ["9"])["9"][:, 4]
    assert span(g.constraints[0]) == pytest.approx(tuple(np.percentile(values, [70, 90])))
    assert g.controls.data_bars.y.sum() == len(values)


def test_bad_trait_values_are_refused_and_the_old_value_kept(gallery):
    for name, bad, message in [("K", 0, "K must be in 1..1000"), ("n", 10 ** 6, "n must be in 1..100000"),
                               ("selected", 10 ** 6, "selected must be None (no samples yet)")]:
        old = getattr(gallery, name)
        with pytest.raises(T.TraitError, match=re.escape(message)):
            setattr(gallery, name, bad)
        assert getattr(gallery, name) == old
    assert gallery.controls.K_box.value == gallery.K
    with pytest.raises(T.TraitError):
        gallery.constraints = []


def test_markup_from_an_error_or_a_layer_name_is_shown_as_text():
    """Issue 9 defect 9: the gallery built its own, unescaped error span."""
    from cnn_widgets import Engine
    evil = "<img src=x onerror=alert(1)>"
    model = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("relu", nn.ReLU()),
                                       ("flat", nn.Flatten()), (evil, nn.Linear(2 * 6 * 6, 3))]))
    e = Engine(model, (1, 8, 8), device="cpu")
    g = InverseSetGallery(e, layer=evil, unit=1, range=(0.0, 1.0), K=2, n=4)
    assert "&lt;img src=x onerror=alert(1)&gt;" in g.controls.constraints_html.value
    g.controls.unit_box.value = evil
    assert "&lt;img" in g.error.value
    for box in (g.controls.constraints_html, g.error, g.controls.detail_text, g.controls.summary):
        assert "<img" not in box.value


@pytest.mark.parametrize("bad, message", [
    ((5, 1), r"range must be \(z1, z2\) with z1 < z2; got \(5, 1\)"),
    ((2, 2), r"range must be \(z1, z2\) with z1 < z2; got \(2, 2\)"),
    ((0, float("inf")), "range z2 must be a finite number; got inf"),
    (("a", 1), "range z1 must be a finite number; got 'a'"),
    ((0, 1, 2), r"range must be \(z1, z2\) with z1 < z2; got \(0, 1, 2\)"),
])
def test_a_bad_range_is_refused_with_the_packages_error(engine, bad, message):
    """Issue 16: ``range=(5, 1)`` escaped as a raw exception."""
    from cnn_widgets.widgets.validate import InvalidTrait
    with pytest.raises(InvalidTrait, match=message):
        InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, range=bad)


def test_bad_constraints_and_booleans_are_refused(gallery):
    from dataclasses import replace

    from cnn_widgets.widgets.validate import InvalidTrait
    before = gallery.constraints
    with pytest.raises(InvalidTrait, match=r"the range of 9 unit 2 must be \(z1, z2\) with z1 < z2"):
        gallery.constraints = [replace(before[0], lo=5.0, hi=1.0)]
    for name in ("K", "n"):
        with pytest.raises(InvalidTrait, match=f"{name} must be a whole number; got True"):
            setattr(gallery, name, True)
    assert gallery.constraints == before and (gallery.K, gallery.n) == (5, 60)


def test_a_run_whose_range_changes_stops_and_shows_no_later_samples(gallery):
    """Issue 16: a run went on filling the gallery with samples of the old range, drawn over
    the new range's histogram."""
    gallery.controls.n_box.value = 100000
    gallery.run()
    job = gallery.job("run")
    while len(gallery.images) < 10 and job.state in ("pending", "running"):
        job.wait(0.05)
    lo, hi = span(gallery.constraints[0])
    with gallery.runner.lock:                 # no live batch is half-way through meanwhile
        gallery.controls.range_slider.value = (lo, (lo + hi) / 2)
        shown = gallery.samples
    assert job.wait(30) and job.state == "stopped"
    assert gallery.samples is shown and gallery.result is None
    assert gallery.status.value == "inverse set: stopped: units and ranges changed since it was asked"


def test_a_run_asked_before_the_default_range_arrived_is_shown(engine):
    """Filling in the default range (the same one the run computes) is no change."""
    with held_elsewhere(engine):
        g = InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, K=5, n=20)
        g.run()
        assert g.constraints[0].lo is None
    assert g.wait(60) and g.constraints[0].lo is not None
    assert g.job("run").state == "done" and g.result is not None and len(g.images) == 20
    assert g.status.value.startswith("inverse set: done")


def test_top_k_in_the_unit_box_says_what_a_constraint_takes(gallery):
    """Issue 17: "top 5" gave "'TopK' object is not subscriptable"."""
    before = gallery.constraints
    gallery.controls.unit_box.value = "top 5"
    assert "a constraint is one unit with its range, not each input" in gallery.error.value
    assert "Add unit" in gallery.error.value
    assert "subscriptable" not in gallery.error.value and gallery.constraints == before
    gallery.controls.unit_box.value = "3, 5"
    assert "one unit per constraint, got 2" in gallery.error.value
    gallery.controls.unit_box.value = "4"
    assert gallery.constraints[0].unit == (4,) and gallery.error.value == ""


def test_a_class_is_picked_by_name(gallery, engine):
    options = gallery.controls.class_box.options
    assert len(options) == engine.n_classes and options[7] == f"7: {engine.class_names[7]}"
    gallery.controls.layer_box.value = "3"                          # a hidden layer
    gallery.controls.class_box.value = options[7]
    assert unit_of(gallery.constraints[0]) == (engine.default_layer, (7,))
    assert gallery.controls.layer_box.value == engine.default_layer
    assert gallery.controls.unit_box.value == "7" and gallery.controls.class_box.value == ""
    assert gallery.wait(60)                          # its values, then its default range
    values = engine.activations(engine.dataset.images, ["9"])["9"][:, 7]
    assert span(gallery.constraints[0]) == pytest.approx(tuple(np.percentile(values, [70, 90])))
    gallery.controls.class_box.value = "7: no such"
    assert "no class" in gallery.error.value and gallery.constraints[0].unit == (7,)


def test_the_seeds_show_at_their_start_before_the_dataset_is_scanned(engine):
    """Run before the unit's dataset values (its default range) are known: the engine's
    first picture is the K seeds at their start, before its pass over the dataset."""
    seen = []
    with held_elsewhere(engine):
        g = InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, K=5, n=20)
        original = g._show_live
        g._show_live = lambda batch: (original(batch), seen.append(shown_sheet(g)))
        g.run()
        assert shown_sheet(g) is None                       # the hint, at once
        assert g._shown[g.controls.gallery_canvas].startswith("sampling: the 5 seeds first")
    assert g.wait(60) and g.result is not None
    first = seen[0]
    assert first.captions[0].text.startswith("the 5 seeds at their start (eq. 8); finding the "
                                             "default range")
    assert len(first.captions) == 6 and g.constraints[0].lo is not None


def test_snapshot_holds_the_gallery_and_the_detail_with_their_captions(gallery):
    gallery.run()
    gallery.wait(60)
    gallery.selected = gallery.shown[3]
    gallery.wait(30)
    sheets = gallery._sheets()
    assert set(sheets) == {gallery.controls.gallery_canvas, gallery.controls.detail_canvas}
    pic = gallery.snapshot()
    gal, det = sheets[gallery.controls.gallery_canvas].rgba, sheets[gallery.controls.detail_canvas].rgba
    assert pic.shape[0] >= max(gal.shape[0], det.shape[0])
    assert pic.shape[1] >= gal.shape[1] + det.shape[1]
    title = pic[:HEADER, :gal.shape[1], :3]                   # the title's text is written in
    assert (title < 128).any()


def test_after_a_stop_during_the_dataset_values_run_asks_for_them_again(engine):
    with held_elsewhere(engine):
        g = InverseSetGallery(engine, TinyGenerator(), layer="9", unit=2, range=(0.0, 1.0),
                              K=2, n=4)
        g.stop()                                         # the values job, waiting for the model
    assert g.wait(60) and g.job("values").state == "stopped"
    assert not g.controls.data_bars.visible
    g.run()
    assert g.wait(60) and g.controls.data_bars.visible
    assert g.controls.data_bars.y.sum() == len(engine.dataset)
