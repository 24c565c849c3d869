"""Chunks of images sized by time: the first is one image, then each doubles while twice as
many would take at most :data:`CHUNK_S`, so Stop is seen within about that on any model and
device, and a view's first picture comes after one forward pass. Used wherever images go
through the model in chunks (the trees' features, the probing paper's activity counts)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

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
