"""PredictionTreeView's first view and Stop on a large model, as ratios to one forward+backward.

torchvision ResNet-50 (random init, seeded, eval mode) at 224x224 on the CPU with 2 threads,
1000 class names, 48 random images with random labels (seeded: most classes have none, a few
have two). From the view's construction to its first painted result (a sheet painted by a job:
the hierarchy of the classes scanned so far, or the prediction tree; the median of 3 runs), and
from Stop, pressed while the hierarchy's scan runs, to the end of the view's jobs (the longer of
two: right after the first picture, and as a chunk begins past half of the images); each over one
plain forward+backward of one image (the median of 5, measured right after: the CPUs are
shared). The script holds no widget front end: the
sheets are painted onto canvases no browser shows.

Usage: python benchmarks/tree_view.py [--quick]   (--quick: 64x64, 12 images, for the smoke test)
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
from _resnet import engine_for, forward_backward
from _timing import bar

from cnn_widgets import PredictionTreeView
from cnn_widgets.widgets.sheets import Sheet


class FirstPaint:
    """Records when a job (not the constructor) first paints a sheet on a view since
    :meth:`reset`."""

    def __init__(self):
        self.at, self.what = None, None
        self.main = threading.current_thread()
        real = PredictionTreeView.paint

        def paint(view, canvas, sheet):
            if (self.at is None and isinstance(sheet, Sheet)
                    and threading.current_thread() is not self.main):
                self.at, self.what = time.perf_counter(), canvas._dom_classes[0]
            real(view, canvas, sheet)
        PredictionTreeView.paint = paint

    def reset(self):
        self.at = self.what = None


def main(quick: bool) -> None:
    torch.set_num_threads(2)
    size, n, repeat = (64, 12, 1) if quick else (224, 48, 3)
    engine = engine_for(size, n)
    labels = engine.dataset.labels.numpy()
    counts = np.bincount(labels, minlength=1000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 {size}px, "
          f"{n} images of {int((counts > 0).sum())} classes ({int((counts >= 2).sum())} with 2 "
          f"or more), batch size {engine.batch_size}")

    first, ratios = FirstPaint(), []
    for _ in range(repeat):                  # a forward+backward beside each run: shared CPUs
        first.reset()
        start = time.perf_counter()
        view = PredictionTreeView(engine)
        at_once = time.perf_counter() - start
        view.wait(600)
        done = time.perf_counter() - start
        view.close()
        fb_now = forward_backward(engine)
        ratios.append((first.at - start) / fb_now)
        print(f"constructor {at_once * 1e3:.0f} ms; first result ({first.what}) "
              f"{first.at - start:.2f} s; every job done {done:.2f} s; forward+backward "
              f"{fb_now:.3f} s: ratio {ratios[-1]:.2f}")
    ratio = float(np.median(ratios))

    # Stop while the hierarchy's scan runs: right after its first picture, and as a chunk
    # begins past half of the images
    chunks, real = [], engine.activations
    engine.activations = lambda x, layers: chunks.append(len(x)) or real(x, layers)
    waits = {}
    for when in ("after the first picture", "as a chunk begins past half of the images"):
        first.reset()
        chunks.clear()
        view = PredictionTreeView(engine)
        while first.at is None if when.startswith("after") else sum(chunks[:-1]) < n // 2:
            time.sleep(0.001)
        pressed = time.perf_counter()
        view.stop()
        view.wait(600)
        waits[when] = (time.perf_counter() - pressed) / forward_backward(engine)
        print(f"Stop pressed {when} ({chunks[-1]} images in the chunk; chunks {chunks}): the "
              f"jobs ended {waits[when]:.2f} forward+backward later ({view.status.value!r})")
        view.close()
    engine.activations = real
    stopped = max(waits.values())
    print(bar("PredictionTreeView first result / fwd+bwd", ratio, "<=", 10))
    print(bar("PredictionTreeView stop / fwd+bwd", stopped, "<=", 2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
