"""Test data: an engine on labelled random images, and the digits written as MNIST-style IDX
files (for the zoo's torchvision readers, without a download)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from .models import TINY_SHAPE, random_images, tiny_lenet
from .reference import cpu_engine


def labelled_engine(n: int, model_seed: int = 0, image_seed: int = 0, classes: int = 3):
    """(engine, model): a CPU engine on ``tiny_lenet(model_seed)`` whose dataset is ``n``
    random images (``random_images(n, TINY_SHAPE, image_seed)``) labelled ``arange(n) % classes``;
    ``engine.dataset.images`` / ``.labels`` are those images and labels."""
    model = tiny_lenet(seed=model_seed)
    x, y = random_images(n, TINY_SHAPE, seed=image_seed), torch.arange(n) % classes
    return cpu_engine(model, TINY_SHAPE, dataset=(x, y)), model


def write_idx(path, array: np.ndarray) -> None:
    """Uncompressed big-endian IDX: magic 2051 for (N, 28, 28) uint8, 2049 for (N,) uint8."""
    magic = 2051 if array.ndim == 3 else 2049
    with open(path, "wb") as f:
        f.write(struct.pack(f">{1 + array.ndim}i", magic, *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_digits_idx(root, folder: str):
    """Real handwriting in torchvision's on-disk MNIST layout: the zoo's digits as 28x28 uint8
    0..255 IDX files under ``root/folder/raw`` (folder "MNIST", "FashionMNIST", ...).
    Returns the ``digits()`` data written."""
    from ..zoo import digits

    d = digits()
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, x, y in (("train", d.x_train, d.y_train), ("t10k", d.x_test, d.y_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", (x[:, 0] * 255).round().numpy())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.numpy())
    return d
