"""Fashion-MNIST read from IDX files written here (real handwriting standing in for clothes)."""
import struct

import numpy as np
import pytest
import torch

from cnn_widgets.zoo import cache, digits
from cnn_widgets.zoo.torchvision_sets import FASHION_CLASSES, lenet_fashion_mnist


def write_idx(path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    with open(path, "wb") as f:
        f.write(struct.pack(f">{1 + array.ndim}i", magic, *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_trains_caches_and_names_classes(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    d = digits()
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, x, y in (("train", d.x_train, d.y_train), ("t10k", d.x_test, d.y_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", (x[:, 0] * 255).round().numpy())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.numpy())
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
