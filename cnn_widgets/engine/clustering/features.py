"""Feature maps of a layer over a set of images, in chunks (what both trees and the embedding
cluster)."""
from __future__ import annotations

import numpy as np

from ..core.control import NO_CONTROL, Control


def features(engine, images, layer: str, control: Control = NO_CONTROL,
             done: int = 0, total: int | None = None) -> np.ndarray:
    """(N, *output_shape) float32 output of ``layer`` for images (N, *input_shape), in chunks."""
    total = len(images) if total is None else total
    out = []
    for s in range(0, len(images), engine.batch_size):
        chunk = images[s:s + engine.batch_size]
        out.append(engine.activations(chunk, [layer])[layer])
        control.step(done + s + len(chunk), total, f"features of {layer}")
    return np.concatenate(out) if out else np.zeros((0, *engine.layer(layer).output_shape),
                                                    np.float32)
