"""MaximizerPanel state: the builder, the switches, Run/Stop, the scan, Grad-CAM, fooling
(its pictures themselves: test_maximizer_panel_paint.py; its layout math:
test_maximizer_panel_geometry.py)."""
import time

import numpy as np
import pytest
import traitlets as T

from cnn_widgets import MaximizerPanel
from cnn_widgets import objectives as O
from cnn_widgets.engine import InvalidArgument
from cnn_widgets.engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets import draw
from cnn_widgets.widgets.draw import shown
from cnn_widgets.widgets.maximizer_panel import CAPTION, GAP, LINKS, TOP_COLUMNS
from cnn_widgets.widgets.maximizer_panel.geometry import PICTURE_PX, SMALL_PX, scale


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_start_is_drawn_with_its_probabilities(engine):
    w = MaximizerPanel(engine, start="dataset", n_starts=2)
    assert w.wait(60)                       # the start is computed on the worker
    x = engine.dataset.images[:2].numpy()
    k = scale((28, 28), PICTURE_PX)[0]
    assert w.image_rgba.shape == (28 * k + CAPTION, 2 * (28 * k + GAP), 4)
    assert (w.controls.image_canvas.width, w.controls.image_canvas.height) == w.image_rgba.shape[1::-1]
    np.testing.assert_array_equal(w.image_rgba[:28 * k, :28 * k], draw.upscale(draw.image(x[0]), k))
    np.testing.assert_allclose(w.controls.bars.y, softmax(engine.predict(x))[0], rtol=1e-5)


def test_run_shows_what_the_script_api_computes(engine):
    w = MaximizerPanel(engine, objective=O.channel("3", 2), steps=25, lr=0.05)
    w.tv, w.tv_weight, w.gradient_trick = True, 0.1, True
    w.run()
    assert w.wait(60)
    step = w.last_step
    assert step.final and step.step == 25 and w.job("run").state == "done"
    want = engine.maximize(O.channel("3", 2), steps=25, lr=0.05, start="noise", n_starts=1,
                           regularizers=[TotalVariation(0.1), GradientTrick()])
    np.testing.assert_allclose(step.images, want.images, rtol=1e-5, atol=1e-6)
    c = w.controls
    assert len(c.curve.x) == 26 and c.curve.y[-1] == pytest.approx(float(want.values[0]), rel=1e-5)
    np.testing.assert_allclose(w.controls.bars.y, softmax(want.logits)[0], rtol=1e-4)
    k = scale((28, 28), PICTURE_PX)[0]
    np.testing.assert_array_equal(w.image_rgba[:28 * k, :28 * k],
                                  draw.upscale(shown(want.images[0]), k))


def test_switches_make_the_regularisers(engine):
    w = MaximizerPanel(engine)
    assert [r.enabled for r in w.regularizers()] == [False] * 4
    c = w.controls
    c.alpha_on.value, c.alpha_exp_slider.value, w.jitter = True, 4.0, True   # controls or traits
    assert w.alpha and w.alpha_exp == 4.0 and w.controls.jitter_on.value
    regs = w.regularizers()
    assert regs[0] == AlphaNorm(w.alpha_weight, 4.0, True)
    assert isinstance(regs[3], Jitter) and regs[3].enabled and not regs[1].enabled


def test_builder_sets_adds_and_refuses_bad_terms(engine):
    w = MaximizerPanel(engine)
    assert w.objective.description == "logit[0]"
    w.controls.kind_box.value, w.controls.layer_box.value, w.controls.index_box.value = "unit", "3", "1:2:3"
    w.controls.weight_box.value = 0.5
    w.controls.add_button.click()
    assert w.objective.description == "logit[0] + 0.5·unit(3, 1:2:3)"
    assert "unit(3, 1:2:3)" in w.controls.objective_label.value
    w.controls.kind_box.value, w.controls.index_box.value = "channel", "99"
    w.controls.set_button.click()
    assert "0 &lt;= channel &lt; 8" in w.error.value
    assert w.objective.description == "logit[0] + 0.5·unit(3, 1:2:3)"
    assert w.controls.class_box.layout.display == "none" and w.controls.index_box.layout.display == ""
    w.controls.kind_box.value, w.controls.weight_box.value = "probability", 1.0
    w.controls.class_box.value = "4: 4"
    assert w.controls.index_box.layout.display == "none" and w.controls.layer_box.layout.display == "none"
    w.controls.set_button.click()
    assert w.objective.description == "probability[4]"


def test_stop_stops_a_long_run(engine):
    w = MaximizerPanel(engine, steps=100000)
    w.run()
    deadline = time.monotonic() + 30
    while (w.progress.value == 0 or w.last_step is None) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not w.stop_button.disabled
    w.stop()
    assert w.wait(30)
    assert w.job("run").state == "stopped" and "stopped" in w.status.value
    assert w.last_step is not None and not w.last_step.final and w.stop_button.disabled


def test_scan_shows_the_top_images_and_the_histogram(engine):
    w = MaximizerPanel(engine, objective=O.unit("6", 7), top_k=5)
    w.scan()
    assert w.wait(60)
    want = engine.top_images(("6", 7), k=5)
    np.testing.assert_array_equal(w.top.indices, want.indices)
    hist = engine.activation_histogram(("6", 7), bins=40)
    np.testing.assert_array_equal(w.controls.hist_bars.y, hist.counts)
    assert w.top_rgba.shape[1] == min(5, TOP_COLUMNS) * (28 * scale((28, 28), SMALL_PX)[0] + GAP)


def test_gradcam_overlay_reddens_the_image(engine):
    w = MaximizerPanel(engine, start="dataset")
    assert w.wait(60)
    plain = w.image_rgba.copy()
    w.controls.cam_on.value = True
    assert w.wait(60) and w.cam is not None
    heat = w.cam.normalized()[0, 0]
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    k = scale((28, 28), PICTURE_PX)[0]
    assert w.image_rgba[y * k, x * k, 0] > w.image_rgba[y * k, x * k, 2]
    assert not np.array_equal(plain, w.image_rgba)
    w.controls.cam_on.value = False
    np.testing.assert_array_equal(plain, w.image_rgba)


def test_fooling_mode_shows_start_end_difference_and_cams(engine):
    w = MaximizerPanel(engine, steps=20, lr=0.2)
    w.mode = "fool"
    assert w.controls.lr_box.value == 0.01                       # fooling keeps its own small step
    w.controls.lr_box.value = 0.05
    assert w.controls.run_button.description == "Fool" and w.controls.fool_row.layout.display == ""
    w.fool_target, w.controls.fool_rows_box.value = 3, "0-2"
    w.run()
    assert w.wait(60), w.status.value
    f = w.fooling
    assert f.classes[1] == 3 and f.start.shape[0] == 3
    h = 28 * scale((28, 28), SMALL_PX)[0]
    assert w.fool_rgba.shape == (CAPTION + 3 * (h + CAPTION), 7 * (h + GAP), 4)
    np.testing.assert_allclose(w.controls.curve.y[:, -1], f.probabilities[-1, :, 3], rtol=1e-6)
    assert w.controls.curve_fig.title.endswith("while fooling")
    w.mode = "maximize"
    assert w.controls.lr_box.value == 0.2 and w.controls.run_button.description == "Run"
    w.run()
    assert w.wait(60) and w.controls.curve_fig.title == "objective" and len(w.controls.curve.x) == 21


def test_without_a_dataset_only_noise_starts_are_offered():
    from cnn_widgets import Engine
    from cnn_widgets.testing import TINY_SHAPE, tiny_lenet
    e = Engine(tiny_lenet(0), TINY_SHAPE, device="cpu")
    w = MaximizerPanel(e, steps=5, start="dataset", top_k=20)
    assert w.controls.start_box.options == ("noise",) and w.controls.scan_button.disabled
    assert [v for _, v in w.controls.mode_buttons.options] == ["maximize"]
    w.run()
    assert w.wait(30) and w.last_step.final
    assert w.image_rgba.shape[0] == 8 * scale((8, 8), PICTURE_PX)[0] + CAPTION


def test_scan_shows_at_most_the_whole_dataset(engine):
    w = MaximizerPanel(engine, top_k=100)
    w.scan()
    assert w.wait(60) and len(w.top.indices) == len(engine.dataset) == 40


def test_construction_and_observers_never_wait_for_the_engine(engine):
    """Issue 9 defect 7: the kernel thread never waits on the engine lock."""
    with held_elsewhere(engine) as still_held:
        w = MaximizerPanel(engine, start="dataset")
        w.start_image, w.n_starts = 3, 2                     # a new start: asked on the worker
        w.controls.cam_on.value = True
        assert still_held()                                  # none of it waited for the model
        assert w.picture is None                              # a placeholder meanwhile
    assert w.wait(60)
    np.testing.assert_array_equal(w.picture.images, engine.dataset.images[3:5].numpy())
    assert w.cam is not None


def test_fooling_images_that_do_not_parse_are_shown(engine):
    """Issue 9 defect 8: images "abc" lost the error (the box stayed empty)."""
    w = MaximizerPanel(engine)
    w.mode = "fool"
    w.controls.fool_rows_box.value = "abc"
    w.controls.run_button.click()
    assert "InvalidArgument" in w.error.value and "&#x27;abc&#x27;" in w.error.value
    assert w.job("fool") is None


def test_markup_in_an_error_is_shown_as_text(engine):
    """Issue 9 defect 9: every string from data or an exception is escaped."""
    w = MaximizerPanel(engine)
    w.mode = "fool"
    w.fool_rows = "<img src=x onerror=alert(1)>"
    w.run()
    assert "&lt;img src=x onerror=alert(1)&gt;" in w.error.value and "<img" not in w.error.value


@pytest.mark.parametrize("name, bad, valid", [
    ("steps", 0, "1..100000"), ("n_starts", 9, "1..8"), ("start_image", 10 ** 6, "0..39"),
    ("fool_target", 10, "0..9"), ("top_k", 0, "1.."), ("lr", -1.0, "1e-12..")])
def test_bad_trait_values_are_refused_and_the_old_value_kept(engine, name, bad, valid):
    w = MaximizerPanel(engine)
    old = getattr(w, name)
    with pytest.raises(T.TraitError, match=f"{name} must be in {valid}"):
        setattr(w, name, bad)
    assert getattr(w, name) == old


def test_bad_choices_and_objectives_are_refused(engine):
    w = MaximizerPanel(engine)
    with pytest.raises(T.TraitError, match=r"optimizer must be one of \['adam', 'sgd'\]"):
        w.optimizer = "lbfgs"
    with pytest.raises(T.TraitError, match="0 <= channel < 8"):
        w.objective = O.channel("3", 99)
    assert w.optimizer == "adam" and w.objective.description == "logit[0]"
    w.objective = ("3", 2)                                    # a (layer, unit) pair is taken
    assert "unit(3, 2)" in w.controls.objective_label.value or "3" in w.controls.objective_label.value


@pytest.mark.parametrize("name, bad, message", [
    ("alpha_exp", float("inf"), "alpha_exp must be a finite number; got inf"),
    ("tv_beta", float("inf"), "tv_beta must be a finite number; got inf"),
    ("alpha_exp", float("nan"), "alpha_exp must be a finite number; got nan"),
    ("alpha_weight", 100.0, r"alpha_weight must be in 1e-06\.\.10\.0; got 100\.0"),
    ("tv_weight", 1e-9, r"tv_weight must be in 1e-06\.\.10\.0"),
    ("steps", True, "steps must be a whole number; got True"),
    ("lr", True, "lr must be a finite number; got True"),
    ("objective", None, "objective: expected an objective"),
])
def test_issue16_values_are_refused_and_the_old_value_kept(engine, name, bad, message):
    """Issue 16: alpha_exp or tv_beta at inf ran to 'done' with a NaN image; alpha_weight=100
    was taken while its slider showed 10; objective=None raised AttributeError and stayed."""
    w = MaximizerPanel(engine, steps=3)
    old = getattr(w, name)
    with pytest.raises(T.TraitError, match=message) as info:
        setattr(w, name, bad)
    assert isinstance(info.value, InvalidArgument)
    assert getattr(w, name) is old or getattr(w, name) == old
    w.run()                                                   # later runs still work
    assert w.wait(60) and w.job("run").state == "done" and np.isfinite(w.last_step.images).all()


def test_every_number_the_panel_takes_is_one_its_control_shows(engine):
    """Issue 16: a trait and its linked control agree: the trait refuses what the control
    cannot show (alpha_weight=100 under a slider ending at 10)."""
    import ipywidgets as W

    w = MaximizerPanel(engine)
    checked = []
    for name, attr in LINKS.items():
        c = getattr(w.controls, attr)
        if not hasattr(c, "max"):
            continue
        lo, hi = (c.base ** c.min, c.base ** c.max) if isinstance(c, W.FloatLogSlider) \
            else (c.min, c.max)
        for value in (lo, hi):
            setattr(w, name, value)
            assert getattr(w, name) == c.value == pytest.approx(value), name
        floats = isinstance(lo, float)
        for bad in (lo / 10 if floats and lo > 0 else lo - 1, hi * 10 if floats else hi + 1):
            with pytest.raises(T.TraitError):
                setattr(w, name, bad)
            assert getattr(w, name) == c.value == pytest.approx(hi), name
        checked.append(name)
    assert {"steps", "lr", "n_starts", "start_image", "alpha_weight", "alpha_exp", "tv_weight",
            "tv_beta"} <= set(checked)


def test_fooling_rows_that_do_not_parse_are_the_status_too(engine):
    """Issue 16: after a finished run the status still said 'done' when the fooling rows did
    not parse."""
    w = MaximizerPanel(engine, steps=3)
    w.run()
    assert w.wait(60) and "maximize: done" in w.status.value
    w.mode = "fool"
    for rows in ("abc", "0, 99"):                     # a typo; a row the dataset lacks
        w.controls.fool_rows_box.value = rows
        w.controls.run_button.click()
        assert w.status.value.startswith("fooling: InvalidArgument: images:"), w.status.value
        assert "done" not in w.status.value and w.progress.bar_style == "danger"
        assert w.job("fool") is None and "InvalidArgument" in w.error.value


def test_a_scan_of_an_objective_no_longer_set_is_not_shown(engine, late):
    """Issue 16: the scan's top images and histogram arrived under the new objective's label."""
    w = MaximizerPanel(engine, objective=O.unit("6", 7))
    assert w.wait(60)
    release = late(engine, "top_images_and_histogram")
    w.scan()
    w.objective = O.logit(3)
    release()
    assert w.wait(60) and w.scan_result is None and w.top_rgba is None
    assert w.status.value.startswith("scan dataset: ")
    assert w.status.value.endswith("objective changed since it was asked"), w.status.value
    assert w.stop_button.disabled
    w.scan()                                                  # asked again: shown
    assert w.wait(60) and w.scan_result is not None and w.status.value.startswith(
        "scan dataset: done")


def live_run(engine):
    """A panel on a long run, once its first live step is shown (or after 30 s)."""
    w = MaximizerPanel(engine, steps=100000)
    assert w.wait(60)
    w.run()
    deadline = time.monotonic() + 30
    while w.last_step is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return w


def test_a_run_whose_settings_change_stops_and_says_why(engine):
    """Issue 16: a run went on painting (and ended 'done') after its settings changed."""
    w = live_run(engine)
    with w.runner.lock:                      # no picture is half-way through meanwhile
        w.lr = 0.01
        shown = w.picture
    assert w.job("run").wait(30) and w.job("run").state == "stopped"
    assert w.picture is shown
    assert w.status.value == "maximize: stopped: lr changed since it was asked"
    assert w.stop_button.disabled


def test_the_grad_cam_switch_acts_on_a_running_ascent(engine):
    """Issue 16: a run took the overlay switch at its start: switched on during the run, the
    overlay showed once and the next picture dropped it."""
    w = live_run(engine)
    deadline = time.monotonic() + 30
    w.controls.cam_on.value = True
    for _ in range(2):     # the first picture drawn after the switch may have been made before it
        step = w.last_step.step
        while w.last_step.step == step and time.monotonic() < deadline:
            time.sleep(0.01)
    assert w.last_step.step != step and w.cam is not None
    w.stop()
    assert w.wait(30)


def test_a_start_computed_with_the_overlay_shows_none_once_it_is_off(engine, late):
    """Issue 16: a start whose Grad-CAM was computed while the overlay was switched off was
    shown with the overlay."""
    w = MaximizerPanel(engine, start="dataset")
    w.controls.cam_on.value = True
    assert w.wait(60) and w.cam is not None
    row = engine.dataset.images[3].numpy()
    held = late(engine, "gradcam", lambda images, **kw: np.array_equal(images[0], row))
    w.start_image = 3                     # its Grad-CAM is held ...
    assert held.entered.wait(30)
    w.controls.cam_on.value = False                # ... while the overlay is switched off
    held()
    assert w.wait(60)
    np.testing.assert_array_equal(w.picture.images[0], row)
    assert w.cam is None


# -- the contract: searchable pickers, defaults that scale, live results, Stop, sheets -----------
# (a classifier of 1000 classes: the imagenet_like fixture of conftest.py)
def test_classes_are_picked_by_name(imagenet_like):
    w = MaximizerPanel(imagenet_like)
    c = w.controls
    for box in (c.class_box, c.fool_target_box):
        assert len(box.options) == 1000 and box.ensure_option
        assert [o for o in box.options if "tabby" in o] == ["517: tabby cat"]
    c.class_box.value = "517: tabby cat"
    c.set_button.click()
    assert w.objective.description == "logit[517]"
    c.class_box.value = "tabby"                                  # not an option
    c.add_button.click()
    assert "no class &#x27;tabby&#x27;" in w.error.value and w.objective.description == "logit[517]"
    c.fool_target_box.value = "517: tabby cat"
    assert w.fool_target == 517
    c.fool_target_box.value = "tabby"
    assert w.fool_target == 517 and "no class" in w.error.value
    w.fool_target = 3
    assert c.fool_target_box.value == "3: class 3"
    assert w.wait(60)


def test_a_large_classifier_starts_with_a_class_its_data_has_and_its_top_classes(imagenet_like):
    e = imagenet_like
    w = MaximizerPanel(e, start="dataset")
    assert w.objective.description == "logit[5]"          # the first image's label, not class 0
    assert w.fool_rows == "0" and w.fool_target == 999
    assert w.wait(60)
    probs = softmax(e.predict(e.dataset.images[:1]))[0]
    best = np.argsort(-probs)[:10]
    assert list(w.controls.bars.x) == [e.class_names[i] for i in best]
    np.testing.assert_allclose(w.controls.bars.y, probs[best], rtol=1e-5)


def test_the_digits_start_with_the_first_images_class():
    from cnn_widgets.zoo import lenet_digits
    e = lenet_digits(device="cpu")
    w = MaximizerPanel(e)
    label = int(e.dataset.labels[0])
    assert w.objective.description == f"logit[{label}]"
    assert w.wait(60)


def test_the_optimiser_says_which_one_is_the_papers(engine):
    w = MaximizerPanel(engine)
    assert dict(w.controls.optimizer_box.options) == {"Adam (not the paper's)": "adam",
                                                      "SGD (the paper's)": "sgd"}
    w.controls.optimizer_box.value = "sgd"
    assert w.optimizer == "sgd" and w.wait(60)


def forward_counter(model, at=None, then=None):
    """Counts the model's forward passes (a pre-hook on its first layer); ``then()`` runs inside
    forward pass number ``at``. Returns (counts list, hook handle)."""
    seen = []

    def hook(_module, _args):
        seen.append(1)
        if len(seen) == at:
            then()
    return seen, model[0].register_forward_pre_hook(hook)


def test_stop_acts_after_the_update_under_way(engine):
    """Stop granularity: the ascent checks after every update (one forward and backward pass),
    so Stop pressed during the 5th pass ends the run after exactly 5."""
    w = MaximizerPanel(engine, objective=O.logit(2), steps=100000)
    assert w.wait(60)
    seen, handle = forward_counter(engine.model, 5, w.stop)
    try:
        w.run()
        assert w.wait(60)
    finally:
        handle.remove()
    assert len(seen) == 5 and w.job("run").state == "stopped"
    assert w.last_step is not None and w.last_step.step == 0    # the first step: drawn at once


def test_top_images_show_from_the_first_batch(engine):
    """Progressive painting: the scan's top images of the first batch are painted before the
    second batch is scanned."""
    import threading

    from cnn_widgets import Engine
    e = Engine(engine.model, engine.input_shape, dataset=engine.dataset, batch_size=8,
               device="cpu")
    w = MaximizerPanel(e, objective=O.unit("3", 7), top_k=5)
    assert w.wait(60)
    first = e.top_images(("3", 7), k=5, data=e.dataset.images[:8])    # the first batch alone
    go = threading.Event()
    seen, handle = forward_counter(e.model, 2, lambda: go.wait(30))   # the second batch waits
    try:
        w.scan()
        deadline = time.monotonic() + 30
        while w.top is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.job("scan").state == "running" and len(seen) <= 2     # before batch 2 ends
        np.testing.assert_array_equal(w.top.indices, first.indices)
        assert w.top_rgba is not None and w.controls.top_canvas in w._sheets()
    finally:
        go.set()
        handle.remove()
    assert w.wait(60) and w.job("scan").state == "done"
    np.testing.assert_array_equal(w.top.indices, e.top_images(("3", 7), k=5).indices)


def test_run_shows_the_start_at_once_and_the_ascent_from_the_engine(engine, late):
    w = MaximizerPanel(engine, start="dataset", steps=30)
    assert w.wait(60)
    w.run()
    assert w.wait(60) and w.last_step.final
    release = late(engine, "maximize")
    w.run()                                              # the start again, before any step
    assert w.last_step is None and len(w.controls.curve.x) == 0
    np.testing.assert_array_equal(w.picture.images, engine.dataset.images[:1].numpy())
    release()
    assert w.wait(60) and w.last_step.final


def test_sheets_are_what_the_canvases_show(engine):
    w = MaximizerPanel(engine, steps=5)
    w.mode = "fool"
    w.fool_rows = "0-1"
    w.run()
    w.scan()
    assert w.wait(60)
    c, sheets = w.controls, w._sheets()
    assert set(sheets) == {c.image_canvas, c.top_canvas, c.fool_canvas}
    for canvas, rgba in ((c.image_canvas, w.image_rgba), (c.top_canvas, w.top_rgba),
                         (c.fool_canvas, w.fool_rgba)):
        assert sheets[canvas].rgba is rgba and (canvas.width, canvas.height) == rgba.shape[1::-1]
