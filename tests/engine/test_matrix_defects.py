"""Regression tests for the defects the model matrix found (benchmarks/model_matrix.py), each on
a tiny model with the same structure as the torchvision one."""
import numpy as np
import pytest
import torch
from torch import nn

from cnn_widgets import objectives as O
from cnn_widgets.testing import TINY_SHAPE, gated_conv_net, random_images
from cnn_widgets.testing.reference import assert_same_map, cpu_engine, reference_jacobian


class FlattenAfterLastModule(nn.Module):
    """SqueezeNet's head: the last module is a global pool, (classes, 1, 1); forward() flattens
    it with torch.flatten, so no module outputs the logits' shape."""

    def __init__(self, classes=5):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.Conv2d(4, classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


class EmptyBranch(nn.Module):
    """ShuffleNet-v2's unit with stride 1: ``branch1`` is an empty nn.Sequential (identity)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
        self.fc = nn.Linear(6 * 8 * 8, 4)

    def forward(self, x):
        h = self.conv(x)
        h = torch.cat([self.branch1(h), self.branch2(h)], 1).relu()
        return self.fc(torch.flatten(h, 1))


def test_logits_are_the_models_output_when_a_function_makes_it():
    engine = cpu_engine(FlattenAfterLastModule(), TINY_SHAPE)
    assert engine.layer().output_shape == (engine.n_classes,), engine.layers[-3:]
    x = random_images(2, seed=3)
    np.testing.assert_allclose(engine.activations(x, [engine.default_layer])[engine.default_layer],
                               engine.predict(x), rtol=1e-6)
    g = engine.gradcam(x, classes=[0, 4])                     # crashed: RuntimeError
    assert g.maps.shape == (2, 2, *TINY_SHAPE[1:]) and np.isfinite(g.maps).all()
    r = engine.maximize(O.logit(4), steps=2, seed=0)          # refused: class 4 of (5, 1, 1)
    assert np.isfinite(r.values).all()
    et = engine.etalons(x, units=[0])
    assert et.exact, et.reason


def test_empty_sequential_is_piecewise_linear():
    model = EmptyBranch()
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.nonlinear_parts == []                      # "Sequential 'branch1' is not ..."
    x = random_images(2, seed=4)
    fast = engine.etalons(x)
    assert fast.exact, fast.reason
    for i in range(len(x)):
        assert_same_map(fast.W[i], reference_jacobian(model, x[i]), f"W vs Jacobian {i}")
    paper = engine.etalons(x, method="paper")
    assert_same_map(fast.W, paper.W, "paper W")
    np.testing.assert_allclose(fast.b, paper.b, rtol=1e-5, atol=1e-6)
    r = engine.reconstruct(x[0], ("branch2.1", 0, 4, 4), method="all")
    assert r.exact and set(r.images) == {"deconvnet", "deconvnet_masks", "random_masks", "filter"}


def test_resnet50_activation_stats_reads_every_relu_call(size=32):
    """Bottleneck blocks call one ReLU module three times; the counts of each call are its own
    (the matrix found a ValueError before the per-call graph; a guard, it passes on that graph)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    engine = cpu_engine(torchvision.models.resnet50(weights=None).eval(), (3, size, size))
    x = random_images(1, seed=5, shape=(3, size, size))
    s = engine.activation_stats(x)
    names = [n for n in s.layers if n.startswith("layer1.0.relu")]
    assert names == ["layer1.0.relu", "layer1.0.relu:1", "layer1.0.relu:2"], s.layers[:8]
    acts = engine.activations(x, names)
    for n in names:
        a = acts[n].reshape(1, acts[n].shape[1], -1)
        assert ((a > 0).sum(1) == s.counts[n].reshape(1, -1)).all(), n


@pytest.mark.parametrize("gate", ["relu6", "hardtanh"])
def test_clamp_gates_are_replayed_by_algorithm1_and_patterns(gate):
    """MobileNet-v2's ReLU6 (a Hardtanh): three pieces per input, one recorded state per call;
    Algorithm 1 equals the fast path (W and b: a saturated input's bound belongs to b) and
    activation patterns tell the pieces apart. Both refused ReLU6/Hardtanh before."""
    model = gated_conv_net(gate, 11)
    engine = cpu_engine(model, TINY_SHAPE, mean=0.2, std=0.7)
    scale = 20.0 if gate == "relu6" else 3.0                 # inputs on all three pieces
    x = (random_images(3, seed=27) - 0.4) * scale
    pre = engine.activations(x, ["conv1"])["conv1"]
    lo, hi = (0.0, 6.0) if gate == "relu6" else (-1.0, 1.0)
    assert (pre < lo).any() and (pre > hi).any() and ((pre > lo) & (pre < hi)).any()
    fast = engine.etalons(x)
    paper = engine.etalons(x, method="paper")
    assert fast.exact, fast.reason
    assert_same_map(fast.W, paper.W, "paper W vs fast W")
    np.testing.assert_allclose(paper.b, fast.b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose((paper.W * paper.x[:, None]).sum((2, 3, 4)) + paper.b, paper.out,
                               rtol=1e-5, atol=1e-5)
    pat = engine.activation_pattern(x)
    states = pat[:, :3 * 8 * 8]                              # the clamp's 3 x 8 x 8 inputs
    assert set(np.unique(states)) == {0, 1, 2}
    np.testing.assert_array_equal(states.reshape(3, 3, 8, 8),
                                  (pre > lo).astype(int) + (pre >= hi).astype(int))
    rc = engine.count_regions(data=(x.numpy(), np.zeros(3, np.int64)))
    assert rc.total == len(np.unique(pat, axis=0))


class ChannelShuffle(nn.Module):
    """ShuffleNet-v2's unit: ``x.chunk``, ``torch.transpose`` and ``channels // groups`` on
    sizes, all piecewise linear; a floor division of tensor values is not."""

    def __init__(self, divide_values=False):
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        self.divide_values = divide_values

    def forward(self, x):
        h = self.conv(x).relu()
        a, b = h.chunk(2, dim=1)
        h = torch.cat([a, b], 1)
        n, c, height, width = h.size()
        h = torch.transpose(h.view(n, 2, c // 2, height, width), 1, 2).reshape(n, c, height, width)
        if self.divide_values:
            h = h // 2
        return self.fc(torch.flatten(h, 1))


def test_channel_shuffle_is_piecewise_linear():
    engine = cpu_engine(ChannelShuffle(), TINY_SHAPE)
    assert engine.nonlinear_parts == []             # 'floordiv', 'transpose', 'chunk' before
    assert any("floordiv" in r for r in cpu_engine(ChannelShuffle(True), TINY_SHAPE).nonlinear_parts)
