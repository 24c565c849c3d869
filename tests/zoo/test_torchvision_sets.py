"""Fashion-MNIST read from IDX files written here (real handwriting standing in for clothes)."""
import pytest
import torch

from cnn_widgets.testing.data import write_digits_idx
from cnn_widgets.zoo import cache
from cnn_widgets.zoo.torchvision_sets import FASHION_CLASSES, lenet_fashion_mnist


def test_fashion_mnist_reads_idx_files_trains_caches_and_names_classes(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    d = write_digits_idx(tmp_path / "fm", "FashionMNIST")
    engine = lenet_fashion_mnist(tmp_path / "fm", epochs=1, limit=300, device="cpu")
    assert engine.class_names == list(FASHION_CLASSES)
    assert torch.equal(engine.dataset.labels, d.y_test)
    assert float((engine.dataset.images - d.x_test).abs().max()) <= 0.5 / 255 + 1e-6
    assert engine.model_card["recipe"]["data"]["name"] == "torchvision-FashionMNIST"
    again = lenet_fashion_mnist(tmp_path / "fm", epochs=1, limit=300, device="cpu")
    assert again.model_card["from_cache"]
    tree = again.category_tree()
    assert tree.names == FASHION_CLASSES


def test_fashion_mnist_without_files_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="download=True"):
        lenet_fashion_mnist(tmp_path / "empty")
