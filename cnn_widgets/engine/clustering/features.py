"""Feature maps of a layer over a set of images, in chunks (what both trees and the embedding
cluster), and the one long product of the trees' distances, in blocks of rows. A chunk never
holds more than a batch; it starts at one image and doubles while twice as many would take
at most ``CHUNK_S`` (:mod:`~cnn_widgets.engine.core.chunks`)."""
from __future__ import annotations

import numpy as np

from ..core.chunks import spans
from ..core.control import NO_CONTROL, Control

GRAM_ROWS = 64       # rows of a Gram matrix between two stop checks


def features(engine, images, layer: str, control: Control = NO_CONTROL,
             done: int = 0, total: int | None = None, ramp: bool = True) -> np.ndarray:
    """(N, *output_shape) float32 output of ``layer`` for images (N, *input_shape), in the
    chunks of :func:`spans`."""
    total = len(images) if total is None else total
    out = []
    for s, e in spans(len(images), engine.batch_size, ramp):
        out.append(engine.activations(images[s:e], [layer])[layer])
        control.step(done + e, total, f"features of {layer}")
    return np.concatenate(out) if out else np.zeros((0, *engine.layer(layer).output_shape),
                                                    np.float32)


def gram(a: np.ndarray, control: Control = NO_CONTROL) -> np.ndarray:
    """(N, D) -> (N, N) ``a @ a.T`` in blocks of :data:`GRAM_ROWS` rows with a stop check
    between them (N² D multiply-adds: 1000 classes of a 100k-wide layer take seconds)."""
    out = np.empty((len(a), len(a)), dtype=a.dtype)
    for s in range(0, len(a), GRAM_ROWS):
        out[s:s + GRAM_ROWS] = a[s:s + GRAM_ROWS] @ a.T
        control.check()
    return out
