"""A labelled image set in the engine's input space, built from whatever the user has."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InvalidArgument


@dataclass(frozen=True)
class ImageSet:
    """images: (N, *input_shape) float32 on the CPU, in the space the engine takes (before
    mean/std normalisation); labels: (N,) int64."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield (start, images, labels) chunks."""
        for s in range(0, len(self), batch_size):
            yield s, self.images[s:s + batch_size], self.labels[s:s + batch_size]

    def first_of_each_class(self, n_classes: int) -> np.ndarray:
        """Index of the first image of every class that occurs (ascending class)."""
        labels = self.labels.numpy()
        return np.array([int(np.flatnonzero(labels == c)[0]) for c in range(n_classes)
                         if (labels == c).any()], dtype=int)


def as_image_set(data, input_shape: Sequence[int]) -> ImageSet | None:
    """Accept None, an ImageSet, a pair (images, labels) of arrays/tensors, or a map-style
    dataset whose items are (image, label). Images are reshaped to ``input_shape``."""
    if data is None or isinstance(data, ImageSet):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        images, labels = data
    else:
        items = [data[i] for i in range(len(data))]
        images = torch.stack([torch.as_tensor(np.asarray(img)) for img, _ in items])
        labels = [int(lab) for _, lab in items]
    images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    images = images.to(torch.float32).reshape(-1, *input_shape)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"dataset has {images.shape[0]} images but {labels.shape[0]} labels")
    return ImageSet(images.contiguous(), labels)


def labelled_data(engine, data=None):
    """``data`` as an ImageSet in the engine's input shape, or the engine's dataset for None."""
    data = engine.dataset if data is None else as_image_set(data, engine.input_shape)
    if data is None:
        raise InvalidArgument("the engine has no dataset; pass data=(images, labels)")
    return data
