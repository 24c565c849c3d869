"""Grad-CAM (Selvaraju et al.): where in the image the evidence for a class lies.

For a layer with output A (N, K, h, w) and class score y_c: weights α_k = mean over positions
of ∂y_c/∂A_k; map = ReLU(Σ_k α_k A_k), bilinearly resized to the input (H, W).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core import hooks, memory
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.selection import default_layer_for
from ..core.types import Images


@dataclass(frozen=True)
class GradCam:
    """maps: (N, P, H, W) non-negative, in the input's resolution (not normalised);
    classes: the P classes; layer: where the activations were read; logits: (N, classes)."""
    maps: np.ndarray
    classes: tuple
    layer: str
    logits: np.ndarray

    def normalized(self) -> np.ndarray:
        """maps / their max per image and class (0 where a map is all zero)."""
        top = self.maps.reshape(*self.maps.shape[:2], -1).max(-1)[..., None, None]
        return np.divide(self.maps, top, out=np.zeros_like(self.maps), where=top > 0)


@needs_grad
def gradcam(engine: ModelHost, x: Images, classes: Sequence[int] | None = None, layer: str | None = None,
            control: Control = NO_CONTROL) -> GradCam:
    """Grad-CAM maps of ``classes`` for images ``x`` (N, C, H, W) at ``layer`` (default: the
    last spatial layer, (C, h, w) with h * w > 1; a layer that is not spatial raises
    NoSuitableLayer naming those that are). classes default: both classes of a two-class
    model, else each image's predicted class (reported as -1)."""
    if classes is not None:
        classes = [check.class_index(engine, "class", c)
                   for c in check.name_list("classes", classes, "0")]
    x = engine.prepare(x).requires_grad_(True)      # parameters are frozen while borrowed
    # a 1x1 layer (a global pool) would give a constant map: refused, naming the spatial ones
    layer = default_layer_for(engine, "gradcam", layer)
    logits_layer = engine.default_layer
    chosen: Sequence[int | None] = classes if classes is not None else \
        range(engine.n_classes) if engine.n_classes == 2 else [None]     # None: the prediction
    n, p, (h, w) = x.shape[0], len(chosen), x.shape[2:]
    chunk, on_disk = _plan(engine, n, p, layer, logits_layer)
    maps = memory.ResultArray((n, p, h, w), np.float32, on_disk)
    logits = np.empty((n, engine.n_classes), np.float32)
    captured = {}

    def keep(module, inputs, output):
        captured["A"] = output
        return output.clone()     # later in-place ops act on the copy, not on A

    with engine.borrow(), torch.enable_grad():
        for i0 in range(0, n, chunk):
            xs = x[i0:i0 + chunk]
            with hooks.hooked(engine.model, {layer: keep}):
                out = hooks.run_capturing(engine.model, engine.normalize(xs), [logits_layer],
                                          stop_after=logits_layer, clone=False)[logits_layer]
            A = captured.pop("A")
            logits[i0:i0 + len(xs)] = out.detach().cpu().numpy()
            for j, c in enumerate(chosen):
                target = out.argmax(1) if c is None else torch.full((len(xs),), int(c),
                                                                      device=x.device)
                score = out.gather(1, target[:, None]).sum()
                (g,) = torch.autograd.grad(score, [A], retain_graph=j + 1 < p)
                alpha = g.mean(dim=(2, 3), keepdim=True)
                cam = F.relu((alpha * A).sum(1, keepdim=True))
                cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
                for k, image in enumerate(cam.detach().cpu().numpy()):
                    maps.write(i0 + k, j, image)
                control.step(i0 * p + (j + 1) * len(xs), n * p, "grad-cam")
            del out, A
            memory.release()
    return GradCam(maps=maps.array(), classes=tuple(-1 if c is None else int(c) for c in chosen),
                   layer=layer, logits=logits)


def _plan(engine, n, p, layer, logits_layer) -> tuple[int, bool]:
    """(images per pass, maps on disk): a pass keeps its activations for the classes'
    backward passes (one at a time) to ``layer``; the (N, P, H, W) maps stay in RAM when
    they take at most half of the host's budget."""
    forward, _ = memory.grad_costs(engine, logits_layer)
    backward = memory.grad_costs(engine, layer)[1]
    m = memory.layer_bytes(engine, logits_layer)[1]
    total, result = engine.memory_budget, n * p * m // engine.input_shape[0]
    on_disk = result > memory.host_budget(engine, total) // 2
    budget = total - n * m - (0 if on_disk or engine.device.type != "cpu" else result)
    per_image = forward + backward + 3 * m // engine.input_shape[0]
    if per_image > budget:
        raise memory.refuse(f"Grad-CAM of one image ({engine.input_shape} input)", per_image,
                            budget, total)
    return min(n, engine.batch_size, budget // per_image), on_disk
