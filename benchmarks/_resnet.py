"""The large model of the widget-view benchmarks, and the one pass their times are measured in.

torchvision ResNet-50 (random init, seeded, eval mode) on the CPU, n random images with random
labels (seeded), 1000 class names.
"""
from __future__ import annotations

import threading

import numpy as np
import torch
from _timing import median_seconds

from cnn_widgets import Engine


def engine_for(size: int, n: int) -> Engine:
    """An engine on ResNet-50 at ``size`` px with a dataset of ``n`` images."""
    import torchvision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 1000, n))
    names = [f"class {i:03d}" for i in range(1000)]
    return Engine(model, (3, size, size), dataset=(x, y), class_names=names, device="cpu")


def forward_backward(engine: Engine, worker: bool = False) -> float:
    """Seconds of one forward and input-gradient backward of one image (the median of 5);
    ``worker``: measured on a worker thread, where the widgets' jobs run."""
    x = engine.dataset.images[:1].clone()

    def once():
        xg = x.clone().requires_grad_(True)
        with engine.borrow() as model:
            (g,) = torch.autograd.grad(model(engine.normalize(xg))[0, 7], xg)
        return g
    if not worker:
        return median_seconds(once, repeat=5)
    out = []
    thread = threading.Thread(target=lambda: out.append(median_seconds(once, repeat=5)))
    thread.start()
    thread.join()
    return out[0]
