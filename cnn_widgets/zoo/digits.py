"""Offline handwritten digits shaped like MNIST, from scikit-learn's bundled 8x8 set."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)   # fields are tensors: keep identity equality and hash
class DigitsData:
    """x_*: float32 (N, 1, 28, 28) in [0, 1], ink bright on black; y_*: int64 (N,) in 0..9.
    train_index / test_index: int64 row indices into ``sklearn.datasets.load_digits()``."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_index: np.ndarray
    test_index: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES

    def test_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the test split, the form ``Engine(dataset=...)`` takes."""
        return self.x_test, self.y_test

    def train_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the train split."""
        return self.x_train, self.y_train


def to_mnist_frame(images_8x8: np.ndarray) -> torch.Tensor:
    """(N, 8, 8) values 0..16 -> float32 (N, 1, 28, 28) in [0, 1]: bilinear resize to 20x20,
    then 4 px of zero padding on every side (MNIST keeps digits in a centred 20x20 box)."""
    x = torch.as_tensor(np.asarray(images_8x8, dtype=np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(x, (4, 4, 4, 4)).clamp_(0.0, 1.0).contiguous()


def digits() -> DigitsData:
    """The 1797 scikit-learn digits in MNIST framing, with a fixed stratified 80/20 split
    (1437 train, 360 test). Takes well under a second; nothing is cached."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    index = np.arange(len(raw.target))
    train_index, test_index = train_test_split(index, test_size=TEST_FRACTION,
                                               stratify=raw.target, random_state=SPLIT_SEED)
    x = to_mnist_frame(raw.images)
    y = torch.as_tensor(raw.target, dtype=torch.int64)
    tr, te = torch.as_tensor(train_index), torch.as_tensor(test_index)
    return DigitsData(x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
                      train_index=train_index.astype(np.int64),
                      test_index=test_index.astype(np.int64))
