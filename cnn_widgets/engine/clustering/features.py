"""Feature maps of a layer over a set of images, in chunks (what both trees and the embedding
cluster), and the one long product of the trees' distances, in blocks of rows. A chunk never
holds more than a batch; it starts at one image and doubles while twice as many would take
at most :data:`CHUNK_S`."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from ..core.control import NO_CONTROL, Control

GRAM_ROWS = 64       # rows of a Gram matrix between two stop checks
CHUNK_S = 0.25       # seconds a chunk of images may take (Stop: within max(1 s, ...))


def spans(n: int, batch_size: int, ramp: bool = True,
          clock: Callable[[], float] = time.perf_counter) -> Iterator[tuple[int, int]]:
    """(start, stop) of the chunks of ``n`` images, never more than ``batch_size``. ``ramp``:
    the first is one image, so that the first features (and a view's first picture) come
    after one forward pass; then each is sized by :func:`next_size` from the seconds the
    consumer took over the last (the time between two yields), so that Stop is seen within
    about :data:`CHUNK_S` on any model and device (``clock``: seconds). Without ``ramp``:
    ``batch_size`` each."""
    start, size = 0, 1 if ramp else batch_size
    while start < n:
        stop = min(start + size, n)
        began = clock()
        yield start, stop
        start = stop
        if ramp:
            size = next_size(size, clock() - began, batch_size)


def next_size(size: int, seconds: float, batch_size: int) -> int:
    """The next chunk's size after one of ``size`` images took ``seconds``: twice as many
    while that stays within :data:`CHUNK_S`, half when it took longer, in 1..``batch_size``."""
    if seconds * 2 <= CHUNK_S:
        size *= 2
    elif seconds > CHUNK_S:
        size //= 2
    return max(1, min(size, batch_size))


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
