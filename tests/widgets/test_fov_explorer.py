"""FOVExplorer state: a simulated click gives the four reconstructions of the strongest unit
there; hover draws the field without computing; the channel picker and layer change recompute."""
import numpy as np
import pytest
import traitlets

from cnn_widgets import FOVExplorer
from cnn_widgets.testing.threads import held_elsewhere
from cnn_widgets.widgets.fov_explorer import HEADER, PANEL, TITLES

METHODS = tuple(TITLES)       # engine.reconstruct(method="all") gives these four


def explorer(engine, **kw):
    """An explorer with its first pictures computed (the constructor only queues them)."""
    w = FOVExplorer(engine, **kw)
    assert w.wait(30)
    return w


def event(w, kind, x, y):
    w.image_canvas[-1]._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def centre_of(w, y, x):
    ch, cw = w._grid().cell
    return (x + 0.5) * cw, (y + 0.5) * ch


def test_first_picture_is_the_strongest_unit_of_the_last_conv(engine):
    w = explorer(engine)
    assert w.layer == "3"                                        # the last Conv2d
    act = engine.activations(engine.dataset.images[0], ["3"])["3"][0]
    assert w.recon.unit == np.unravel_index(np.argmax(act), act.shape)
    assert set(w.recon.images) == set(METHODS)
    assert w.image_rgba.shape == (280, 280, 4)
    assert w.recon_rgba.shape == (PANEL + HEADER, 5 * (PANEL + 6), 4)
    stats = engine.activation_stats(engine.dataset.images[0])
    assert list(w.bars.x) == list(stats.layers)
    np.testing.assert_allclose(w.bars.y, stats.fraction[0])
    assert w.wait(30) and w.dataset_stats is not None
    np.testing.assert_allclose(w.means.y, engine.activation_stats(engine.dataset.images).mean)


def test_click_gives_the_four_reconstructions_of_the_strongest_channel_there(engine):
    w = explorer(engine, image=3)
    before = w.recon_rgba.copy()
    y, x = 1, 8
    event(w, "mouse_down", *centre_of(w, y, x))
    assert w.wait(30)
    act = engine.activations(engine.dataset.images[3], ["3"])["3"][0]
    c = int(np.argmax(act[:, y, x]))
    assert w.position == (y, x) and w.channel == c and w.channel_box.value == c
    want = engine.reconstruct(engine.dataset.images[3], ("3", c, y, x), method="all")
    for m in METHODS:
        np.testing.assert_array_equal(w.recon.images[m], want.images[m])
    f = engine.receptive_field("3", y, x)
    assert w.recon.field == f and f"rows {f.top}–{f.bottom - 1}" in w.info.value
    assert f"{want.activation:.4g}" in w.info.value
    assert not np.array_equal(before, w.recon_rgba)
    # the filter panel: red where the filter is positive (panel 5 of 5)
    left = 4 * (PANEL + 6)
    panel = w.recon_rgba[HEADER:HEADER + PANEL, left:left + PANEL].astype(int)
    assert (panel[..., 0] - panel[..., 2] > 60).any() or (panel[..., 2] - panel[..., 0] > 60).any()


def test_hover_draws_the_field_without_computing(engine):
    w = explorer(engine)
    jobs = {k: w.runner.latest(k) for k in w._keys}
    event(w, "mouse_move", *centre_of(w, 0, 9))
    f = engine.receptive_field("3", 0, 9)
    assert w.hover == (0, 9)
    assert f"rows {f.top}–{f.bottom - 1}, columns {f.left}–{f.right - 1}" in w.hover_text.value
    assert {k: w.runner.latest(k) for k in w._keys} == jobs            # no job started
    event(w, "mouse_out", 0, 0)
    assert w.hover is None and w.hover_text.value == ""


def test_channel_picker_and_layer_change_recompute(engine):
    w = explorer(engine)
    pos = w.position
    w.channel_box.value = (w.channel + 1) % 8
    assert w.wait(30)
    assert w.recon.unit == (w.channel_box.value, *pos)
    w.layer_box.value = "1"                                           # the first ReLU
    assert w.wait(30)
    assert w.layer == w.recon.layer == "1"
    assert w.slices_rgba is not None and w.view.slices.layer == "1"
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
    assert w.index == -1 and w.layer == "4" and w.dataset_stats is None
    np.testing.assert_array_equal(w.recon.x, img)
    event(w, "mouse_down", *centre_of(w, 5, 6))
    assert w.wait(30) and w.position == (5, 6) and w.recon.unit[1:] == (5, 6)


def test_best_input_search_runs_on_the_worker_and_stops(engine):
    import time
    w = explorer(engine, best_steps=6)
    w.best_button.click()
    assert w.wait(60)
    res = w.best
    unit = res.unit
    assert (res.layer, unit) == (w.recon.layer, w.recon.unit) and res.images.shape == (3, 1, 28, 28)
    assert res.step == res.total == 6
    assert res.trace.shape == (6, 3) and (res.values > res.trace[0]).all()    # it went up
    f = engine.receptive_field("3", *unit[1:])
    outside = np.ones((28, 28), bool)
    outside[f.slices] = False
    assert np.abs((res.images - res.start)[:, 0][:, outside]).max() == 0     # only the field moves
    assert w.best_rgba.shape == (PANEL, 3 * (PANEL + 6), 4)
    w.best_steps = 100000
    w.best_button.click()
    time.sleep(0.5)
    assert not w.stop_button.disabled
    w.stop()
    assert w.wait(30) and "best input: stopped at" in w.status.value


def test_construction_hover_and_clicks_never_wait_on_the_model_lock(engine):
    import time
    w = explorer(engine)
    w.wait(30)
    with held_elsewhere(engine):
        start = time.perf_counter()
        other = FOVExplorer(engine, image=5)
        event(w, "mouse_move", *centre_of(w, 2, 3))
        event(w, "mouse_down", *centre_of(w, 4, 4))
        w.layer_box.value = "1"
        assert time.perf_counter() - start < 0.5
        assert w.hover == (2, 3) and "field rows" in w.hover_text.value
    assert other.wait(30) and w.wait(30) and other.recon is not None and w.recon.layer == "1"


@pytest.mark.parametrize("trait,value,message", [
    ("index", 999, r"index=999 out of range: the engine's dataset has 40 images \(0\.\.39\)"),
    ("index", -1, r"index=-1 out of range"),
    ("layer", "9", r"no \(C, H, W\) output to probe; expected one of 0, 1, 2, 3, 4, 5"),
    ("unit", (99, 0, 0), r"0 <= channel < 8, 0 <= y < 10, 0 <= x < 10"),
])
def test_bad_trait_values_are_refused_and_the_old_value_kept(engine, trait, value, message):
    w = explorer(engine)
    before = getattr(w, trait)
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(w, trait, value)
    assert getattr(w, trait) == before
    assert w.wait(30) and w.view.layer == "3" and not w.error.value


def test_best_input_shows_live_steps_and_lets_a_click_in(engine):
    import time
    w = explorer(engine, best_steps=100000)
    seen = []
    w.best_button.click()
    while len(seen) < 2 and w.job("best").state in ("pending", "running"):
        if w.best is not None and (not seen or w.best.step != seen[-1]):
            seen.append(w.best.step)
        time.sleep(0.01)
    assert len(seen) == 2 and 0 <= seen[0] < seen[1] < 100000 and w.best_rgba is not None
    start = time.perf_counter()
    event(w, "mouse_down", *centre_of(w, 7, 2))
    assert w.job("recon").wait(10)
    latency = time.perf_counter() - start
    assert w.recon.unit[1:] == (7, 2)
    assert latency < 1.0, latency
    # the search was for the unit selected before: it stops at its next picture and says why
    shown = w.best
    assert w.job("best").wait(30) and w.job("best").state == "stopped"
    assert w.status.value == "best input: stopped: unit changed since it was asked"
    assert w.best is shown and w.stop_button.disabled


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
    w.index = row                         # ... and the row changes at once
    assert w.job("view").wait(30) and w.view.slices is not None
    release()                             # the old answer arrives after the new view
    assert w.wait(30) and w.job("recon").state in ("done", "stopped")   # stopped once stale
    image = engine.dataset.images[row].numpy()
    assert w.recon is w.view.recon
    np.testing.assert_array_equal(w.recon.x, image)
    want = engine.reconstruct(image, ("3", *w.unit), method="all")
    assert f"activation <b>{want.activation:.4g}</b>" in w.info.value
    assert w.unit == tuple(want.unit) and w.channel_box.value == w.unit[0]


def test_a_late_reconstruction_of_another_layer_is_not_shown(engine, late):
    """The same rule for the layer (what the old check covered)."""
    w = explorer(engine)
    release = late(engine, "reconstruct", lambda x, unit, **kw: unit[0] == "3")
    w.unit = ((w.unit[0] + 1) % 8, *w.unit[1:])
    w.layer = "1"
    assert w.job("view").wait(30) and w.view.layer == "1"
    release()
    assert w.wait(30) and w.recon is w.view.recon and w.recon.layer == "1"


@pytest.mark.parametrize("trait,value,message", [
    ("index", True, "index must be a whole number; got True"),
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
