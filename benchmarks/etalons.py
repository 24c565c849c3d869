"""Etalon speed, measured side by side in one run on this machine.

- LeNet (the digits default), 10 images x 10 logits: the fast path against the paper's
  Algorithm 1 as written (one coordinate image at a time), against the kernels it cannot do
  without (the forward pass and the 100 input gradients, no autograd: the ceiling of any
  implementation), and against Captum's Saliency doing the same work; Algorithm 1 with the
  coordinate images batched is printed beside them.
- torchvision VGG-16 (random init, 224x224), one logit: the fast path against one plain
  forward+backward to the input; the paper's cost extrapolated from a timed batch of
  coordinate images.
- EtalonGrid: a drawn stroke -> new etalon row and scores, Python side.

Usage: python benchmarks/etalons.py [--quick]   (--quick: tiny repeats, for the smoke test)
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _timing import bar, median_seconds, missing

from cnn_widgets import Engine, EtalonGrid
from cnn_widgets.engine.core.gates import gates_of
from cnn_widgets.engine.etalons import paper as paper_module
from cnn_widgets.engine.etalons.conv_grad import _one_channel_grad
from cnn_widgets.zoo import lenet_digits


def lenet_part(repeat):
    engine = lenet_digits()
    x = engine.dataset.images[engine.dataset.first_of_each_class(10)]
    t_fast = median_seconds(lambda: engine.etalons(x), repeat=repeat * 4)
    # the batched paper algorithm at its fastest batch of coordinate images on this machine
    batches = {b: median_seconds(lambda: engine.etalons(x, method="paper", one_hot_batch=b),
                                 repeat=repeat) for b in (128, 256, 392, 784)}
    best_batch = min(batches, key=batches.get)
    t_batched = batches[best_batch]
    t_written = median_seconds(lambda: engine.etalons(x, method="paper", one_hot_batch=1),
                               repeat=1, warmup=0)
    fast, paper = engine.etalons(x), engine.etalons(x, method="paper")
    rel = np.abs(fast.W - paper.W).max() / np.abs(paper.W).max()
    print(f"LeNet 10 images x 10 logits: fast {t_fast * 1e3:.1f} ms, paper batched "
          f"{t_batched * 1e3:.0f} ms (best of batches "
          f"{', '.join(f'{b}: {t * 1e3:.0f} ms' for b, t in batches.items())}), "
          f"paper one at a time {t_written:.2f} s; "
          f"max relative |W_fast - W_paper| = {rel:.1e}")
    t_kernels = median_seconds(lenet_kernels(engine, x), repeat=repeat * 4)
    print(f"the fast path's kernels alone, no autograd: {t_kernels * 1e3:.1f} ms, so no "
          f"implementation on them could beat the batched paper algorithm by more than "
          f"{t_batched / t_kernels:.0f}x on this machine")
    print(f"fast vs paper batched: {t_batched / t_fast:.1f}x (the kernels alone: "
          f"{t_batched / t_kernels:.1f}x)")
    lines = [bar("lenet fast vs paper as written (speed-up)", t_written / t_fast, ">=", 200, "x"),
             bar("lenet fast / its kernels alone", t_fast / t_kernels, "<=", 1.67)]
    try:
        from captum.attr import Saliency
    except ImportError:
        print("captum is not installed (pip install captum): Saliency comparison not measured")
        return engine, lines + [missing("lenet fast time / captum Saliency time", "captum",
                                        "<=", 0.5)]
    with engine.borrow() as model:
        saliency = Saliency(model)
        xs = x.clone().requires_grad_(True)

        def captum_run():
            return [saliency.attribute(xs, target=p, abs=False) for p in range(10)]
        t_captum = median_seconds(captum_run, repeat=repeat * 4)
        grads = torch.stack(captum_run(), 1).detach().numpy()
    print(f"Captum Saliency, same work (10 targets x 10 images): {t_captum * 1e3:.1f} ms; "
          f"max |W - saliency| = {np.abs(grads - fast.W).max():.1e}")
    lines.append(bar("lenet fast time / captum Saliency time", t_fast / t_captum, "<=", 0.5))
    return engine, lines


def lenet_kernels(engine, x):
    """The operations LeNet's 10 x 10 etalons cannot do without, on random gradients: the
    forward pass of 10 images, then the input gradients of 100 cotangents through both
    pools, ReLUs and convs (conv1's by the depthwise route the fast path takes)."""
    m, k = engine.model, 10
    x = engine.prepare(x)

    def run():
        with torch.no_grad():
            a1 = F.relu(m.conv1(x))
            p1, i1 = F.max_pool2d_with_indices(a1, 2)
            a2 = F.relu(m.conv2(p1))
            p2, i2 = F.max_pool2d_with_indices(a2, 2)
            rep = lambda t: t.repeat(k, 1, 1, 1)                               # noqa: E731
            g = F.max_unpool2d(torch.randn(k * len(x), *p2.shape[1:]), rep(i2), 2,
                               output_size=a2.shape[-2:]) * rep(a2 > 0)
            g = torch.nn.grad.conv2d_input((len(g), *p1.shape[1:]), m.conv2.weight, g)
            g = F.max_unpool2d(g, rep(i1), 2, output_size=a1.shape[-2:]) * rep(a1 > 0)
            return _one_channel_grad(g, m.conv1.weight, m.conv1.padding)
    return run


def vgg_part(repeat):
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    engine = Engine(model, (3, 224, 224), device="cpu")
    x = torch.rand(1, 3, 224, 224)

    def plain():
        xg = x.clone().requires_grad_(True)
        with engine.borrow():
            out = model(xg)
            (g,) = torch.autograd.grad(out[0, 7], xg)
        return g
    # interleave the two so drift on a shared machine hits both alike
    t_plain, t_fast = [], []
    for _ in range(repeat):
        t_plain.append(median_seconds(plain, repeat=1, warmup=0 if t_plain else 1))
        t_fast.append(median_seconds(lambda: engine.etalons(x, units=[7]), repeat=1,
                                     warmup=0 if t_fast else 1))
    t_plain, t_fast = statistics.median(t_plain), statistics.median(t_fast)

    # The paper: one coordinate image per input pixel, through the bias-free net with the
    # recorded masks replayed. Time a batch of them and extrapolate to all 3*224*224.
    batch = 16
    layer = engine.default_layer
    with engine.borrow(), torch.no_grad():
        gates = gates_of(engine, paper_module._check_paper_model(engine, layer))
        work = copy.deepcopy(engine.graph.module)
        record = paper_module._record(engine, work, x, gates)
        paper_module._zero_biases(work)
        replay = paper_module._replay(record, gates, 0, constants=False)
        idx = engine.flat_index(layer, [(7,)])
        e = torch.zeros(batch, 3 * 224 * 224)
        e[torch.arange(batch), torch.arange(batch)] = 1.0
        e = e.view(batch, 3, 224, 224)
        start = time.perf_counter()
        paper_module._unit_values(engine, work, e, layer, idx, replay)
        per_image = (time.perf_counter() - start) / batch
    paper_total = per_image * 3 * 224 * 224
    print(f"VGG-16 224x224 one logit: plain forward+backward {t_plain:.2f} s, fast etalon "
          f"{t_fast:.2f} s; paper's algorithm extrapolated from {batch} coordinate images: "
          f"{paper_total / 3600:.1f} h ({paper_total / t_fast:.0f}x the fast path)")
    return [bar("vgg16 fast etalon / plain forward+backward", t_fast / t_plain, "<=", 1.2)]


def stroke_part(engine, repeat):
    grid = EtalonGrid(engine)
    grid.wait(60)                      # the first grid is built on the worker: not a stroke
    times = []
    for i in range(repeat * 10):
        y = 40 + (i % 15) * 10
        start = time.perf_counter()
        grid.controls.drawing_pad.canvas._handle_frontend_event(
            None, {"event": "mouse_move" if i % 15 else
                                                      "mouse_down", "x": 110, "y": y}, [])
        grid.wait(10)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    print(f"EtalonGrid stroke -> new etalon row and scores: median {ms:.1f} ms, "
          f"max {max(times) * 1e3:.1f} ms over {len(times)} strokes")
    return [bar("etalon grid stroke to new row (median)", ms, "<=", 50, " ms")]


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="one repeat each (smoke test)")
    opts = args.parse_args(argv)
    repeat = 1 if opts.quick else 5
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device cpu{' (cuda available)' if torch.cuda.is_available() else ''}")
    engine, lines = lenet_part(repeat)
    lines += vgg_part(2 if opts.quick else 5)
    lines += stroke_part(engine, repeat)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
