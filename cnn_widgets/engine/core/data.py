"""Images as they enter the engine, and a labelled image set in the engine's input space.

One rule everywhere images come in (``ModelHost.prepare``, datasets, ``data=`` arguments):
- layout (N, C, H, W), one image (C, H, W), and for one-channel models (H, W) (and, in a data
  set, a stack (N, H, W)); channels-last (N, H, W, C) / (H, W, C) is converted with a warning
  when it matches the input shape transposed. When both readings fit (C == H == W) the input
  is read as (N, C, H, W). Any other shape is an :class:`InputShapeError`, never a reshape;
- uint8 images are 0..255 and are scaled to [0, 1] (divided by 255); other dtypes are taken
  as they are (as float32);
- tensors that require grad are detached; the result is a new tensor outside inference mode.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import torch

from .errors import InputShapeError, InvalidArgument, InvalidType
from .grad import outside_inference_mode

if TYPE_CHECKING:       # types.py names ImageSet: for the checker only
    from .types import Data, Images, Labels, MapDataset


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


def to_tensor(x) -> torch.Tensor:
    """A tensor, numpy array, PIL image or nested list as a detached tensor (no copy if it
    already is one)."""
    if torch.is_tensor(x):
        return x.detach()
    if isinstance(x, (list, tuple)) and x and all(torch.is_tensor(t) for t in x):
        return torch.stack([t.detach() for t in x])
    return torch.as_tensor(np.asarray(x))


def as_images(x, input_shape: Sequence[int], *, stack: bool = False) -> torch.Tensor:
    """``x`` as a float32 (N, *input_shape) tensor by the rules in the module docstring, on
    x's device. ``stack``: also read (N, H, W) as N one-channel images (data sets; for a
    single input a 1-channel model's (3, H, W) is more likely an RGB image than 3 images)."""
    t = to_tensor(x)
    want = tuple(int(s) for s in input_shape)
    c, h, w = want
    shape, last = tuple(t.shape), (h, w, c)
    if shape == want or (c == 1 and shape == (h, w)):
        t = t.reshape(1, *want)
    elif stack and c == 1 and t.dim() == 3 and shape[1:] == (h, w):
        t = t[:, None]
    elif shape == last or (t.dim() == 4 and shape[1:] == last and shape[1:] != want):
        if c > 1:
            warnings.warn(f"images of shape {shape} read as channels-last (H, W, C) = {last} "
                          f"and converted to the model's (C, H, W) = {want}", stacklevel=3)
        t = (t[None] if t.dim() == 3 else t).permute(0, 3, 1, 2)
    elif t.dim() != 4 or shape[1:] != want:
        raise InputShapeError(f"expected one image of shape {want} or a batch (N, {c}, {h}, {w})"
                              f"{' or (N, H, W)' if stack and c == 1 else ''}; got {shape}"
                              f"{_hint(t, want, stack)}")
    if t.dtype == torch.uint8:
        t = t.to(torch.float32) / 255.0
    with outside_inference_mode():
        return t.to(torch.float32, copy=True).contiguous()


def _hint(t, want, stack) -> str:
    shape = tuple(t.shape)
    if t.dim() in (3, 4) and shape[-2:] == want[1:]:
        return (f": the model takes {want[0]} channel(s), this input has {shape[-3]}"
                + (" (for a stack of 1-channel images use x[:, None])"
                   if t.dim() == 3 and want[0] == 1 and not stack else ""))
    return ""


@overload
def as_image_set(data: None, input_shape: Sequence[int], n_classes: int | None = None,
                 unlabelled: bool = False) -> None: ...


@overload
def as_image_set(data: ImageSet | tuple[Images, Labels] | MapDataset, input_shape: Sequence[int],
                 n_classes: int | None = None, unlabelled: bool = False) -> ImageSet: ...


def as_image_set(data: Data, input_shape: Sequence[int], n_classes: int | None = None,
                 unlabelled: bool = False) -> ImageSet | None:
    """Accept None, an ImageSet, a pair (images, labels) of arrays/tensors, or a map-style
    dataset whose items are (image, label); images by :func:`as_images` (on the CPU), labels
    by :func:`as_labels` (with ``n_classes``: each a class of the model, or -1 for an image
    without a label where ``unlabelled``)."""
    if data is None:
        return data
    if isinstance(data, ImageSet):
        return data if n_classes is None else ImageSet(
            data.images, as_labels(data.labels, n_classes, unlabelled))
    if isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        images, labels = data
    else:
        items = [data[i] for i in range(len(data))]
        if not items:
            raise InvalidArgument("the data set is empty; it needs at least one image")
        images = torch.stack([to_tensor(img) for img, _ in items])
        labels = [lab.item() if hasattr(lab, "item") and np.size(lab) == 1 else lab
                  for _, lab in items]
    if len(images) == 0:
        raise InvalidArgument("the data set is empty (0 images); it needs at least one image")
    images = as_images(images, input_shape, stack=True).cpu()
    labels = as_labels(labels, n_classes, unlabelled)
    if images.shape[0] != labels.shape[0]:
        raise InvalidArgument(f"dataset has {images.shape[0]} images but {labels.shape[0]} labels")
    return ImageSet(images, labels)


def as_labels(labels, n_classes: int | None = None, unlabelled: bool = False) -> torch.Tensor:
    """(N,) int64 CPU labels from integers or whole-valued floats (3.0; never 3.7 truncated
    or NaN); with ``n_classes``, each must be a class, 0 <= label < n_classes, or, where
    ``unlabelled``, -1: an image without a label (the engine's dataset may hold such)."""
    try:
        t = to_tensor(labels).detach().cpu().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidType(f"labels must be integers (class indices); got {_short(labels)}") from None
    if t.dtype == torch.bool or t.is_complex():
        raise InvalidType(f"labels must be integers (class indices); got dtype {t.dtype}")
    if t.is_floating_point():
        d = t.double()
        bad = ~torch.isfinite(d) | (d != d.round()) | (d.abs() >= 2.0 ** 62)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise InvalidArgument(f"labels must be whole numbers (class indices); "
                                  f"{int(bad.sum())} of {len(d)} are not: the first, at index "
                                  f"{i}, is {float(d[i])!r}")
    t = t.to(torch.int64)
    if n_classes is not None:
        bad = (t < (-1 if unlabelled else 0)) | (t >= n_classes)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise InvalidArgument(
                f"{int(bad.sum())} label(s) are not classes of the model: expected 0 <= label < "
                f"{n_classes}{' (or -1: no label)' if unlabelled else ''}; the first, at index "
                f"{i}, is {int(t[i])}" + ("; -1 marks an image without a label, and this call "
                                          "needs labels" if int(t[i]) == -1 else ""))
    return t.clone()            # never a view of the caller's array


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def labelled_data(engine, data=None) -> ImageSet:
    """``data`` as an ImageSet in the engine's input shape, or the engine's dataset for None;
    every label must be a class of the model."""
    data = as_image_set(engine.dataset if data is None else data, engine.input_shape,
                        engine.n_classes)
    if data is None:
        raise InvalidArgument("this call needs data: the engine has no dataset; pass "
                              "data=(images, labels)")
    return data
