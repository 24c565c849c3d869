"""The widgets and the activation index: MaximizerPanel builds it as a job (progress, Stop, a
stopped build resumes), its top-k then reads it and says so; FOVExplorer's dataset activity
comes from it."""
import time

import numpy as np
import pytest
import torch
from conftest import small_lenet

from cnn_widgets import Engine, FOVExplorer, MaximizerPanel
from cnn_widgets import objectives as O


@pytest.fixture(autouse=True)
def _index_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_WIDGETS_CACHE", str(tmp_path))


def test_the_panel_builds_the_index_and_its_top_k_reads_it(engine):
    w = MaximizerPanel(engine, objective=O.channel("4", 5), top_k=5)
    # regression: a one-point placeholder broke bqplot's axis and no histogram was ever drawn
    hist_bars = w.controls.hist_bars
    assert np.ptp(hist_bars.x) > 0 and hist_bars.y.max() > 0 and not hist_bars.visible
    w.scan()
    assert w.wait(60) and w.top.source == "scan"
    assert w.controls.index_label.value == "top-k: full scan" and hist_bars.visible
    scanned = w.top
    w.build_index()
    assert w.wait(60) and w.job("index").state == "done"
    assert "index: 40 images" in w.controls.index_label.value and w.progress.value == 1.0
    w.scan()
    assert w.wait(60)
    assert w.top.source != "scan" and "from the index" in w.controls.index_label.value
    np.testing.assert_array_equal(w.top.indices, scanned.indices)
    np.testing.assert_allclose(w.top.values, scanned.values, atol=1e-6)
    hist = engine.activation_histogram(O.channel("4", 5), bins=40, data=engine.dataset)
    np.testing.assert_array_equal(hist_bars.y, hist.counts)


def test_stop_ends_a_long_build_and_the_next_one_resumes(tmp_path):
    x = torch.rand(3000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    engine = Engine(small_lenet(), (1, 28, 28), dataset=(x, torch.arange(3000) % 10),
                    device="cpu", batch_size=8)
    w = MaximizerPanel(engine)
    w.build_index()
    deadline = time.monotonic() + 30
    while w.progress.value < 0.1 and time.monotonic() < deadline:
        time.sleep(0.01)
    w.stop()
    assert w.wait(30) and w.job("index").state == "stopped" and "stopped" in w.status.value
    chunks = list((tmp_path / "index").glob("*.partial/chunk-*"))
    assert chunks and len(chunks) < 3000 // 64
    seen = []
    w.progress.observe(lambda c: seen.append(c["new"]), names="value")
    w.build_index()
    assert w.wait(120) and w.job("index").state == "done"
    assert min(v for v in seen if v > 0) >= len(chunks) * 64 / 3000    # resumed, not restarted
    assert "index: 3000 images" in w.controls.index_label.value


def test_fov_explorer_says_its_dataset_activity_comes_from_the_index(engine):
    engine.index(progress=False)
    w = FOVExplorer(engine)
    assert w.wait(60)
    assert w.controls.means.labels == ["dataset mean (index)"]
    plain = Engine(small_lenet(), (1, 28, 28), dataset=engine.dataset, device="cpu")
    v = FOVExplorer(plain)
    assert v.wait(60) and v.controls.means.labels == ["dataset mean"]
