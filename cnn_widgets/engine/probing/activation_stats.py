"""How many features are active, layer by layer (the probing paper, Fig. 6 and Fig. 2).

The paper's "number of features activated" has two readings, both offered (``reading``):
- "position": a feature (channel) is active at a position when its value there is > 0; we
  count the active features at every position, the histograms are those counts over the
  positions of one image, the summary their mean as a fraction of the layer's channels.
  Max-pooling raises this fraction (a pooled position is active if any of its 4 is).
- "anywhere": a feature is active in an image when its value is > 0 at some position; one
  count per image and layer. Max-pooling that covers the whole map leaves it unchanged, which
  is the paper's "remains approximately the same in percentage after pooling".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.chunks import spans
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.types import Images, Layers

# Keep the captured activations of one chunk of images under this many floats.
_CHUNK_FLOATS = 20_000_000


@dataclass(frozen=True)
class ActivationStats:
    """Active-feature counts of N images at L layers.

    counts: layer -> (N, H, W) int32, the number of active channels at every position (a layer
    without a spatial grid has one position, (N, 1, 1)); with reading "anywhere", (N, 1, 1):
    the channels active somewhere; channels: layer -> its channel count.
    """
    layers: tuple[str, ...]
    channels: dict[str, int]
    counts: dict[str, np.ndarray]
    reading: str = "position"
    source: str = "scan"        # "scan", or the path of the activation index that answered

    @property
    def fraction(self) -> np.ndarray:
        """(N, L): mean fraction of active features per position, per image and layer."""
        return np.stack([self.counts[n].reshape(len(self.counts[n]), -1).mean(1)
                         / self.channels[n] for n in self.layers], axis=1)

    @property
    def mean(self) -> np.ndarray:
        """(L,): the fraction averaged over the images."""
        return self.fraction.mean(0)

    @property
    def std(self) -> np.ndarray:
        """(L,): its spread (standard deviation) over the images."""
        return self.fraction.std(0)

    def histogram(self, layer: str, image: int = 0) -> np.ndarray:
        """(channels + 1,): how many positions of ``image`` have 0, 1, ..., C active features."""
        return np.bincount(self.counts[layer][image].ravel(), minlength=self.channels[layer] + 1)


@dataclass(frozen=True)
class ActivationSlices:
    """Fig. 2: maps (k, H, W) of the k channels of ``layer`` with the largest mean rectified
    activation (mean of max(a, 0)) at one image, strongest first; activation: the whole layer
    output (C, H, W)."""
    layer: str
    channels: np.ndarray
    maps: np.ndarray
    activation: np.ndarray

    def strongest_channel(self, y: int, x: int) -> int:
        """The channel with the largest activation at position (y, x)."""
        return int(np.argmax(self.activation[:, y, x]))

    def strongest_position(self) -> tuple[int, int, int]:
        """(channel, y, x) of the largest activation in the layer."""
        c, y, x = np.unravel_index(int(np.argmax(self.activation)), self.activation.shape)
        return int(c), int(y), int(x)


def default_layers(engine) -> tuple[str, ...]:
    """The rectified outputs: every ReLU layer (and max-pool, which keeps the sign pattern)."""
    names = tuple(i.name for i in engine.layers if i.kind in ("ReLU", "MaxPool2d"))
    return names or tuple(engine.layer_names)


READINGS = ("position", "anywhere")


def activation_stats(engine: ModelHost, x: Images, layers: Layers = None,
                     control: Control = NO_CONTROL, reading: str = "position") -> ActivationStats:
    """Active-feature counts of every image in ``x`` at ``layers`` (default:
    :func:`default_layers`); reading: "position" or "anywhere" (module docstring).
    In the chunks of :func:`~cnn_widgets.engine.core.chunks.spans` (the first is one image):
    ``control.step`` after each, ``control.partial`` with the counts of the images done so
    far."""
    if reading not in READINGS:
        raise InvalidArgument(f"reading must be one of {READINGS}; got {reading!r}")
    layers = check.layer_list(engine, layers) or default_layers(engine)
    x = engine.prepare(x)
    per_image = sum(engine.layer(n).n_units for n in layers)
    most = max(1, min(engine.batch_size, _CHUNK_FLOATS // max(per_image, 1)))
    last = max(layers, key=engine.layer_names.index)
    shapes = {n: engine.layer(n).output_shape for n in layers}
    channels = {n: int(shape[0]) for n, shape in shapes.items()}
    counts = {n: np.zeros((len(x), *(shape[1:] if len(shape) == 3 and reading == "position"
                                     else (1, 1))), np.int32) for n, shape in shapes.items()}

    def first(k: int) -> ActivationStats:      # views: the rows done never change again
        return ActivationStats(layers=layers, channels=channels,
                               counts={n: c[:k] for n, c in counts.items()}, reading=reading)
    with engine.borrow(), torch.no_grad():
        for s, e in spans(len(x), most):
            got = hooks.run_capturing(engine.model, engine.normalize(x[s:e]), layers,
                                      stop_after=last)
            for n in layers:
                a = got[n]
                a = a.reshape(a.shape[0], a.shape[1], -1) if a.dim() > 2 else a[:, :, None]
                on = a > 0
                if reading == "anywhere":
                    on = on.any(2, keepdim=True)
                counts[n][s:e] = on.sum(1, dtype=torch.int32).reshape(
                    e - s, *counts[n].shape[1:]).cpu().numpy()
            if e < len(x):
                control.partial(first(e))
            control.step(e, len(x), "activation statistics")
            engine.hand_over()
    return first(len(x))


def activation_slices(engine: ModelHost, x: Images, layer: str, k: int = 8) -> ActivationSlices:
    """The ``k`` channels of ``layer`` with the largest mean rectified activation at one image
    ``x`` (for a layer before its ReLU, what the ReLU lets through)."""
    k = check.count("k", k)
    info = engine.layer(layer)
    if len(info.output_shape) != 3:
        raise InvalidArgument(f"layer {info.name!r} has output shape {info.output_shape}; activation "
                         "slices need a (channels, H, W) layer")
    a = engine.activations(x, [info.name])[info.name]
    if a.shape[0] != 1:
        raise InvalidArgument(f"activation slices take one image; got {a.shape[0]}")
    order = np.argsort(-np.maximum(a[0], 0).mean((1, 2)), kind="stable")[:k]
    return ActivationSlices(layer=info.name, channels=order, maps=a[0][order], activation=a[0])
