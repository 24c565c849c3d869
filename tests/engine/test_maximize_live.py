"""Live results and Stop of the ascent and the dataset scan: ``maximize`` hands
MaximizeSteps to ``control.partial`` when its watcher wants one (the same pictures the stream
yields, the result unchanged), builds none for nobody, and stops within one forward and
backward pass, chunked starts too; a watched scan hands the top images so far after each
batch, its first batch small."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.core.control import NO_CONTROL, Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.engine.visualization import maximize as mx
from cnn_widgets.engine.visualization.regularizers import Jitter
from cnn_widgets.engine.visualization.scan import FIRST_BATCH
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, untouched


def counted():
    """An engine whose model counts its forward passes (a pre-hook on its first layer)."""
    model = tiny_lenet(0)
    passes = []
    model.conv1.register_forward_pre_hook(lambda m, args: passes.append(args[0].shape[0]))
    x = random_images(30, TINY_SHAPE, seed=1)
    engine = Engine(model, TINY_SHAPE, dataset=(x, torch.arange(30) % 5), device="cpu")
    passes.clear()                               # the engine looked at the model on its way in
    return engine, passes


def test_control_says_when_a_partial_is_due():
    assert not NO_CONTROL.partial_due()
    assert Control(partial=print).partial_due()
    assert not Control(partial=print, partial_due=lambda: False).partial_due()
    assert not Control(partial_due=lambda: True).partial_due()          # nobody takes it


@pytest.mark.parametrize("objective, regs", [(O.logit(1), []), (O.channel("conv2", 1), [Jitter(2)])])
def test_live_steps_are_the_streams_and_leave_the_result_alone(objective, regs):
    e, _ = counted()
    live = []
    kw = dict(steps=12, n_starts=2, seed=3, regularizers=regs)
    with untouched(e.model):
        r = e.maximize(objective, control=Control(partial=live.append), **kw)
    plain = e.maximize(objective, **kw)
    for name in ("images", "values", "logits", "trace", "penalty_trace"):
        np.testing.assert_array_equal(getattr(r, name), getattr(plain, name))
    stream = {s.step: s for s in e.iterate_maximize(objective, every=1, **kw)}
    assert live and live[0].step == 0 and [s.step for s in live] == sorted({s.step for s in live})
    for s in live:                                      # the whole picture so far, with scores
        want = stream[s.step]
        np.testing.assert_array_equal(s.images, want.images)
        np.testing.assert_array_equal(s.trace, want.trace)
        np.testing.assert_allclose(s.logits, want.logits, rtol=1e-6, atol=1e-6)


def test_no_live_picture_is_built_for_nobody():
    """The class scores of a live picture cost a forward pass (objective before the logits):
    made only when the watcher wants one."""
    e, passes = counted()
    for control in (NO_CONTROL, Control(partial=print, partial_due=lambda: False)):
        passes.clear()
        e.maximize(O.channel("conv2", 1), steps=6, control=control)
        assert len(passes) == 6 + 1                    # the updates, then the final images
    passes.clear()
    e.maximize(O.channel("conv2", 1), steps=6, control=Control(partial=lambda s: None))
    assert len(passes) > 6 + 1


@pytest.mark.parametrize("chunked", [False, True])
def test_stop_acts_within_one_forward_and_backward(chunked, monkeypatch):
    """Stop asked during a forward pass: no further pass starts (chunked starts: between two
    chunks of one update, not after the whole update)."""
    e, passes = counted()
    if chunked:
        monkeypatch.setattr(mx, "_GRAD_FLOATS", 1)     # one image per pass
    control = Control(should_stop=lambda: len(passes) >= 2)
    with untouched(e.model), pytest.raises(Cancelled):
        e.maximize(O.logit(1), steps=50, n_starts=4, control=control)
    assert len(passes) == 2 and passes == [4 if not chunked else 1] * 2


def test_the_scan_hands_the_top_images_so_far_after_each_batch():
    e, passes = counted()
    got = []
    top, hist = e.top_images_and_histogram(("fc1", 2), k=5, bins=7, batch_size=16,
                                           control=Control(partial=got.append))
    assert passes == [FIRST_BATCH, 16, 30 - 16 - FIRST_BATCH]     # the first picture early
    values = e.activations(e.dataset.images, ["fc1"])["fc1"][:, 2]
    assert [len(h.values) for _, h in got] == [FIRST_BATCH, FIRST_BATCH + 16, 30]
    for t, h in got:
        n = len(h.values)
        np.testing.assert_array_equal(t.indices, np.argsort(-values[:n], kind="stable")[:5])
        assert h.counts.sum() == n
    np.testing.assert_array_equal(got[-1][0].indices, top.indices)
    alone = []
    passes.clear()
    e.top_images(("fc1", 2), k=3, batch_size=16, control=Control(partial=alone.append))
    assert [len(t.indices) for t in alone] == [3, 3, 3]
    passes.clear()
    e.top_images(("fc1", 2), k=3, batch_size=16)                     # unwatched: full batches
    assert passes == [16, 14]
