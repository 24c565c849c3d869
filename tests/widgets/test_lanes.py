"""One engine, several widgets (defect 7): a short interactive request does not queue behind a
long job of the same engine; it gets the model between the long job's steps."""
import statistics
import time

import numpy as np

from cnn_widgets import EtalonGrid


def stroke(grid, y):
    grid.controls.drawing_pad.canvas._handle_frontend_event(
        None, {"event": "mouse_down", "x": 90, "y": y}, [])


def test_pad_strokes_are_served_while_a_long_maximize_runs(engine):
    g = EtalonGrid(engine)
    assert g.wait(30)

    def long_maximize(control):        # re-borrows the model between steps, as widgets do
        for _ in engine.iterate_maximize((engine.default_layer, 3), steps=10**9, every=1,
                                         predict=False, control=control):
            pass
    g.REQUESTS = {**g.REQUESTS, "long": ()}      # a job of the test's own, on nothing shown
    long = g.run_job("long", long_maximize, lambda _r: None, label="maximize")
    while g.progress.value == 0 and long.state in ("pending", "running"):
        time.sleep(0.01)
    latencies = []
    for y in range(40, 190, 15):
        start = time.perf_counter()
        stroke(g, y)
        assert g.job("pad").wait(60)
        latencies.append(time.perf_counter() - start)
    # the long job runs until it is stopped: the strokes did not wait for it, on any machine
    assert long.state == "running" and 0 < g.progress.value < 1
    np.testing.assert_allclose(g.pad_result.out[0], engine.predict(g.pad)[0], atol=1e-5)
    print(f"stroke -> pad row during a long maximize: median "
          f"{statistics.median(latencies) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms")
    g.stop()
    assert g.wait(30) and long.state == "stopped"
