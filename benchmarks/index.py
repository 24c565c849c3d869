"""Activation index: build cost, click latency, exactness of the merge and of a resume, memory.

Side by side in one run on this machine:
- ResNet-18 (torchvision, weights=None, 10 classes) at 64x64 on generated images: the index
  build (the four stages and the logits, every statistic; pattern digests are opt-in)
  against the plain forward pass over the same DataLoader batches (same batch size and
  device), interleaved;
- a top-k + histogram click (the MaximizerPanel's engine call) served from a 10,000-image
  index (LeNet on the digits repeated with noise);
- 2 gloo processes under torchrun against 1 process (every array compared);
- a build stopped after 2 chunks and resumed against an uninterrupted one (file hashes);
- peak extra memory of the build over the plain forward (fresh processes; max RSS on the CPU,
  the allocator's peak on CUDA) against 2x one batch's activations of the indexed layers plus
  the statistics held in memory;
- the per-call cost of the freshness checks (weights stamp per index read, model signature and
  probe per call) on ResNet-18/50 against one forward pass (printed, no bar).

Usage: python benchmarks/index.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _timing import bar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn_widgets import Engine  # noqa: E402
from cnn_widgets import objectives as O  # noqa: E402
from cnn_widgets.engine.core.control import Control  # noqa: E402
from cnn_widgets.engine.core.errors import Cancelled  # noqa: E402

# the four stages' outputs (a BasicBlock's output is its ReLU's second call) and the logits
LAYERS = ["layer1.1.relu:1", "layer2.1.relu:1", "layer3.1.relu:1", "layer4.1.relu:1", "fc"]


def resnet_engine(n: int, batch: int, device: str) -> Engine:
    from torchvision.models import resnet18
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 64, 64, generator=g)
    return Engine(resnet18(weights=None, num_classes=10), (3, 64, 64), device=device,
                  dataset=(x, torch.arange(n) % 10), batch_size=batch)


def digits_engine(device=None, copies: int = 1) -> Engine:
    from cnn_widgets.zoo import LeNet, digits
    torch.manual_seed(0)
    x, y = digits().test_pair()
    g = torch.Generator().manual_seed(1)
    x = torch.cat([(x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1) if i else x
                   for i in range(copies)])
    return Engine(LeNet(), (1, 28, 28), dataset=(x, y.repeat(copies)), device="cpu",
                  batch_size=256)


def plain_pass(engine) -> None:
    """The forward pass alone over the DataLoader batches the build uses."""
    from cnn_widgets.engine.index.source import Rows
    n, bs = len(engine.dataset), engine.batch_size
    loader = torch.utils.data.DataLoader(Rows(engine.dataset), batch_size=bs, shuffle=False)
    with engine.borrow(), torch.no_grad():
        for x, _ in loader:
            engine.model(engine.normalize(engine.prepare(x)))
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    return n


def build(engine, root, **kw):
    out = engine.index(layers=LAYERS, path=root, progress=False, **kw)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    return out


def throughput(n, batch, device, reps):
    engine = resnet_engine(n, batch, device)
    plain_pass(engine)                                   # warm-up
    t_plain, t_build, c_plain, c_build = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(reps):                             # interleaved: load hits both alike
            start, cpu = time.perf_counter(), time.process_time()
            plain_pass(engine)
            t_plain.append(time.perf_counter() - start)
            c_plain.append(time.process_time() - cpu)
            start, cpu = time.perf_counter(), time.process_time()
            build(engine, Path(tmp) / str(r))
            t_build.append(time.perf_counter() - start)
            c_build.append(time.process_time() - cpu)
    plain, built = n / statistics.median(t_plain), n / statistics.median(t_build)
    print(f"ResNet-18 64x64, {n} images, batch {batch}, {device}: plain forward "
          f"{plain:.0f} img/s, index build {built:.0f} img/s (medians of {reps}); in CPU "
          f"seconds of this process the build costs "
          f"{statistics.median(c_build) / statistics.median(c_plain):.2f}x the plain pass")
    return built / plain


def click(n_copies, repeat):
    engine = digits_engine(copies=n_copies)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        index = engine.index(path=tmp, progress=False)
        t_build = time.perf_counter() - start
        start = time.perf_counter()
        fresh = digits_engine(copies=n_copies)
        t_engine = time.perf_counter() - start
        start = time.perf_counter()
        fresh.open_index(index.path)
        t_open = time.perf_counter() - start
        times = []
        for c in range(repeat):
            target = O.channel("relu2", c % 16)
            start = time.perf_counter()
            top, _ = fresh.top_images_and_histogram(target, k=9, bins=40)
            times.append(time.perf_counter() - start)
            assert top.source == str(index.path)
        scan = time.perf_counter()
        want, _ = fresh.top_images_and_histogram(O.channel("relu2", 3), 9, 40,
                                                 data=fresh.dataset)
        t_scan = time.perf_counter() - scan
        got, _ = fresh.top_images_and_histogram(O.channel("relu2", 3), 9, 40)
        assert (want.indices == got.indices).all()
    ms = 1e3 * statistics.median(times)
    print(f"{index.n}-image digits index: built in {t_build:.1f} s, opened (hashes checked) in "
          f"{1e3 * t_open:.1f} ms (engine {t_engine:.1f} s); top-k + histogram click "
          f"{ms:.1f} ms median of {repeat} from the index, {1e3 * t_scan:.0f} ms by a scan")
    return ms


def two_ranks():
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(__file__).resolve().parent          # the children import this file
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), str(here)]))
        args = ["--chunk-size", "64", "--batch-size", "32", "--k", "8"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "cnn_widgets.index", "--engine", f"{here / 'index.py'}:digits_engine",
               "--backend", "gloo", "--out", f"{tmp}/two", *args]
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        t_two = time.perf_counter() - start
        if out.returncode:
            print(out.stderr[-2000:])
            return 0.0
        engine = digits_engine()
        digits_engine_args = {"chunk_size": 64, "batch_size": 32, "k": 8, "progress": False}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)      # as the ranks: a matmul's bits depend on the thread count
        try:
            one = engine.index(path=f"{tmp}/one", **digits_engine_args)
        finally:
            torch.set_num_threads(threads)
        two = Path(tmp) / "two" / one.path.name
        files = sorted(p.name for p in one.path.glob("*.npy"))
        same = two.exists() and all(np.array_equal(np.load(one.path / f), np.load(two / f))
                                    for f in files)
    print(f"2 gloo ranks (torchrun, {t_two:.1f} s with start-up) vs 1 process, digits: "
          f"{len(files)} arrays {'all identical' if same else 'DIFFER'}")
    return float(same)


def resumed(n, batch, device):
    engine = resnet_engine(n, batch, device)
    with tempfile.TemporaryDirectory() as tmp:
        whole = build(engine, f"{tmp}/whole", chunk_size=2 * batch)
        seen = []
        stop = Control(should_stop=lambda: len(seen) >= 5, report=lambda *a: seen.append(a))
        # 5 batches: chunks 0 and 1 saved, the third chunk's first batch lost
        try:
            build(engine, f"{tmp}/part", chunk_size=2 * batch, control=stop)
        except Cancelled:
            pass
        again = build(engine, f"{tmp}/part", chunk_size=2 * batch)
        same = {f: m["blake2b"] for f, m in whole.meta["files"].items()} == \
            {f: m["blake2b"] for f, m in again.meta["files"].items()}
    print(f"stopped after 5 of {n // batch} batches, resumed: "
          f"{'identical to' if same else 'DIFFERENT from'} the uninterrupted build")
    return float(same)


def memory_child(mode, n, batch, device):
    """In a fresh process: the peak memory growth of one plain pass or one build."""
    engine = resnet_engine(n, batch, device)
    plain_pass(resnet_engine(batch, batch, device))         # warm up allocator and threads
    cuda = engine.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/statm") as f:
            base = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    stats = 0
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "plain":
            plain_pass(engine)
        else:
            index = build(engine, tmp)
            meta, chunk = index.meta, index.meta["settings"]["chunk"]
            for f, m in meta["files"].items():   # summaries + one chunk of per-image rows
                per_image = any(f.endswith(s) for s in ("__mean.npy", "__max.npy",
                                                        "__active_map.npy", "codes.npy", "labels.npy"))
                stats += m["bytes"] * (chunk / index.n if per_image else 1)
    peak = torch.cuda.max_memory_allocated() if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    acts = 0
    if mode != "plain":
        acts = sum(4 * batch * engine.layer(name).n_units for name in LAYERS)
    print(json.dumps({"growth": peak - base, "acts": acts, "stats": stats}))


def memory(n, batch, device):
    got = {}
    for mode in ("plain", "build"):
        out = subprocess.run([sys.executable, __file__, "--memory", mode, "--n", str(n),
                              "--batch", str(batch), "--device", device],
                             capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        got[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    extra = max(0, got["build"]["growth"] - got["plain"]["growth"])
    budget = 2 * got["build"]["acts"] + got["build"]["stats"]
    print(f"peak memory growth: plain forward {got['plain']['growth'] / 2**20:.1f} MiB, build "
          f"{got['build']['growth'] / 2**20:.1f} MiB; extra {extra / 2**20:.1f} MiB against "
          f"2 x one batch's activations ({got['build']['acts'] / 2**20:.1f} MiB) + statistics "
          f"({got['build']['stats'] / 2**20:.1f} MiB) = {budget / 2**20:.1f} MiB")
    return extra / budget


def freshness(device: str, reps: int, quick: bool = False):
    """Per-call cost of the checks that keep answers for the model of now, on torchvision
    ResNet-18/50 (224x224, weights=None) against one forward pass of one image: the weights'
    content stamp (every index read), the model's signature (every public call) and the probe
    (graph vs model(x) on one image, run at most PROBE_SHARE of the wall time). Best of ``reps``;
on the CPU in CPU time with one thread (the machine is shared), on CUDA in wall time."""
    from torchvision.models import resnet18, resnet50

    from cnn_widgets.engine.core.change import PROBE_SHARE, signature
    from cnn_widgets.engine.core.stamp import weights_stamp
    from cnn_widgets.engine.index.source import weights_hash

    clock = time.perf_counter if device == "cuda" else time.process_time   # CPU: one thread

    def ms(fn):
        def synced():
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
        synced()
        times = []
        for _ in range(reps):
            start = clock()
            synced()
            times.append(clock() - start)
        return 1e3 * min(times)          # best of reps: the machine is shared

    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    for make in (resnet18,) if quick else (resnet18, resnet50):
        torch.manual_seed(0)
        engine = Engine(make(weights=None), (3, 224, 224), device=device)
        x = engine.normalize(torch.rand(1, 3, 224, 224, device=engine.device))
        with engine.borrow(), torch.no_grad():
            forward = ms(lambda: engine.model(x))
            probe = ms(lambda: engine.graph.probe.run(engine.graph, engine.model, x))
        stamp, full = ms(lambda: weights_stamp(engine.model)), ms(lambda: weights_hash(engine.model))
        sig = ms(lambda: signature(engine.model))
        mb = sum(t.numel() * t.element_size() for t in engine.model.state_dict().values()) / 2**20
        print(f"{make.__name__} ({mb:.0f} MiB of weights, {device}), one 224x224 image: forward "
              f"{forward:.1f} ms; per index read: weights stamp {stamp:.1f} ms = "
              f"{stamp / forward:.2f} forward (blake2b of the weights: {full:.1f} ms); per call: "
              f"signature {sig:.2f} ms = {sig / forward:.3f} forward; probe {probe:.1f} ms = "
              f"{probe / forward:.1f} forward, run at most {PROBE_SHARE:.0%} of the wall time"
              f"{'' if device == 'cuda' else ' (CPU time, one thread)'}")
    torch.set_num_threads(threads)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory", default=None)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    if a.memory:
        return memory_child(a.memory, a.n, a.batch, a.device)
    n, reps, batch = (128, 1, 32) if a.quick else (a.n, 3, a.batch)
    ratio = throughput(n, batch, a.device, reps)
    ms = click(4 if a.quick else 28, 5 if a.quick else 30)
    exact = two_ranks()
    same = resumed(8 * batch, batch, a.device)
    mem = memory(n, batch, a.device)
    freshness(a.device, 3 if a.quick else 7, a.quick)    # last: it changes the thread count
    print(bar("index build / plain forward throughput", ratio, ">=", 0.9, "x"))
    print(bar(f"top-k click from a {'1440' if a.quick else '10080'}-image index", ms, "<=", 50, " ms"))
    print(bar("2 gloo ranks equal 1 process (exact)", exact, ">=", 1))
    print(bar("stopped and resumed equals uninterrupted", same, ">=", 1))
    print(bar("peak extra memory / (2 batch activations + stats)", mem, "<=", 1, "x"))


if __name__ == "__main__":
    main()
