"""Active-feature counts (the probing paper's Fig. 6) against a count made from the layers'
outputs directly; the Fig. 2 slices."""
import numpy as np
import pytest

from cnn_widgets.engine.probing.activation_stats import activation_slices, default_layers
from cnn_widgets.testing import random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def test_counts_fractions_and_histograms_match_a_direct_count():
    model = tiny_lenet(1)
    engine = cpu_engine(model, (1, 8, 8), batch_size=3)      # several chunks
    x = random_images(7, seed=2)
    stats = engine.activation_stats(x)
    assert stats.layers == ("relu1", "pool1", "relu2", "pool2", "relu3") == default_layers(engine)
    fractions = []
    for name in stats.layers:
        shape = engine.layer(name).output_shape
        a = reference_unit_values(model, x, name).reshape(7, *shape)
        want = (a > 0).sum(1) if len(shape) == 3 else (a > 0).sum(1)[:, None, None]
        assert np.array_equal(stats.counts[name], want), name
        assert stats.channels[name] == shape[0]
        fractions.append(want.reshape(7, -1).mean(1) / shape[0])
        hist = stats.histogram(name, image=4)
        assert hist.sum() == want[4].size and len(hist) == shape[0] + 1
        assert np.array_equal(np.nonzero(hist)[0], np.unique(want[4]))
    fractions = np.stack(fractions, 1)
    np.testing.assert_allclose(stats.fraction, fractions)
    np.testing.assert_allclose(stats.mean, fractions.mean(0))
    np.testing.assert_allclose(stats.std, fractions.std(0))
    assert 0 < stats.mean.min() and stats.mean.max() < 1          # neither all off nor all on


def test_anywhere_reading_counts_channels_active_somewhere_by_a_loop():
    """Fig. 6's second reading: a channel counts once per image if it is > 0 anywhere; then a
    2x2 max-pool over an even map keeps the count, the position reading does not."""
    model = tiny_lenet(1)
    engine = cpu_engine(model, (1, 8, 8), batch_size=3)
    x = random_images(7, seed=2)
    stats = engine.activation_stats(x, reading="anywhere")
    assert stats.reading == "anywhere"
    for name in stats.layers:
        shape = engine.layer(name).output_shape
        a = reference_unit_values(model, x, name).reshape(7, shape[0], -1)
        for i in range(7):
            want = sum(1 for c in range(shape[0]) if any(v > 0 for v in a[i, c]))
            assert stats.counts[name][i, 0, 0] == want, (name, i)
        assert stats.histogram(name, 0).sum() == 1
    np.testing.assert_array_equal(stats.counts["pool1"], stats.counts["relu1"])
    np.testing.assert_array_equal(stats.counts["pool2"], stats.counts["relu2"])
    at = engine.activation_stats(x)
    assert (at.fraction[:, 1] >= at.fraction[:, 0]).all()       # pooling raises "position"
    assert (stats.fraction >= at.fraction - 1e-12).all()
    with pytest.raises(ValueError, match="reading must be one of"):
        engine.activation_stats(x, reading="somewhere")


def test_chosen_layers_and_slices():
    engine = cpu_engine(tiny_lenet(0), (1, 8, 8))
    x = random_images(1, seed=5)[0]
    stats = engine.activation_stats(x, layers=["conv2", "fc1"])
    assert stats.layers == ("conv2", "fc1") and stats.counts["fc1"].shape == (1, 1, 1)
    s = activation_slices(engine, x, "conv2", k=3)               # before its ReLU
    a = engine.activations(x, ["conv2"])["conv2"][0]
    rectified = np.maximum(a, 0).mean((1, 2))
    assert list(s.channels) == list(np.argsort(-rectified)[:3])
    assert (rectified[s.channels] > 0).all()
    np.testing.assert_array_equal(s.maps, a[s.channels])
    c, y, xx = s.strongest_position()
    assert a[c, y, xx] == a.max() and s.strongest_channel(y, xx) == c
    with pytest.raises(ValueError, match="channels, H, W"):
        activation_slices(engine, x, "fc1")


def test_stats_fields_and_a_stopped_reconstruction_leave_the_model_untouched():
    from cnn_widgets.engine.core.control import Control
    from cnn_widgets.engine.core.errors import Cancelled
    from cnn_widgets.testing import as_user_model, no_leftover_hooks, untouched

    model = as_user_model(tiny_lenet(2), frozen=["conv1"])
    engine = cpu_engine(model, (1, 8, 8))
    x = random_images(3, seed=1)
    steps = []

    def stop_after_two():
        return len(steps) >= 2
    with untouched(model):
        engine.activation_stats(x)
        engine.receptive_field("pool2", 1, 1)
        with pytest.raises(Cancelled):
            engine.reconstruct(x[0], ("relu2", 1, 2, 2), method="all",
                               control=Control(should_stop=stop_after_two,
                                               report=lambda d, t, m: steps.append(d)))
    assert steps == [1, 2]
    no_leftover_hooks(model)
    assert model.training and not model.conv1.weight.requires_grad and model.fc1.weight.requires_grad


def test_a_stop_lands_after_the_first_image_and_partials_hold_the_images_done():
    """Issue 17: the counts went through in chunks of the engine's batch size (all 7 images
    here, 48 ResNet-50 images in FOVExplorer), so Stop waited for all of them. Now the first
    chunk is one image, and each chunk's counts are handed on as they are done."""
    from cnn_widgets.engine.core.control import Control
    from cnn_widgets.engine.core.errors import Cancelled

    model = tiny_lenet(1)
    engine = cpu_engine(model, (1, 8, 8))
    x = random_images(7, seed=2)
    seen = []
    hook = model.conv1.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    try:
        with pytest.raises(Cancelled):
            engine.activation_stats(x, control=Control(should_stop=lambda: True))
        assert seen == [1]                         # one image went through, not the batch
        seen.clear()
        parts = []
        whole = engine.activation_stats(x, control=Control(partial=parts.append))
    finally:
        hook.remove()
    assert sum(seen) == 7 and seen[0] == 1 and len(parts) == len(seen) - 1
    done = [len(p.counts["relu1"]) for p in parts]
    assert done == sorted(done) and done[0] == 1 and done[-1] < 7
    for p in parts:                               # the first images' counts, final already
        for name in whole.layers:
            np.testing.assert_array_equal(p.counts[name], whole.counts[name][:len(p.counts[name])])
