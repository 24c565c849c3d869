"""FOVExplorer state: the image and the grid show at once; a simulated click gives the four
reconstructions of the strongest unit there; hover draws the field without computing; the
channel picker and layer change recompute; the best input is the paper's plain gradient
ascent and stops within a step; ``index`` is a deprecated alias of ``row``."""
import numpy as np
import pytest
import traitlets

from cnn_widgets import FOVExplorer
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets.fov_explorer import BEST_LR, BEST_STARTS, HEADER, PANEL, TITLES
from cnn_widgets.widgets.fov_explorer.paint import SELECTED, image_sheet, recon_sheet

METHODS = tuple(TITLES)       # engine.reconstruct(method="all") gives these four


def explorer(engine, **kw):
    """An explorer with its first pictures computed (the constructor only queues them)."""
    w = FOVExplorer(engine, **kw)
    assert w.wait(30)
    return w


def event(w, kind, x, y):
    w.controls.image_canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def centre_of(w, y, x):
    ch, cw = w._grid().cell
    return (x + 0.5) * cw, (y + 0.5) * ch


def shown(w, name):
    """What the canvas ``controls.<name>`` shows: a Sheet or a hint text (None: nothing)."""
    return w._shown.get(getattr(w.controls, name))


def test_first_picture_is_the_strongest_unit_of_the_last_conv(engine):
    w = explorer(engine)
    assert w.layer == "3"                                        # the last Conv2d
    act = engine.activations(engine.dataset.images[0], ["3"])["3"][0]
    assert w.unit == w.recon.unit == np.unravel_index(np.argmax(act), act.shape)
    assert set(w.recon.images) == set(METHODS)
    assert shown(w, "image_canvas").rgba.shape == (280, 280, 4)
    assert shown(w, "recon_canvas").rgba.shape == (PANEL + HEADER, 5 * (PANEL + 6), 4)
    assert shown(w, "slices_canvas").rgba.shape[0] == HEADER + 10 * 5      # 10x10 maps, 5x
    stats = engine.activation_stats(engine.dataset.images[0])
    assert list(w.controls.bars.x) == list(stats.layers)
    np.testing.assert_allclose(w.controls.bars.y, stats.fraction[0])
    assert w.dataset_stats is not None
    np.testing.assert_allclose(w.controls.means.y,
                               engine.activation_stats(engine.dataset.images).mean)
    assert set(w._sheets()) == {w.controls.image_canvas, w.controls.recon_canvas,
                                w.controls.slices_canvas}            # every picture, as painted


def test_the_image_and_the_grid_show_at_once_before_any_job(engine):
    """Issue 17: nothing showed until the activations, stats and reconstructions were all done
    (4.7 s on a ResNet-50); the image, the grid and the hover need no model run."""
    with held_elsewhere(engine):                    # no job can run meanwhile
        w = FOVExplorer(engine, image=3)
        sheet = shown(w, "image_canvas")
        want = image_sheet(engine.dataset.images[3].numpy(), w.k, w._grid())
        np.testing.assert_array_equal(sheet.rgba, want.rgba)
        assert len(w._grid().lines()) == 18                           # 10 x 10 positions
        assert isinstance(shown(w, "recon_canvas"), str) and w.recon is None
        assert w.job("slices").state in ("pending", "running") and w.slices is None
        event(w, "mouse_move", *centre_of(w, 2, 3))                   # geometry only
        f = engine.receptive_field("3", 2, 3)
        assert f"rows {f.top}–{f.bottom - 1}" in w.controls.hover_text.value
        hovered = image_sheet(engine.dataset.images[3].numpy(), w.k, w._grid(),
                              engine.field_map("3"), hovered=(2, 3))
        np.testing.assert_array_equal(shown(w, "image_canvas").rgba, hovered.rgba)
    assert w.wait(30) and w.recon is not None


def test_click_gives_the_four_reconstructions_of_the_strongest_channel_there(engine):
    w = explorer(engine, image=3)
    before = shown(w, "recon_canvas").rgba.copy()
    y, x = 1, 8
    event(w, "mouse_down", *centre_of(w, y, x))
    assert w.wait(30)
    act = engine.activations(engine.dataset.images[3], ["3"])["3"][0]
    c = int(np.argmax(act[:, y, x]))
    assert w.position == (y, x) and w.channel == c and w.controls.channel_box.value == c
    want = engine.reconstruct(engine.dataset.images[3], ("3", c, y, x), method="all")
    for m in METHODS:
        np.testing.assert_array_equal(w.recon.images[m], want.images[m])
    np.testing.assert_array_equal(shown(w, "recon_canvas").rgba, recon_sheet(want).rgba)
    f = engine.receptive_field("3", y, x)
    assert w.recon.field == f and f"rows {f.top}–{f.bottom - 1}" in w.controls.info.value
    assert f"{want.activation:.4g}" in w.controls.info.value
    assert not np.array_equal(before, shown(w, "recon_canvas").rgba)
    image = shown(w, "image_canvas").rgba                        # the field framed in red
    assert tuple(image[f.top * w.k, f.left * w.k, :3]) == SELECTED


def test_hover_draws_the_field_without_computing(engine):
    w = explorer(engine)
    jobs = {k: w.runner.latest(k) for k in w._keys}
    event(w, "mouse_move", *centre_of(w, 0, 9))
    f = engine.receptive_field("3", 0, 9)
    assert w.hover == (0, 9)
    assert (f"rows {f.top}–{f.bottom - 1}, columns {f.left}–{f.right - 1}"
            in w.controls.hover_text.value)
    assert {k: w.runner.latest(k) for k in w._keys} == jobs            # no job started
    hovered = shown(w, "image_canvas").rgba
    event(w, "mouse_out", 0, 0)
    assert w.hover is None and w.controls.hover_text.value == ""
    assert not np.array_equal(hovered, shown(w, "image_canvas").rgba)   # the box is gone


def test_channel_picker_and_layer_change_recompute(engine):
    w = explorer(engine)
    pos = w.position
    w.controls.channel_box.value = (w.channel + 1) % 8
    assert w.wait(30)
    assert w.recon.unit == (w.controls.channel_box.value, *pos)
    w.controls.layer_box.value = "1"                                  # the first ReLU
    assert w.wait(30)
    assert w.layer == w.recon.layer == "1" and w.slices.layer == "1"
    assert w.controls.channel_box.max == 3                            # its 4 channels
    with pytest.raises(ValueError, match="needs an image"):
        from cnn_widgets import Engine
        FOVExplorer(Engine(engine.model, engine.input_shape, device="cpu"))
    with pytest.raises(traitlets.TraitError, match=r"40 images \(0\.\.39\)"):
        FOVExplorer(engine, image=40)


def test_an_image_of_ones_own_without_a_dataset(engine):
    from cnn_widgets import Engine
    bare = Engine(engine.model, engine.input_shape, device="cpu")
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 6:22, 12:16] = 1.0                                         # a bar
    w = explorer(bare, image=img, layer="4")
    assert w.row == -1 and w.layer == "4" and w.dataset_stats is None
    np.testing.assert_array_equal(w.recon.x, img)
    event(w, "mouse_down", *centre_of(w, 5, 6))
    assert w.wait(30) and w.position == (5, 6) and w.recon.unit[1:] == (5, 6)


def test_row_is_the_dataset_row_and_index_its_deprecated_alias(engine):
    """Issue 17: one meaning per name; ``index`` (a dataset row) keeps working for a release."""
    w = explorer(engine, image=2)
    assert w.row == 2 and w.controls.row_box.value == 2
    with pytest.warns(DeprecationWarning, match="use FOVExplorer.row"):
        assert w.index == 2
    with pytest.warns(DeprecationWarning, match="use FOVExplorer.row"):
        w.index = 7
    assert w.row == 7 and w.controls.row_box.value == 7
    assert w.wait(30)
    np.testing.assert_array_equal(w.recon.x, engine.dataset.images[7].numpy())
    with pytest.warns(DeprecationWarning), pytest.raises(traitlets.TraitError, match="row=99"):
        w.index = 99
    assert w.row == 7


def test_best_input_is_the_papers_plain_gradient_ascent(engine):
    """Issue 18 (defect 6): Best input ran Adam (iterate_maximize's default) while the README
    calls it the paper's Sec. 4 search, plain gradient ascent."""
    w = explorer(engine, best_steps=6)
    w.controls.best_button.click()
    assert w.wait(60)
    res = w.best
    unit = res.unit
    assert (res.layer, unit) == (w.recon.layer, w.recon.unit) and res.images.shape == (3, 1, 28, 28)
    start = engine.start_images("noise", BEST_STARTS, seed=0)
    want = engine.maximize(("3", unit), steps=6, start=start, lr=BEST_LR, optimizer="sgd")
    np.testing.assert_allclose(res.images, want.images, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(res.start, start)
    assert res.step == res.total == 6 and (res.optimizer, res.lr) == ("sgd", BEST_LR)
    assert res.trace.shape == (6, 3) and (res.values > res.trace[0]).all()    # it went up
    assert "plain gradient ascent (SGD, lr 0.01)" in w.controls.best_text.value
    assert "SGD, lr 0.01" in w.controls.best_button.tooltip
    f = engine.receptive_field("3", *unit[1:])
    outside = np.ones((28, 28), bool)
    outside[f.slices] = False
    assert np.abs((res.images - res.start)[:, 0][:, outside]).max() == 0     # only the field moves
    assert shown(w, "best_canvas").rgba.shape == (PANEL, 3 * (PANEL + 6), 4)


def test_a_stopped_best_input_ends_within_one_step(engine):
    """Stop lands between two steps (one forward+backward of the three starts each)."""
    w = explorer(engine, best_steps=100000)
    forwards = []

    def count(_module, args):
        forwards.append(len(args[0]))
        if len(forwards) == 3:
            w.stop()                      # during the third step's forward pass
    hook = engine.model[0].register_forward_pre_hook(count)
    try:
        w.controls.best_button.click()
        assert w.job("best").wait(30) and w.wait(30)
    finally:
        hook.remove()
    assert w.job("best").state == "stopped" and "best input: stopped at" in w.status.value
    assert forwards == [BEST_STARTS] * 3            # that step ended, none began after it
    assert w.best is not None and w.best.step <= 1  # a live picture before the stopped update


def test_construction_hover_and_clicks_never_wait_on_the_model_lock(engine):
    w = explorer(engine)
    with held_elsewhere(engine) as still_held:
        other = FOVExplorer(engine, image=5)
        event(w, "mouse_move", *centre_of(w, 2, 3))
        event(w, "mouse_down", *centre_of(w, 4, 4))
        w.controls.layer_box.value = "1"
        assert still_held()
        assert w.hover is None and w.fields.layer == "1"       # a new layer: a new grid
        event(w, "mouse_move", *centre_of(w, 2, 3))
        assert w.hover == (2, 3) and "field rows" in w.controls.hover_text.value
    assert other.wait(30) and w.wait(30) and other.recon is not None and w.recon.layer == "1"


def test_a_unit_chosen_before_the_activations_arrive_is_kept(engine):
    with held_elsewhere(engine):
        w = FOVExplorer(engine)
        w.unit = (2, 3, 4)
    assert w.wait(30) and w.slices is not None
    assert w.unit == w.recon.unit == (2, 3, 4)


@pytest.mark.parametrize("trait,value,message", [
    ("row", 999, r"row=999 out of range: the engine's dataset has 40 images \(0\.\.39\)"),
    ("row", -1, r"row=-1 out of range"),
    ("layer", "9", r"no \(C, H, W\) output to probe; expected one of 0, 1, 2, 3, 4, 5"),
    ("unit", (99, 0, 0), r"0 <= channel < 8, 0 <= y < 10, 0 <= x < 10"),
])
def test_bad_trait_values_are_refused_and_the_old_value_kept(engine, trait, value, message):
    w = explorer(engine)
    before = getattr(w, trait)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(w, trait, value)
    assert getattr(w, trait) == before
    assert w.wait(30) and w.slices.layer == "3" and not w.error.value


def test_best_input_shows_live_steps_and_lets_a_click_in(engine):
    import time
    w = explorer(engine, best_steps=100000)
    seen = []
    w.controls.best_button.click()
    while len(seen) < 2 and w.job("best").state in ("pending", "running"):
        if w.best is not None and (not seen or w.best.step != seen[-1]):
            seen.append(w.best.step)
        time.sleep(0.01)
    assert len(seen) == 2 and 0 <= seen[0] < seen[1] < 100000 and shown(w, "best_canvas")
    said = []
    w.status.observe(lambda change: said.append(change["new"]), names="value")
    event(w, "mouse_down", *centre_of(w, 7, 2))
    assert w.job("recon").wait(60)
    assert w.recon.unit[1:] == (7, 2)
    # the search was for the unit selected before: it stops at its next step and says why
    best = w.best
    assert w.job("best").wait(30) and w.job("best").state == "stopped" and w.wait(30)
    assert "best input: stopped: unit changed since it was asked" in said
    assert w.best is best and w.stop_button.disabled


@pytest.mark.parametrize("row", [5, 17, 31])
def test_a_late_reconstruction_of_the_previous_image_is_not_shown(engine, late, row):
    """Issue 16: a unit set and the row changed at once: when the old image's reconstruction
    arrived after the new row's view (3 of 80 trials), it was painted over it (the check
    was on the layer only). Here it arrives late on purpose."""
    w = explorer(engine)
    old = engine.dataset.images[0].numpy()
    release = late(engine, "reconstruct", lambda x, unit, **kw: np.array_equal(x, old))
    c, y, x = w.unit
    w.unit = ((c + 1) % 8, y, x)          # asks the old image's reconstruction (held) ...
    w.row = row                           # ... and the row changes at once
    assert w.job("slices").wait(30) and w.slices is not None
    release()                             # the old answer arrives after the new view
    assert w.wait(30) and w.job("recon").state in ("done", "stopped")   # stopped once stale
    image = engine.dataset.images[row].numpy()
    np.testing.assert_array_equal(w.recon.x, image)
    want = engine.reconstruct(image, ("3", *w.unit), method="all")
    assert f"activation <b>{want.activation:.4g}</b>" in w.controls.info.value
    assert w.unit == tuple(want.unit) and w.controls.channel_box.value == w.unit[0]


def test_a_late_reconstruction_of_another_layer_is_not_shown(engine, late):
    """The same rule for the layer (what the old check covered)."""
    w = explorer(engine)
    release = late(engine, "reconstruct", lambda x, unit, **kw: unit[0] == "3")
    w.unit = ((w.unit[0] + 1) % 8, *w.unit[1:])
    w.layer = "1"
    assert w.job("slices").wait(30) and w.slices.layer == "1"
    release()
    assert w.wait(30) and w.recon.layer == "1"


@pytest.mark.parametrize("trait,value,message", [
    ("row", True, "row must be a whole number; got True"),
    ("unit", [(1, 2, 3)], r"unit must be \(channel, y, x\); got \(\(1, 2, 3\),\)"),
    ("unit", (True, 0, 0), "unit must be a whole number; got True"),
    ("best_steps", -5, r"best_steps must be in 1\.\.100000; got -5"),
    ("best_steps", 2.5, "best_steps must be a whole number"),
])
def test_issue16_values_are_refused_with_the_packages_error(engine, trait, value, message):
    """Issue 16: True was row 1, a list of a unit gave a raw TypeError, best_steps=-5 was
    taken."""
    from cnn_widgets.widgets.validate import InvalidTrait
    w = explorer(engine)
    before = getattr(w, trait)
    with pytest.raises(InvalidTrait, match=message):
        setattr(w, trait, value)
    assert getattr(w, trait) == before
    with pytest.raises(InvalidTrait, match="best_steps must be in"):
        FOVExplorer(engine, best_steps=0)


def test_the_channel_picker_without_a_position_says_so(engine):
    with held_elsewhere(engine):
        w = FOVExplorer(engine)
        w.controls.channel_box.value = 3
        assert "no position selected yet" in w.error.value and w.unit is None
    assert w.wait(30)


def test_stop_during_the_activations_starts_no_reconstruction(engine, late):
    """Stop while the slices are computed: their job ran on to its end and its result asked
    for the strongest unit's reconstructions, a new job that Stop had not seen."""
    held = late(engine, "activation_slices")
    w = FOVExplorer(engine)
    assert held.entered.wait(30)
    w.stop()
    held()
    assert w.wait(30)
    assert w.job("slices").state == "stopped" and w.slices is None and w.unit is None
    assert w.job("recon") is None and w.recon is None
    assert isinstance(shown(w, "image_canvas").rgba, np.ndarray)        # the image stays
