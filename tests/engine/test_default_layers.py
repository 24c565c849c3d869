"""One default-layer rule: Grad-CAM and the trees default to the last *spatial* layer (a (C, H, W)
output with more than one position), never to a global pool; Grad-CAM refuses a 1x1 layer."""
import numpy as np
import pytest
import torch
from torch import nn

from cnn_widgets import Engine
from cnn_widgets.engine import NoSuitableLayer
from cnn_widgets.engine.core.selection import is_spatial, spatial_layers
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.zoo.resnet import CifarResNet


def resnet_engine(size=8, stages=4):
    """A random CIFAR-style ResNet whose last stage is 1x1 at ``size`` 8 (8, 4, 2, 1), as
    torchvision's ResNet-18 at 32x32: the last spatial layers are in ``layer3``."""
    torch.manual_seed(0)
    model = CifarResNet((1,) * stages, (4, 6, 8, 10)[:stages], in_channels=1, n_classes=3)
    x = torch.rand(12, 1, size, size, generator=torch.Generator().manual_seed(1))
    return Engine(model, (1, size, size), dataset=(x, torch.arange(12) % 3), device="cpu")


def later_layers_are_not_spatial(engine, name):
    names = engine.layer_names
    return not any(is_spatial(engine.layer(n).output_shape) for n in names[names.index(name) + 1:])


def test_grad_cam_and_the_trees_default_to_the_last_spatial_layer_not_the_pools():
    e = resnet_engine()
    assert e.layer("layer4.0.conv2").output_shape == (10, 1, 1)
    for purpose in ("gradcam", "features"):
        name = e.default_layer_for(purpose)
        assert name.startswith("layer3.") and e.layer(name).output_shape == (8, 2, 2)
        assert later_layers_are_not_spatial(e, name)
    x = e.dataset.images[:4]
    cam = e.gradcam(x, classes=[0, 1, 2])
    assert cam.layer == e.default_layer_for("gradcam")
    # a 2x2 map bilinearly resized is not constant (the 1x1 avgpool gave constant maps)
    assert cam.maps.reshape(12, -1).std(-1).max() > 0
    assert e.category_tree().layer == e.default_layer_for("features")
    assert e.prediction_tree(0).layer == e.default_layer_for("features")


def test_torchvision_resnet18_at_32px_defaults_to_layer3_and_refuses_avgpool():
    """The issue's case: torchvision's ResNet-18 at 32x32 has a 1x1 layer4."""
    import torchvision

    torch.manual_seed(0)
    e = Engine(torchvision.models.resnet18(num_classes=4), (3, 32, 32), device="cpu")
    name = e.default_layer_for("gradcam")
    assert name.startswith("layer3.") and e.layer(name).output_shape == (256, 2, 2)
    assert e.layer("layer4.1.conv2").output_shape == (512, 1, 1)
    with pytest.raises(NoSuitableLayer) as info:
        e.gradcam(random_images(1, (3, 32, 32)), layer="layer4.1.conv2")
    msg = str(info.value)
    assert "'layer4.1.conv2' has shape (512, 1, 1)" in msg and name in msg
    assert "layer4.1.conv2," not in msg and "avgpool" not in msg     # names only spatial layers


@pytest.mark.parametrize("layer", ["avgpool", "fc", "flatten"])
def test_grad_cam_refuses_a_layer_without_positions_naming_the_spatial_layers(layer):
    e = resnet_engine()
    with pytest.raises(NoSuitableLayer, match=r"\(C, h, w\)") as info:
        e.gradcam(e.dataset.images[:1], layer=layer)
    listed = str(info.value).split("Spatial layers: ")[1].split(", ")
    assert listed == spatial_layers(e) and "layer3.0.conv2" in listed
    assert isinstance(info.value, ValueError)


def test_a_row_of_positions_is_spatial_and_a_model_without_positions_is_refused():
    wide = Engine(nn.Sequential(nn.Conv2d(1, 2, (8, 3), padding=(0, 1)), nn.ReLU(),
                                nn.Flatten(), nn.Linear(16, 2)), TINY_SHAPE, device="cpu")
    assert wide.layer("1").output_shape == (2, 1, 8)
    assert wide.default_layer_for("gradcam") == "1"
    assert wide.gradcam(random_images(1)).maps.shape == (1, 2, 8, 8)
    pooled = Engine(nn.Sequential(nn.Conv2d(1, 2, 8), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2)),
                    TINY_SHAPE, device="cpu")
    for purpose in ("gradcam", "features"):
        with pytest.raises(NoSuitableLayer, match="0, 1, 2, 3"):
            pooled.default_layer_for(purpose)


def test_chains_keep_their_defaults():
    e = Engine(tiny_lenet(0), TINY_SHAPE, device="cpu")
    assert e.default_layer_for("gradcam") == e.default_layer_for("features") == "pool2"
    assert e.default_layer_for("probing") == "conv2" and e.default_layer_for("encoder") == "pool2"
    assert e.default_layer_for("gradcam", "conv1") == "conv1"
    np.testing.assert_array_equal(e.gradcam(random_images(1), layer="conv1").maps.shape,
                                  (1, 1, 8, 8))
