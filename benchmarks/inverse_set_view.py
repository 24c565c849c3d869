"""InverseSetGallery's first view and Stop on a large model, as ratios to one forward+backward.

torchvision ResNet-50 (random init, seeded, eval mode) at 224x224 on the CPU with 2 threads,
1000 class names, 48 random images with random labels (seeded). The gallery with its defaults
(the logits' unit 0, its range the 70th-90th percentile on the dataset, K = 10, n = 100) and
either a small random generator of 224 px images (code size 16: the first-view benchmark's)
or none (pixel space: the codes are the images); Run pressed right after the constructor, as a
user who does not wait for the histogram. Measured: from the constructor to the first picture
a job paints on the gallery (the K seeds at their start, with their activations; the median
of 3 runs), and from Stop, pressed while the seeds move (once right after the first picture,
once a few steps later), to the end of the gallery's jobs (the longer of the two); each over
one plain forward+backward of one image (the median of 5, measured right after: the CPUs are
shared). The script holds no widget front end: the sheets are painted onto canvases no browser
shows.

Usage: python benchmarks/inverse_set_view.py [--quick]   (--quick: 64x64, 12 images, the
smoke test)
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
from _resnet import engine_for, forward_backward
from _timing import bar
from torch import nn

from cnn_widgets import InverseSetGallery
from cnn_widgets.widgets.sheets import Sheet


class RandomGenerator(nn.Module):
    """A random decoder: (n, 16) codes -> (n, 3, size, size) images in [0, 1]."""
    code_dim = 16

    def __init__(self, size: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            self.net = nn.Sequential(nn.Linear(16, 8 * 7 * 7), nn.ReLU(),
                                     nn.Unflatten(1, (8, 7, 7)), nn.Upsample(size=(size, size)),
                                     nn.Conv2d(8, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, c):
        return self.net(c)


class Painted:
    """When a job (not the constructor or Run) paints a sheet on the gallery: every time since
    :meth:`reset`, with the sheet's title."""

    def __init__(self):
        self.times: list[tuple[float, str]] = []
        main = threading.current_thread()
        real = InverseSetGallery.paint

        def paint(view, canvas, sheet):
            if (isinstance(sheet, Sheet) and threading.current_thread() is not main
                    and canvas is view.controls.gallery_canvas):
                self.times.append((time.perf_counter(), sheet.captions[0].text))
            real(view, canvas, sheet)
        InverseSetGallery.paint = paint

    def reset(self):
        self.times = []

    def wait(self, count: int, limit_s: float) -> bool:
        end = time.perf_counter() + limit_s
        while len(self.times) < count and time.perf_counter() < end:
            time.sleep(0.001)
        return len(self.times) >= count


def measure(engine, generator, repeat: int, painted: Painted, label: str) -> tuple[float, float]:
    ratios = []
    for _ in range(repeat):                  # a forward+backward beside each run: shared CPUs
        painted.reset()
        start = time.perf_counter()
        view = InverseSetGallery(engine, generator)
        view.run()
        at_once = time.perf_counter() - start
        got = painted.wait(1, 600)
        view.stop()
        view.wait(600)
        view.close()
        fb_now = forward_backward(engine)
        if not got:
            print(f"{label}: no picture in 600 s")
            return float("inf"), float("inf")
        first, title = painted.times[0]
        ratios.append((first - start) / fb_now)
        print(f"{label}: constructor and Run {at_once * 1e3:.0f} ms; first picture "
              f"{first - start:.2f} s ({title!r}); forward+backward {fb_now:.3f} s: ratio "
              f"{ratios[-1]:.2f}")
    waits = []
    for pictures in (1, 4):                   # Stop right after the first picture, and later
        painted.reset()
        view = InverseSetGallery(engine, generator)
        view.run()
        painted.wait(pictures, 600)
        pressed = time.perf_counter()
        view.stop()
        view.wait(600)
        waits.append((time.perf_counter() - pressed) / forward_backward(engine))
        print(f"{label}: Stop after {len(painted.times)} picture(s) "
              f"({painted.times[-1][1] if painted.times else '-'!r}): the jobs ended "
              f"{waits[-1]:.2f} forward+backward later ({view.status.value!r})")
        view.close()
    return float(np.median(ratios)), max(waits)


def main(quick: bool) -> None:
    torch.set_num_threads(2)
    size, n, repeat = (64, 12, 1) if quick else (224, 48, 3)
    engine = engine_for(size, n)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 {size}px, "
          f"{n} images, batch size {engine.batch_size}; default unit: layer "
          f"{engine.default_layer!r} unit 0")
    painted = Painted()
    first_g, stop_g = measure(engine, RandomGenerator(size), repeat, painted, "generator")
    first_p, stop_p = measure(engine, None, repeat, painted, "pixel space")
    print(bar("InverseSetGallery first result / fwd+bwd", first_g, "<=", 10))
    print(bar("InverseSetGallery stop / fwd+bwd", stop_g, "<=", 2))
    print(bar("InverseSetGallery pixel space first result / fwd+bwd", first_p, "<=", 10))
    print(bar("InverseSetGallery pixel space stop / fwd+bwd", stop_p, "<=", 2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
