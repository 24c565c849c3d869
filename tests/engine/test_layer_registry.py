"""The layer registry: leaf modules in forward order with per-sample output shapes; the default
layer is the logits (the layer before a final softmax)."""
from collections import OrderedDict

import numpy as np
import pytest
from torch import nn

from cnn_widgets.testing import (
    TINY_LENET_LAYERS,
    TINY_SHAPE,
    ReorderedNet,
    fig2_mlp,
    random_images,
    tiny_lenet,
)
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def test_tiny_lenet_registry_matches_hand_derived_shapes():
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    got = [(i.name, i.kind, i.output_shape) for i in engine.layers]
    assert got == list(TINY_LENET_LAYERS)
    assert engine.layer_names == [n for n, _, _ in TINY_LENET_LAYERS]
    assert engine.layer("conv2").n_units == 6 * 4 * 4
    assert engine.n_classes == 5 and engine.class_names == ["0", "1", "2", "3", "4"]


def test_registry_follows_forward_order_not_attribute_order():
    engine = cpu_engine(ReorderedNet(0), TINY_SHAPE)
    assert engine.layer_names == ["flat", "body", "relu", "head"]
    assert [i.output_shape for i in engine.layers] == [(64,), (12,), (12,), (5,)]
    assert engine.default_layer == "head"


def test_activations_have_registry_shapes():
    model = tiny_lenet(1)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(3)
    acts = engine.activations(x, engine.layer_names)
    for info in engine.layers:
        assert acts[info.name].shape == (3, *info.output_shape), info.name
    # captured before the in-place relu1 overwrote conv1's output
    np.testing.assert_allclose(acts["conv1"].reshape(3, -1),
                               reference_unit_values(model, x, "conv1"), rtol=1e-6, atol=1e-6)
    assert (acts["conv1"] < 0).any()


@pytest.mark.parametrize("final", [nn.Softmax(dim=1), nn.LogSoftmax(dim=1)])
def test_default_layer_skips_final_softmax(final):
    base = tiny_lenet(0, softmax=False)
    model = nn.Sequential(OrderedDict([*base.named_children(), ("final", final)]))
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.layer_names[-1] == "final"
    assert engine.default_layer == "fc2"
    assert engine.layer().name == "fc2"
    et = engine.etalons(random_images(1))
    assert et.layer == "fc2" and len(et.units) == 5


def test_default_layer_is_last_without_softmax():
    assert cpu_engine(tiny_lenet(0), TINY_SHAPE).default_layer == "fc2"
    engine = cpu_engine(fig2_mlp([[1, 0, 0], [0, 1, 0]], [0, 0, 0], [[1, 0], [0, 1], [0, 0]],
                                 [0, 0]), (1, 1, 2))
    assert engine.layer_names == ["flatten", "hidden", "relu_y", "out", "relu_z"]
    assert engine.default_layer == "relu_z"


def test_flat_and_tuple_units_name_the_same_unit():
    """Flat indices are row-major into the layer's (c, y, x) output."""
    engine = cpu_engine(tiny_lenet(2), TINY_SHAPE)
    x = random_images(1, seed=3)
    a = engine.etalons(x, layer="conv2", units=[1 * 16 + 2 * 4 + 3])
    b = engine.etalons(x, layer="conv2", units=(1, 2, 3))
    assert a.units == b.units == ((1, 2, 3),)
    np.testing.assert_array_equal(a.W, b.W)
    ref = reference_unit_values(tiny_lenet(2), x, "conv2").reshape(1, 6, 4, 4)[0, 1, 2, 3]
    np.testing.assert_allclose(a.out[0, 0], ref, rtol=1e-6)


def test_piecewise_linear_models_have_no_nonlinear_parts():
    assert cpu_engine(tiny_lenet(0), TINY_SHAPE).nonlinear_parts == []
    assert cpu_engine(tiny_lenet(0, leaky=True, batchnorm=True), TINY_SHAPE).nonlinear_parts == []


def test_module_called_twice_gets_one_layer_per_call():
    """ReusedReLUNet calls ``relu`` twice: ``relu`` is the first call, ``relu:1`` the second,
    each with its own shape and output (the old registry listed only the first call)."""
    import torch

    from cnn_widgets.testing import ReusedReLUNet
    model = ReusedReLUNet(0)
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.layer_names == ["conv1", "relu", "pool", "conv2", "relu:1", "fc"]
    assert engine.layer("relu").output_shape == (3, 8, 8)
    assert engine.layer("relu:1").output_shape == (3, 4, 4)
    x = random_images(2)
    acts = engine.activations(x, ["relu", "relu:1", "conv2"])
    assert acts["relu"].shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(acts["relu:1"], np.maximum(acts["conv2"], 0))
    with torch.no_grad():
        second = torch.relu(model.conv2(model.pool(torch.relu(model.conv1(x)))))
    np.testing.assert_allclose(acts["relu:1"], second.numpy(), rtol=1e-6, atol=1e-6)
    assert engine.gate_layers == ["relu", "pool", "relu:1"]
