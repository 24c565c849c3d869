"""The fast autograd path and the paper's Algorithm 1 compute the same etalons (W and b).

The two share nothing but the forward pass: one differentiates, the other replays recorded ReLU
masks and max-pool choices on coordinate images through a bias-free copy.
"""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets.testing import TINY_SHAPE, as_user_model, random_images, tiny_lenet, tiny_mlp
from cnn_widgets.testing.reference import (
    NORMALISATIONS,
    assert_same_map,
    cpu_engine,
    max_abs,
    reference_unit_values,
)

# (layer, units): None = the logits; conv units are (channel, y, x).
UNIT_CASES = [
    pytest.param(None, None, id="logits"),
    pytest.param("fc1", [3, 11], id="hidden-linear"),
    pytest.param("relu3", [0, 5, 9], id="hidden-relu"),
    pytest.param("conv2", [(0, 1, 1), (5, 3, 2), (2, 0, 3)], id="conv2-cyx"),
    pytest.param("relu1", [(1, 4, 4), (3, 0, 7)], id="inplace-relu1-cyx"),
    pytest.param("pool1", [(2, 1, 3)], id="pool1-cyx"),
]


def _compare(engine, x, layer, units, **paper_kw):
    fast = engine.etalons(x, layer=layer, units=units, method="fast")
    paper = engine.etalons(x, layer=layer, units=units, method="paper", **paper_kw)
    assert fast.units == paper.units and fast.layer == paper.layer
    assert_same_map(fast.W, paper.W, "W")
    # b is f(x) - <W, x> on the fast path but the zero image through the frozen subgraph on the
    # paper path: compare on the scale of the unit's values.
    scale = max(max_abs(fast.W) * max_abs(x), max_abs(fast.out), 1e-3)
    assert max_abs(fast.b - paper.b) <= 1e-5 * scale * x[0].numel() ** 0.5
    np.testing.assert_allclose(fast.out, paper.out, rtol=1e-5, atol=1e-6)
    return fast, paper


def _assert_mixed_relus(model, x, layer, **norm):
    """Guard: some ReLUs are off and some on, so Algorithm 1's masks actually matter."""
    v = reference_unit_values(model, x, layer, **norm)
    assert (v == 0).any() and (v > 0).any(), f"{layer} is all on or all off; pick other weights"


@pytest.mark.parametrize("norm", list(NORMALISATIONS), ids=list(NORMALISATIONS))
@pytest.mark.parametrize("layer,units", UNIT_CASES)
def test_tiny_lenet_inplace_relu(layer, units, norm):
    mean, std = NORMALISATIONS[norm]
    model = tiny_lenet(1, inplace=True)
    x = random_images(3, seed=2)
    _assert_mixed_relus(model, x, "relu3", mean=mean, std=std)
    engine = cpu_engine(model, TINY_SHAPE, mean=mean, std=std)
    _compare(engine, x, layer, units)


def test_paper_one_coordinate_image_at_a_time():
    """one_hot_batch=1 is Algorithm 1 literally: one forward pass per coordinate image."""
    model = tiny_lenet(4)
    engine = cpu_engine(model, TINY_SHAPE, mean=0.5, std=0.25)
    _compare(engine, random_images(1, seed=4), None, [0, 4], one_hot_batch=1)


@pytest.mark.parametrize("layer,units", [(None, None), ("relu2", [(1, 2, 2), (4, 0, 0)]),
                                         ("fc1", [2])])
def test_leaky_relu(layer, units):
    model = tiny_lenet(2, leaky=True)
    engine = cpu_engine(model, TINY_SHAPE, mean=0.2, std=0.5)
    _compare(engine, random_images(3, seed=5), layer, units)


@pytest.mark.parametrize("layer,units", [(None, None), ("bn2", [(0, 0, 0), (5, 2, 1)]),
                                         ("relu2", None)])
def test_batchnorm_eval_mode(layer, units):
    """BatchNorm with non-trivial running statistics, used in eval mode by the engine although
    the user's model sits in train mode."""
    model = as_user_model(tiny_lenet(3, batchnorm=True))
    engine = cpu_engine(model, TINY_SHAPE)
    fast, _ = _compare(engine, random_images(2, seed=6), layer, units)
    assert fast.exact


@pytest.mark.parametrize("activation", ["relu", "leaky"])
def test_mlp(activation):
    model = tiny_mlp(5, activation=activation)
    engine = cpu_engine(model, TINY_SHAPE, mean=0.3, std=0.2)
    x = random_images(2, seed=7)
    _compare(engine, x, None, None)
    _compare(engine, x, "fc2", [0, 6, 11])


def test_model_ending_with_softmax_uses_logits():
    """The paper drops the final SoftMax: the default layer is the logits, whose etalons are
    exact and computable by Algorithm 1."""
    model = tiny_lenet(6, softmax=True)
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.default_layer == "fc2"
    fast, _ = _compare(engine, random_images(2, seed=8), None, None)
    assert fast.exact, fast.reason


def _zoo_lenet():
    try:
        from cnn_widgets.zoo import LeNet
    except ImportError:
        lenet = pytest.importorskip("cnn_widgets.zoo.lenet", reason="cnn_widgets.zoo not ready")
        LeNet = getattr(lenet, "LeNet", None)
        if LeNet is None:
            pytest.skip("cnn_widgets.zoo has no LeNet yet")
    return LeNet


@pytest.mark.parametrize("norm", list(NORMALISATIONS), ids=list(NORMALISATIONS))
def test_zoo_lenet_random_init(norm):
    import torch
    LeNet = _zoo_lenet()
    torch.manual_seed(0)
    model = LeNet()
    shape = tuple(getattr(model, "input_shape", (1, 28, 28)))
    mean, std = NORMALISATIONS[norm]
    engine = cpu_engine(model, shape, mean=mean, std=std)
    x = random_images(2, shape=shape, seed=9)
    _compare(engine, x, None, None)
    conv = next(i for i in engine.layers if i.kind == "Conv2d")
    c, h, w = conv.output_shape
    _compare(engine, x[:1], conv.name, [(0, h // 2, w // 2), (c - 1, 1, w - 2)])
    fc = [i for i in engine.layers if i.kind == "Linear"]
    if len(fc) > 1:
        _compare(engine, x[:1], fc[0].name, [0, fc[0].n_units - 1])


def test_three_channels_with_per_channel_normalisation():
    """Algorithm 1 must divide each coordinate image by its own channel's std."""
    model = tiny_mlp(7, shape=(3, 8, 8))
    engine = cpu_engine(model, (3, 8, 8), mean=[0.5, 0.4, 0.3], std=[0.2, 0.5, 1.5])
    _compare(engine, random_images(2, shape=(3, 8, 8), seed=10), None, None)


def test_constant_padding_value_is_a_bias_the_paper_method_zeroes():
    """A non-zero padding constant shifts every output like a bias: Algorithm 1 must zero it on
    its bias-free copy, or W picks it up."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.ConstantPad2d(2, 0.7), torch.nn.Conv2d(1, 3, 3),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3 * 10 * 10, 4))
    engine = Engine(model, (1, 8, 8), device="cpu")
    x = torch.rand(3, 1, 8, 8)
    fast, paper = engine.etalons(x), engine.etalons(x, method="paper")
    assert fast.exact
    np.testing.assert_allclose(paper.W, fast.W, atol=1e-5 * np.abs(fast.W).max())
    np.testing.assert_allclose(paper.b, fast.b, atol=1e-4)
    assert model[0].value == 0.7                                  # the user's model keeps its pad


def test_batchnorm_without_running_statistics_is_not_exact():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2, track_running_stats=False),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))
    res = Engine(model, (1, 8, 8), device="cpu").etalons(torch.rand(2, 1, 8, 8))
    assert not res.exact and "track_running_stats=False" in res.reason
