"""Widgets and engine lifetime (defect 6): a closed widget lets its engine go, and the engine's
worker threads end when it is collected or closed."""
import gc
import threading
import time
import weakref

import torch

from cnn_widgets import Engine, EtalonGrid, FOVExplorer
from cnn_widgets.testing.models import TINY_SHAPE, random_images, tiny_lenet


def make_engine():
    return Engine(tiny_lenet(), TINY_SHAPE, dataset=(random_images(10), torch.arange(10) % 5),
                  device="cpu")


def workers():
    return [t for t in threading.enumerate() if t.name.startswith("cnn_widgets-worker")]


def settled(count, timeout=5.0):
    end = time.monotonic() + timeout
    while len(workers()) != count and time.monotonic() < end:
        time.sleep(0.02)
    return len(workers())


def test_ten_closed_widgets_let_their_engines_and_threads_go():
    before = len(workers())
    refs = []
    for _ in range(10):                  # a re-run cell: a new engine and a new widget
        engine = make_engine()
        grid = EtalonGrid(engine, indices=[0, 1])
        grid.drawing_pad.clear()          # a pad job on the interactive lane too
        assert grid.wait(30)
        refs.append(weakref.ref(engine))
        grid.close()
        del engine, grid
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert settled(before) == before, workers()


def test_leaving_with_engine_ends_the_widgets_threads():
    before = len(workers())
    with make_engine() as engine:
        fov = FOVExplorer(engine)
        assert fov.wait(30) and len(workers()) > before
    assert settled(before) == before, workers()
    fov.select(1, 1)                      # the widget still works: a fresh runner
    assert fov.wait(30) and fov.recon.unit[1:] == (1, 1)
    engine.close()
    assert settled(before) == before
