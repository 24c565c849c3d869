"""The two-class digits model: trained deterministically, cached, the right data."""
import torch

from cnn_widgets.zoo import cache, digits, two_digits
from cnn_widgets.zoo.two_class import other_digits


def test_two_digits_trains_caches_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setenv(cache.SHIPPED_ENV, "0")   # this test trains: not the shipped weights
    trained = two_digits((3, 8))
    card = trained.model_card
    assert not card["from_cache"] and card["test_accuracy"] >= 0.9
    assert trained.class_names == ["3", "8"] and trained.n_classes == 2
    d = digits()
    keep = (d.y_test == 3) | (d.y_test == 8)
    assert torch.equal(trained.dataset.images, d.x_test[keep])
    assert torch.equal(trained.dataset.labels, (d.y_test[keep] == 8).long())
    loaded = two_digits((3, 8))
    assert loaded.model_card["from_cache"]
    sa, sb = trained.model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x, y = other_digits((3, 8))
    assert len(x) + keep.sum() == len(d.y_test) and not ((y == 3) | (y == 8)).any()


def test_two_digits_seed_zero_is_the_default_and_another_seed_trains_its_own(tmp_path, monkeypatch):
    default = two_digits((3, 8))
    zero = two_digits((3, 8), seed=0)
    assert zero.model_card["recipe"] == default.model_card["recipe"]
    assert all(torch.equal(p, q) for p, q in zip(zero.model.parameters(), default.model.parameters()))
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    one = two_digits((3, 8), seed=1)
    assert one.model_card["recipe"]["train"]["seed"] == 1 and one.model_card["test_accuracy"] >= 0.9
    assert not all(torch.equal(p, q) for p, q in zip(one.model.parameters(), default.model.parameters()))
    again = two_digits((3, 8), seed=1)
    assert again.model_card["from_cache"]
    assert all(torch.equal(p, q) for p, q in zip(one.model.parameters(), again.model.parameters()))


def write_cifar(root, n=24, seed=0):
    """A tiny CIFAR-10 in the python pickle format torchvision reads (data_batch_1..5,
    test_batch, batches.meta); "dogs" (class 5) have a bright red channel. torchvision checks
    the real files' MD5 sums: tests read these through :func:`unchecked_cifar`."""
    import pickle

    import numpy as np

    from cnn_widgets.zoo.resnet import CIFAR_CLASSES
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in np.arange(n) % 10]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[:, :1024] = np.where(np.array(labels)[:, None] == 5, 250, data[:, :1024])
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR_CLASSES)}, f, protocol=2)
    return folder


def unchecked_cifar(monkeypatch):
    """torchvision's CIFAR10 accepts the files of :func:`write_cifar` (it checks only that
    they exist, not their MD5 sums)."""
    import os

    import torchvision.datasets.cifar as cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def test_cifar_two_class_reads_through_torchvision_trains_the_cifar_resnet18_and_caches(
        tmp_path, monkeypatch):
    import pickle

    import numpy as np
    import pytest

    from cnn_widgets.engine import NoSuitableLayer
    from cnn_widgets.zoo.two_class import cifar_two_class, other_cifar, read_cifar10
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="download=True"):
        read_cifar10(tmp_path / "nothing")
    folder = write_cifar(tmp_path / "cifar", n=10)
    with pytest.raises(RuntimeError, match="corrupted"):    # torchvision checks the real MD5s
        read_cifar10(tmp_path / "cifar")
    unchecked_cifar(monkeypatch)
    x_train, y_train, x_test, y_test = read_cifar10(tmp_path / "cifar")
    assert x_train.shape == (50, 3, 32, 32) and x_test.shape == (10, 3, 32, 32)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    np.testing.assert_allclose(x_test.numpy().reshape(10, -1) * 255, raw["data"], atol=1e-3)
    assert y_test.tolist() == raw["labels"]
    e = cifar_two_class(tmp_path / "cifar", ("cat", "dog"), epochs=1, device="cpu")
    assert e.class_names == ["cat", "dog"] and e.input_shape == (3, 32, 32)
    assert (e.dataset.labels.numpy() == (y_test[(y_test == 3) | (y_test == 5)] == 5).numpy()).all()
    assert not e.model_card["from_cache"] and e.model_card["classes"] == (3, 5)
    # the CIFAR-style ResNet-18: its last stage is 4x4, so Grad-CAM has positions to show
    assert e.layer("layer4.1.conv2").output_shape == (512, 4, 4)
    cam = e.gradcam(e.dataset.images[:2])
    assert e.layer(cam.layer).output_shape[1:] == (4, 4)
    assert cam.maps.reshape(4, -1).std(-1).max() > 0         # not all constant (as at 1x1)
    with pytest.raises(NoSuitableLayer, match="layer4.1.conv2"):
        e.gradcam(e.dataset.images[:1], layer="avgpool")
    assert cifar_two_class(tmp_path / "cifar", ("cat", "dog"), epochs=1).model_card["from_cache"]
    x, y = other_cifar(tmp_path / "cifar", ("cat", "dog"))
    assert len(x) == 10 - len(e.dataset) and not ((y == 3) | (y == 5)).any()
    with pytest.raises(ValueError, match="airplane"):
        cifar_two_class(tmp_path / "cifar", ("cat", "wolf"))
