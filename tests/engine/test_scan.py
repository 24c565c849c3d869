"""Dataset scans: top-k agrees with a brute-force sort, the histogram with numpy's, Stop works."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, untouched


@pytest.fixture
def engine():
    x = random_images(70, TINY_SHAPE, seed=2)
    return Engine(tiny_lenet(1), TINY_SHAPE, dataset=(x, torch.arange(70) % 5), device="cpu",
                  batch_size=16)


def brute(engine, layer, index):
    """One image at a time through the plain model (no hooks, no batching)."""
    vals = []
    for img in engine.dataset.images:
        h = {}
        handle = dict(engine.model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: h.setdefault("o", o.clone()))
        with torch.no_grad():
            engine.model.eval()(img[None])
        handle.remove()
        vals.append(h["o"].reshape(-1)[index].item())
    return np.array(vals)


def test_top_k_agrees_with_a_brute_force_sort(engine):
    want = brute(engine, "conv2", int(np.ravel_multi_index((3, 1, 2), (6, 4, 4))))
    with untouched(engine.model):
        top = engine.top_images(("conv2", (3, 1, 2)), k=7)
    order = np.argsort(-want, kind="stable")[:7]
    np.testing.assert_array_equal(top.indices, order)
    np.testing.assert_allclose(top.values, want[order], rtol=1e-5)
    np.testing.assert_array_equal(top.images, engine.dataset.images[order].numpy())
    np.testing.assert_array_equal(top.labels, order % 5)


def test_histogram_covers_the_whole_dataset(engine):
    want = brute(engine, "fc1", 4)
    h = engine.activation_histogram(O.unit("fc1", 4), bins=12)
    counts, edges = np.histogram(want, bins=12)
    assert h.counts.sum() == 70
    np.testing.assert_allclose(h.edges, edges, rtol=1e-5)
    np.testing.assert_array_equal(h.counts, counts)


def test_scan_streams_progress_and_stops(engine):
    seen = []
    engine.top_images(O.channel("conv1", 0), k=3, control=Control(report=lambda *a: seen.append(a)))
    assert [d for d, _, _ in seen] == [16, 32, 48, 64, 70]
    with pytest.raises(Cancelled):
        engine.activation_histogram(O.logit(0), control=Control(should_stop=lambda: True))
    with pytest.raises(ValueError, match="1..70"):
        engine.top_images(O.logit(0), k=71)
