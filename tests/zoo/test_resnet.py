"""The CIFAR-style ResNets: the digits one (trained by the package, deterministic, cached) and
ResNet-18 on CIFAR-10 read through torchvision from files the test writes."""
import pickle

import numpy as np
import pytest
import torch
from test_two_class import unchecked_cifar, write_cifar
from torch import nn

from cnn_widgets.zoo import cache, resnet
from cnn_widgets.zoo.resnet import (
    CIFAR_CLASSES,
    DIGITS_RECIPE,
    CifarResNet,
    resnet18_cifar10,
    resnet_digits,
)


@pytest.fixture(scope="session")
def trained():
    """The digits ResNet with the full recipe, from the zoo's cache (trained once if absent)."""
    return resnet_digits()


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resnet_digits_is_a_cifar_style_resnet_that_learnt_the_digits(trained):
    card = trained.model_card
    assert card["test_accuracy"] >= 0.95 and card["recipe"]["train"] == DIGITS_RECIPE
    assert trained.input_shape == (1, 28, 28) and len(trained.dataset) == 360
    model = trained.model
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    # torchvision's BasicBlock: one ReLU module called twice per block, as in ResNet-18
    assert type(model.layer1[0]).__module__ == "torchvision.models.resnet"
    assert [trained.layer(f"layer{i}.0.conv2").output_shape for i in (1, 2, 3, 4)] == [
        (8, 28, 28), (16, 14, 14), (32, 7, 7), (64, 4, 4)]
    assert trained.layer("avgpool").output_shape == (64, 1, 1)
    again = resnet_digits()
    assert again.model_card["from_cache"] and states_equal(trained.model, again.model)


def test_training_is_deterministic_and_the_recipe_is_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(resnet, "DIGITS_RECIPE", {**DIGITS_RECIPE, "epochs": 1})
    a = resnet_digits()
    b = resnet_digits(retrain=True)
    assert not a.model_card["from_cache"] and not b.model_card["from_cache"]
    assert states_equal(a.model, b.model)                  # bitwise, retrained from the seed
    full = {**a.model_card["recipe"], "train": DIGITS_RECIPE}
    assert a.model_card["cache_file"] != str(cache.cache_path("resnet-digits", full))
    assert resnet_digits().model_card["from_cache"]


def test_resnet18_cifar10_reads_torchvision_files_trains_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    folder = write_cifar(tmp_path / "cifar", n=10)
    unchecked_cifar(monkeypatch)
    e = resnet18_cifar10(tmp_path / "cifar", epochs=1, limit=12, device="cpu")
    card = e.model_card
    assert not card["from_cache"] and card["recipe"]["data"]["n_train"] == 12
    assert e.class_names == list(CIFAR_CLASSES) and e.input_shape == (3, 32, 32)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    np.testing.assert_array_equal(np.rint(e.dataset.images.numpy().reshape(10, -1) * 255),
                                  raw["data"])
    assert e.dataset.labels.tolist() == raw["labels"]
    torch.testing.assert_close(e.mean.flatten().cpu(), torch.tensor(resnet.CIFAR_MEAN))
    # ResNet-18's stages (two blocks each) and the 4x4 last stage of the CIFAR-style stem
    assert isinstance(e.model, CifarResNet) and [len(e.model.layer1), len(e.model.layer4)] == [2, 2]
    assert e.layer("layer4.1.conv2").output_shape == (512, 4, 4)
    assert e.layer(e.default_layer_for("gradcam")).output_shape[1:] == (4, 4)
    assert not torch.are_deterministic_algorithms_enabled()        # restored after training
    assert not torch.backends.cudnn.deterministic
    again = resnet18_cifar10(tmp_path / "cifar", epochs=1, limit=12)
    assert again.model_card["from_cache"] and states_equal(e.model, again.model)


def test_cifar_resnet_without_the_files_says_how_to_get_them(tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        resnet18_cifar10(tmp_path / "nothing")
