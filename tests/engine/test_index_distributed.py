"""Two gloo processes under torchrun build, bit for bit, the index one process builds (the
digits, an untrained LeNet); the engine opens the cluster's index like its own. Ranks with
different engines are refused before anything is merged."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.zoo import LeNet, digits

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--chunk-size", "64", "--batch-size", "32", "--k", "8", "--patterns"]


def digits_engine(device=None):
    torch.manual_seed(0)
    return Engine(LeNet(), (1, 28, 28), dataset=digits().test_pair(), device="cpu", batch_size=32)


def rank_engine(device=None):
    """Each rank its own weights: a job whose nodes loaded different checkpoints."""
    torch.manual_seed(int(os.environ.get("RANK", "0")))
    return Engine(LeNet(), (1, 28, 28), dataset=digits().test_pair(), device="cpu", batch_size=32)


def torchrun(factory: str, out: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "cnn_widgets.index", "--engine", f"{__file__}:{factory}",
           "--backend", "gloo", "--out", str(out), *ARGS]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)


def test_two_gloo_ranks_build_the_one_process_index(tmp_path):
    out = torchrun("digits_engine", tmp_path / "two")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 process(es)" in out.stdout
    engine = digits_engine()
    one = engine.index(path=tmp_path / "one", chunk_size=64, batch_size=32, k=8, progress=False,
                       patterns=True)
    (two,) = [p for p in (tmp_path / "two").iterdir()]
    assert two.name == one.path.name                      # the same fingerprint
    files = sorted(p.name for p in one.path.glob("*.npy"))
    assert files == sorted(p.name for p in two.glob("*.npy")) and len(files) > 40
    for f in files:                                       # exact: same bytes, every array
        np.testing.assert_array_equal(np.load(one.path / f), np.load(two / f), err_msg=f)
    assert (one.path / "meta.json").read_text() == (two / "meta.json").read_text()
    fresh = digits_engine()
    fresh.open_index(two)
    top = fresh.top_images(O.channel("relu2", 3), k=5)
    assert top.source == str(two)
    np.testing.assert_array_equal(top.indices, fresh.top_images(
        O.channel("relu2", 3), k=5, data=fresh.dataset).indices)


def test_ranks_with_different_engines_stop_before_merging(tmp_path):
    out = torchrun("rank_engine", tmp_path / "mixed")
    assert out.returncode != 0
    assert "ranks [1] of 2 differ from rank 0 (rank 1: fingerprint.weights)" in out.stderr, \
        out.stderr[-3000:]
    assert not (tmp_path / "mixed").exists()            # nothing scanned, merged or written
