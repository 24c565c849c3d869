"""Chunk sizes of the etalon computations that fit a memory budget (bytes), from the layer
registry's output sizes (float32), and that keep each pass short enough for Stop. The
allowances are checked against measured peaks in benchmarks/memory.py."""
from __future__ import annotations

from ..core.memory import grad_costs, layer_bytes, refuse

#: Layer-output bytes one pass may go through (:func:`fast_costs`: its forward, plus a backward
#: row per image and unit): the cost of a pass follows them, so a model whose one row is
#: larger (ResNet-50 at 224 px: ~450 MB, ~0.2 s on 2 cores) runs one image and one unit per
#: pass and Stop, asked after each, acts within one backward pass; a small one still batches
#: (LeNet's 10 digits x 10 logits: ~11 MB, one pass). Bytes, not seconds as
#: :mod:`..core.chunks` sizes images: the units of a pass need a bound too, and the fast
#: path's point is one pass for a small model.
STEP_BYTES = 128 * 2 ** 20


def fast_costs(engine, layer) -> tuple[int, int]:
    """(bytes per image of a forward pass kept for backward, bytes per image and unit of one
    vmapped backward pass with its W block, W's float64 copy for b and a finiteness mask)."""
    forward, backward = grad_costs(engine, layer)
    return forward, backward + 3 * layer_bytes(engine, layer)[1]


def fast_plan(engine, n, p, layer, budget, total, coupled=False) -> tuple[int, int]:
    """(images per forward pass, units per backward pass) whose estimated peak fits
    ``budget`` (what is left of the engine's ``total``), at most ``batch_size`` images x
    units per pass and within :data:`STEP_BYTES` (at least one image and one
    unit: a large model's rows come one by one, and Stop waits for one backward pass at most);
    :class:`MemoryBudgetExceeded` when one image and one unit do not fit."""
    forward, backward = fast_costs(engine, layer)
    if forward + backward > budget:
        raise refuse(f"the etalon of one unit at one image ({engine.input_shape} input, up to "
                     f"layer {layer!r})", forward + backward, budget, total)
    ni = 1 if coupled else min(n, engine.batch_size, budget // (forward + backward),
                               max(1, STEP_BYTES // (forward + backward)))
    k = min(p, max(1, engine.batch_size // ni), (budget // ni - forward) // backward,
            max(1, (STEP_BYTES // ni - forward) // backward))
    return ni, k


def forward_chunk(engine, layer) -> int:
    """Images per gradient-free forward pass to ``layer``: at most ``batch_size``, and within
    :data:`STEP_BYTES` (at least one)."""
    return max(1, min(engine.batch_size, STEP_BYTES // fast_costs(engine, layer)[0]))


def paper_plan(engine, layer, p, chunk, budget, total) -> tuple[int, int]:
    """(coordinate images per pass, units per block of W) for Algorithm 1: a no-grad pass keeps
    about three layer outputs per image at once, plus its one-hot images; a block of W
    holds its units for one image."""
    sizes, m = layer_bytes(engine, layer)
    per_image = 3 * max(sizes + [m]) + 2 * m
    if per_image + m > budget:
        raise refuse(f"one coordinate image of Algorithm 1 ({engine.input_shape} input, up to "
                     f"layer {layer!r})", per_image + m, budget, total)
    chunk = max(1, min(chunk, (budget // 2) // per_image))
    return chunk, max(1, min(p, (budget - chunk * per_image) // m))
