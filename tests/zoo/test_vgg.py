"""The probing paper's models: VGG-16 (random init offline; ImageNet weights read from the torch
cache, tested on a checkpoint this test writes) and the small VGG trained on the digits."""
import pytest
import torch

from cnn_widgets.zoo import cache, vgg
from cnn_widgets.zoo.vgg import PAPER_LAYER_13, vgg16, vgg16_checkpoint, vgg_digits


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv(cache.SHIPPED_ENV, "0")   # these tests train: not the shipped weights
    return tmp_path / "cache"


def test_vgg16_random_offline_then_weights_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = vgg16_checkpoint()
    assert str(path).startswith(str(tmp_path / "torch")) and path.name == "vgg16-397923af.pth"
    engine = vgg16(size=64)                      # small photos: the test is about the weights
    assert engine.model_card["weights"] == "random" and "random init" in engine.model_card["name"]
    assert engine.input_shape == (3, 64, 64) and len(engine.dataset) == 8
    assert engine.dataset.images.shape == (8, 3, 64, 64)
    assert engine.layer(PAPER_LAYER_13).kind == "Conv2d"
    assert engine.layer(PAPER_LAYER_13).output_shape == (512, 4, 4)
    assert len(engine.class_names) == 1000 and engine.class_names[281] == "tabby"
    torch.testing.assert_close(engine.mean.flatten().cpu(), torch.tensor([0.485, 0.456, 0.406]))
    state = engine.model.state_dict()
    state["features.0.bias"] = torch.arange(64, dtype=torch.float32)     # a marker
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    del engine, state
    loaded = vgg16(size=64)                      # pretrained=None: found in the cache
    assert loaded.model_card["weights"] == "pretrained"
    assert loaded.model_card["checkpoint"] == str(path)
    assert torch.equal(loaded.model.features[0].bias, torch.arange(64, dtype=torch.float32))


def test_vgg_digits_trains_and_caches(cache_root):
    """Training is deterministic (train_classifier's own tests); here: the recipe reaches 90%
    and a second call loads the same weights from the cache."""
    engine = vgg_digits()
    card = engine.model_card
    assert not card["from_cache"] and card["test_accuracy"] >= 0.9
    assert engine.layer("features.10").output_shape == (32, 7, 7)
    again = vgg_digits()
    assert again.model_card["from_cache"]
    sa, sb = engine.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(p, q) for p, q in zip(vgg.fresh_digits_vgg(0).parameters(),
                                                 vgg.fresh_digits_vgg(0).parameters()))
