"""Widgets and engine lifetime (defect 6): a closed widget lets its engine go, and the engine's
worker threads end when it is collected or closed."""
import gc
import threading
import time
import weakref

import pytest
import torch
import traitlets as T

from cnn_widgets import (
    Engine,
    EtalonGrid,
    FOVExplorer,
    InverseSetGallery,
    MaximizerPanel,
    PredictionTreeView,
)
from cnn_widgets.jobs import runner_for
from cnn_widgets.testing.models import TINY_SHAPE, random_images, tiny_lenet


def make_engine():
    return Engine(tiny_lenet(), TINY_SHAPE, dataset=(random_images(10), torch.arange(10) % 5),
                  device="cpu")


def workers():
    return [t for t in threading.enumerate() if t.name.startswith("cnn_widgets-worker")]


def settled(count, timeout=30.0):
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
        grid.controls.drawing_pad.clear()          # a pad job on the interactive lane too
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


def widget_models() -> int:
    """The widget models the kernel holds (ipywidgets' registry; a closed widget leaves it)."""
    from ipywidgets.widgets.widget import _instances
    return len(_instances)


FIVE = (EtalonGrid, FOVExplorer, MaximizerPanel, PredictionTreeView, InverseSetGallery)


def test_closing_a_widget_closes_every_widget_inside_it(engine):
    """Issue 16: close() left the layouts, styles and bqplot scales, axes and marks open: 100
    create/close cycles left 5,650 widget models (48 MB)."""
    start = widget_models()
    for _ in range(3):
        for cls in FIVE:
            w = cls(engine)
            assert w.wait(60) and widget_models() > start
            w.close()
            assert widget_models() == start, cls.__name__


def test_closing_stops_the_widgets_jobs_and_shows_nothing_after(engine):
    w = MaximizerPanel(engine, steps=100000)
    assert w.wait(60)
    w.run()
    job = w.job("run")
    while w.last_step is None and job.state in ("pending", "running"):
        job.wait(0.02)
    with w.runner.lock:                   # no picture is half-way through meanwhile
        w.close()
        shown = w.picture
    assert job.wait(30) and job.state == "stopped" and w.picture is shown


@pytest.mark.parametrize("cls, kw", [(EtalonGrid, {"units": "top 0"}),
                                     (FOVExplorer, {"image": 40}),
                                     (FOVExplorer, {"best_steps": 0}),
                                     (InverseSetGallery, {"range": (5, 1)}),
                                     (MaximizerPanel, {"steps": 0})])
def test_a_refused_argument_leaves_no_widget_models_behind(engine, cls, kw):
    start = widget_models()
    with pytest.raises(T.TraitError):
        cls(engine, **kw)
    assert widget_models() == start


def test_a_closed_widget_leaves_no_result_with_the_engines_runner(engine):
    """The runner kept the last job of every key of every widget, with its result: 100
    create/close cycles on one engine kept 100 sets of pictures and trees alive."""
    w = FOVExplorer(engine)
    assert w.wait(60)
    view, keys = weakref.ref(w.slices), list(w._keys)
    w.close()
    del w
    gc.collect()
    assert view() is None
    assert all(runner_for(engine).latest(k) is None for k in keys)
