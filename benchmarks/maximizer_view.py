"""MaximizerPanel's first view and Stop on a large model, as ratios to one forward+backward.

torchvision ResNet-50 (random init, seeded, eval mode) at 224x224 on the CPU with 2 threads,
1000 class names, 48 random images with random labels. From the panel's construction to its
first painted result (a sheet a job paints: the start images with their most probable class;
the median of 3 runs), and from Stop, pressed a quarter, a half and three quarters of a
forward+backward after a live ascent picture (so during an update), to the end of the panel's
jobs (the longest of the three); each over one plain forward+backward of one image (the median
of 5, measured right after on a worker thread, where the panel's jobs run: on a shared 2-core
machine torch's two threads ran the same pass 3-8x slower from the main thread). Also printed:
Run to the first live ascent picture, and Top-k to the first top images (the first batch of a
watched scan is 8 images). The script holds no widget front end: the sheets are painted onto
canvases no browser shows.

Usage: python benchmarks/maximizer_view.py [--quick]   (--quick: 64x64, 12 images, smoke test)
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import torch
from _resnet import engine_for, forward_backward
from _timing import bar

from cnn_widgets import MaximizerPanel
from cnn_widgets.widgets.sheets import Sheet


class FirstPaint:
    """Records when a job (not the constructor) first paints a sheet since :meth:`reset`."""

    def __init__(self):
        self.at = None
        self.main = threading.current_thread()
        real = MaximizerPanel.paint

        def paint(view, canvas, sheet):
            if (self.at is None and isinstance(sheet, Sheet)
                    and threading.current_thread() is not self.main):
                self.at = time.perf_counter()
            real(view, canvas, sheet)
        MaximizerPanel.paint = paint

    def reset(self):
        self.at = None


def until(condition) -> float:
    while not condition():
        time.sleep(0.001)
    return time.perf_counter()


def main(quick: bool) -> None:
    torch.set_num_threads(2)
    size, n, repeat = (64, 12, 1) if quick else (224, 48, 3)
    engine = engine_for(size, n)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 {size}px, "
          f"{n} images, batch size {engine.batch_size}")
    first, ratios = FirstPaint(), []
    for _ in range(repeat):                  # a forward+backward beside each run: shared CPUs
        first.reset()
        start = time.perf_counter()
        view = MaximizerPanel(engine, steps=100_000)
        at_once = time.perf_counter() - start
        view.wait(600)
        fb_now = forward_backward(engine, worker=True)
        ratios.append((first.at - start) / fb_now)
        print(f"constructor {at_once * 1e3:.0f} ms; first result {first.at - start:.2f} s; "
              f"forward+backward {fb_now:.3f} s: ratio {ratios[-1]:.2f}")
        pressed = time.perf_counter()
        view.run()
        live = until(lambda: view.last_step is not None) - pressed
        view.stop()
        view.wait(600)
        pressed = time.perf_counter()
        view.scan()
        top = until(lambda: view.top is not None) - pressed
        view.wait(600)
        print(f"Run -> first live ascent picture {live / fb_now:.2f}, Top-k -> first top images "
              f"{top / fb_now:.2f}, the whole scan {(time.perf_counter() - pressed) / fb_now:.2f} "
              f"forward+backward")
        view.close()
    ratio = float(np.median(ratios))

    waits = []
    for phase in (0.25, 0.5, 0.75):           # Stop pressed during an update
        fb_now = forward_backward(engine, worker=True)
        view = MaximizerPanel(engine, steps=100_000)
        view.wait(600)
        view.run()
        until(lambda: view.last_step is not None)
        time.sleep(phase * fb_now)
        pressed = time.perf_counter()
        view.stop()
        view.wait(600)
        waits.append((time.perf_counter() - pressed) / fb_now)
        print(f"Stop pressed {phase:.2f} forward+backward after a live picture: the jobs ended "
              f"{waits[-1]:.2f} forward+backward later ({view.status.value!r})")
        view.close()
    print(bar("MaximizerPanel first result / fwd+bwd", ratio, "<=", 10))
    print(bar("MaximizerPanel stop / fwd+bwd", max(waits), "<=", 2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
