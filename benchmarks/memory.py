"""Etalons within the engine's memory budget (issue 16).

Per case, in a fresh process: the peak memory growth of one ``engine.etalons`` call (the
resident high-water mark ``VmHWM``, reset between calls, on the CPU; the allocator's peak on
CUDA), first with a budget the call cannot exceed (64 GB) and no bound per pass
(``etalons.budget.STEP_BYTES``): one pass, as before the budget; then with the budget set to
half of that measured growth (or the least the call needs, if more), so the call must chunk to
stay inside it; the chunked W against the one-pass W. Every class (5) of:
- a plain RGB conv net (three conv/ReLU/max-pool stages, global average pool), 2 images;
- torchvision's ResNet-18 (BatchNorm, residual adds), 2 images (full mode);
- a grayscale LeNet-like net (its first conv's gradient goes the depthwise route), 2 images;
- the conv net at 40 images with a budget of 1.5 times what one image and one unit need:
  W alone is larger than the budget and goes to a disk-backed array; its values against each
  image's own etalons in RAM (the same forward passes: a batched forward may round a
  pre-activation across 0 or flip a near-tie of a max-pool, another linear region).

Usage: python benchmarks/memory.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from _timing import bar
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn_widgets import Engine  # noqa: E402
from cnn_widgets.engine.etalons import budget as budget_module  # noqa: E402
from cnn_widgets.engine.etalons.budget import fast_costs  # noqa: E402

CLASSES = 5
UNBOUNDED = 1 << 36


def conv_net(channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, CLASSES))


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(256, CLASSES))


def resnet() -> nn.Module:
    from torchvision.models import resnet18
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=CLASSES)


MODELS = {"conv": (conv_net, 3), "resnet18": (resnet, 3), "lenet": (lenet, 1)}


class Peak:
    """Peak memory growth of one call: VmHWM reset through /proc/self/clear_refs on the CPU,
    the allocator's peak on CUDA."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)    # the heap a previous call freed
            Path("/proc/self/clear_refs").write_text("5")      # VmHWM := current RSS
            self.base = _status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.growth = (torch.cuda.max_memory_allocated() if self.cuda else _status("VmHWM")) \
            - self.base


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(model: str, size: int, n: int, disk: bool, device: str) -> None:
    """In a fresh process: the growth of one etalons call unbounded, then within a budget."""
    make, channels = MODELS[model]
    Engine(make(), (channels, 32, 32), device=device).etalons(torch.rand(2, channels, 32, 32))
    engine = Engine(make(), (channels, size, size), device=device)
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))
    forward, backward = fast_costs(engine, engine.default_layer)
    xw = 4 * n * int(np.prod(engine.input_shape))
    engine.memory_budget = UNBOUNDED
    # the reference is one pass, as before any bound: no budget and no bound per pass either
    step, budget_module.STEP_BYTES = budget_module.STEP_BYTES, UNBOUNDED
    if disk:        # W alone more than half the budget; one image per forward pass
        budget = xw + int(1.5 * (forward + backward))
        ref = np.stack([engine.etalons(x[i]).W[0] for i in range(n)])
        whole = xw * CLASSES            # one pass holds at least W in RAM
    else:           # half the call's measured growth, at least one image and unit
        with Peak(engine.device) as peak:
            ref = engine.etalons(x).W
        whole = peak.growth
        budget = max(whole // 2, xw * (CLASSES + 1) + forward + backward)
    budget_module.STEP_BYTES = step
    engine.memory_budget = budget
    with Peak(engine.device) as part:
        e = engine.etalons(x)
    print(json.dumps({"whole": whole, "growth": part.growth, "budget": budget,
                      "w": int(e.W.nbytes), "disk": isinstance(e.W, np.memmap),
                      "diff": float(np.abs(e.W - ref).max() / np.abs(ref).max())}))


def run(model, size, n, disk, device) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", model, "--size", str(size),
                          "--n", str(n), "--device", device] + (["--disk"] if disk else []),
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def mb(v: float) -> str:
    return f"{v / 2**20:.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child")
    ap.add_argument("--size", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--disk", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    if args.child:
        return child(args.child, args.size, args.n, args.disk, args.device)
    q = args.quick
    cases = [("conv", 128, 2), ("lenet", 128, 2)] if q else \
        [("conv", 512, 2), ("resnet18", 256, 2), ("lenet", 512, 2)]
    ratios, exceeded = [], []
    for model, size, n in cases:
        got = run(model, size, n, False, args.device)
        ratios.append(got["growth"] / got["budget"])
        exceeded.append(got["whole"] > got["budget"])
        print(f"{model} {size}x{size}, {n} images x {CLASSES} classes: one pass grew by "
              f"{mb(got['whole'])}; budget {mb(got['budget'])}: grew by {mb(got['growth'])} "
              f"({ratios[-1]:.2f} of the budget), max relative difference of W "
              f"{got['diff']:.1e}")
    size, n = (128, 40) if q else (512, 40)
    got = run("conv", size, n, True, args.device)
    ratios.append(got["growth"] / got["budget"])
    exceeded.append(got["whole"] > got["budget"])
    print(f"conv {size}x{size}, {n} images x {CLASSES} classes: one pass would hold W, "
          f"{mb(got['w'])}, in RAM; budget {mb(got['budget'])}: W on disk: {got['disk']}, grew "
          f"by {mb(got['growth'])} ({ratios[-1]:.2f} of the budget); max relative difference "
          f"from each image's own etalons in RAM {got['diff']:.1e}")
    if not all(exceeded):
        print("a case whose one pass stayed within its budget does not test chunking")
    print(bar("etalons peak memory / budget", max(ratios) if all(exceeded) else 9.99, "<=", 1.1))
    print(bar("disk-backed chunked etalons vs in-RAM (max rel diff)",
              got["diff"] if got["disk"] else 1.0, "<=", 1e-5))


if __name__ == "__main__":
    main()
