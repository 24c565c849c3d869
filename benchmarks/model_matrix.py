"""Model matrix: every torchvision classification builder, and timm's popular CNN families,
x every engine capability.

Each model is built with random weights (seeded) at the smallest of SIZES it accepts; timm
models are named ``timm/<name>`` (``timm.create_model(name, pretrained=False)``: no download). Each
capability either works, with its identity asserted, or raises one documented
``CnnWidgetsError`` subclass ("refused", with why); anything else is a failure:
- etalons (fast): W equals the autograd input gradient; ``exact`` is True exactly when the
  model has no smooth part (GELU, SiLU, sigmoid, softmax, LayerNorm, attention, ...);
- paper (Algorithm 1): W and b equal the fast path's, and <W, x> + b equals the logit;
- field: the field box equals the gradient support of the unit through the model with its
  gates opened (ReLU -> identity, max-pool -> average pool of the same geometry), and the
  true gradient (several random inputs) is zero outside it;
- reconstruct (all four methods): every reconstruction is zero outside the field and
  ``filter`` equals the autograd gradient of the unit;
- regions: count_regions agrees with the distinct rows of activation_pattern;
- gradcam, maximize (3 steps: the objective rises), activation_stats (counts equal the
  positive activations recounted).

Usage: python benchmarks/model_matrix.py [--quick] [--models a,b] [--markdown] [--paper-budget S]
(--quick: one small model, for the smoke test; --markdown: print the README table.)
tests/engine/test_model_matrix.py runs a small subset of the same checks.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine import Cancelled, CnnWidgetsError, Control

SIZES = (32, 64, 96, 128, 160, 224)
CAPABILITIES = ("etalons", "paper", "field", "reconstruct", "regions", "gradcam", "maximize",
                "activation_stats")
SMOOTH = (nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softmax,
          nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention, nn.ELU, nn.SELU, nn.Mish,
          nn.Softplus)
SMOOTH_NAMES = {c.__name__ for c in SMOOTH} | {"Swish", "HardSigmoid", "HardSwish", "GELUTanh",
                                              "QuickGELU", "LayerNorm2d", "GroupNorm1"}  # timm's
QUICK = ("mobilenet_v3_small",)
# timm's CNN families people bring (random init): ResNet, EfficientNet, ConvNeXt, RegNet,
# MobileNet, and a few more that differ in how they are built
TIMM = ("timm/resnet50", "timm/resnet18d", "timm/efficientnet_b0", "timm/tf_efficientnetv2_b0",
        "timm/convnext_atto", "timm/regnetx_002", "timm/regnety_002", "timm/mobilenetv3_small_050",
        "timm/mobilenetv2_050", "timm/densenet121", "timm/repvgg_a0", "timm/darknet53",
        "timm/cspresnet50", "timm/dpn68", "timm/hrnet_w18_small", "timm/vgg11")
SKIPPED = ("not run: Algorithm 1 (3·H·W forward passes) would take longer than --paper-budget "
           "(measured on its first batch)")


@dataclass
class Cell:
    status: str                 # exact / Jacobian / works / refused / FAIL
    why: str = ""
    seconds: float = 0.0


def classification_models() -> list[str]:
    import torchvision
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build(name: str) -> nn.Module:
    """The model with random weights and, in its norms, random statistics and scales: fresh
    norms (mean 0, variance 1, timm's zero-initialised last norm of a residual branch) would
    hide a shift left in Algorithm 1's bias-free pass, and a branch from every gradient."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if name.startswith("timm/"):
            import timm
            model = timm.create_model(name[len("timm/"):], pretrained=False).eval()
        else:
            import torchvision
            model = torchvision.models.get_model(name, weights=None).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    if m.weight is not None:
                        m.weight.uniform_(0.5, 1.5)
        return model


def smallest_size(model: nn.Module) -> int:
    """The smallest of SIZES whose forward pass gives (1, classes) logits."""
    for s in SIZES:
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, 3, s, s))
        except Exception:           # a size the architecture cannot take: try the next one
            continue
        if isinstance(out, torch.Tensor) and out.dim() == 2:
            return s
    raise RuntimeError(f"no size in {SIZES} gives logits")


def _image(engine, seed=0, n=None):
    shape = engine.input_shape if n is None else (n, *engine.input_shape)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _close(a, b, what, rel=1e-4, scale=None):
    """max |a - b| <= rel * scale (default: the larger max |a|, max |b|; must not be 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(), np.abs(b).max()) if scale is None else scale
    assert scale > 0, f"{what}: all zero"
    diff = np.abs(a - b).max()
    assert diff <= rel * scale, f"{what}: max |diff| {diff:.3g} > {rel} * {scale:.3g}"


def _unit_gradient(engine, xs, layer, flat):
    """d(sum over the batch of unit ``flat`` of ``layer``)/d input, (N, C, H, W) numpy."""
    with engine.borrow(), torch.enable_grad():
        xg = xs.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(engine.layer_output(xg, layer)[:, flat].sum(), xg)
    return g.numpy()


class _OpenGates(TorchFunctionMode):
    """Every ReLU an identity and every max-pool an average pool of the same geometry: the
    gradient of a unit is then non-zero on its whole geometric field."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.relu, torch.relu, torch.relu_, F.relu_, F.relu6):
            return args[0]
        if func is F.max_pool2d:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            a = dict(zip(names, args[1:]), **kwargs)
            if a.get("dilation", 1) in (1, (1, 1)) and not a.get("return_indices"):
                return F.avg_pool2d(args[0], a["kernel_size"], a.get("stride"),
                                    a.get("padding", 0), a.get("ceil_mode", False),
                                    count_include_pad=False)
        if func is F.adaptive_max_pool2d and not kwargs.get("return_indices"):
            return F.adaptive_avg_pool2d(args[0], args[1] if len(args) > 1 else kwargs["output_size"])
        return func(*args, **kwargs)


def _box(mask_chw):
    rows, cols = np.nonzero(np.abs(mask_chw).sum(0))
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def _probe_unit(engine, x):
    layer = engine.default_layer_for("probing")
    c, h, w = engine.layer(layer).output_shape
    y, xx = h // 2, w // 2
    ch = engine.activation_slices(x, layer).strongest_channel(y, xx)
    return layer, ch, y, xx, int(np.ravel_multi_index((ch, y, xx), (c, h, w)))


# -- the capabilities -----------------------------------------------------------------------
def check_etalons(engine, x, state):
    et = engine.etalons(x, units=[0])
    grad = _unit_gradient(engine, x[None], engine.default_layer, 0)[0]
    if not grad.any():                      # e.g. ViT: torchvision zero-initialises the head
        assert not et.W.any(), "W non-zero where the gradient is zero"
        layer = engine.layer_names[-2]      # so check the layer before it too
        state["why"] = f"logits constant at this random init (zero head); checked on {layer}"
        inner = engine.etalons(x, layer=layer, units=[0])
        _close(inner.W[0, 0], _unit_gradient(engine, x[None], layer, 0)[0],
               f"W vs autograd gradient on {layer}")
    else:
        _close(et.W[0, 0], grad, "W vs autograd gradient")
    smooth = sorted({type(m).__name__ for m in engine.model.modules()
                     if isinstance(m, SMOOTH) or type(m).__name__ in SMOOTH_NAMES})
    assert not (et.exact and smooth), f"exact=True but smooth parts {smooth}"
    state["fast"] = et
    if not et.exact and not smooth:          # conservative: a piecewise-linear model flagged
        state["why"] = ("exact=False on a piecewise-linear model: "
                        + et.reason.split(": ", 1)[-1])
        return "Jacobian*"
    return "exact" if et.exact else "Jacobian"


def check_paper(engine, x, state):
    budget, start, est = state.get("paper_budget"), time.perf_counter(), {}

    def report(done, total, _):             # the first batch of coordinate images: the cost
        if done and "s" not in est:
            est["s"] = (time.perf_counter() - start) / done * total
    control = Control(should_stop=lambda: budget is not None and est.get("s", 0) > budget,
                      report=report)
    try:
        pe = engine.etalons(x, units=[0], method="paper", control=control)
    except Cancelled:                       # the model passed Algorithm 1's checks: only cost
        return f"skipped (~{est['s']:.0f} s)"
    fast = state.get("fast") or engine.etalons(x, units=[0])
    _close(pe.W, fast.W, "paper W vs fast W")
    logit = abs(float(pe.out[0, 0])) + np.abs(pe.W * pe.x[:, None]).sum()    # |terms| of <W,x>+b
    _close(pe.b, fast.b, "paper b vs fast b", scale=logit)
    _close((pe.W[0, 0] * pe.x[0]).sum() + pe.b[0, 0], pe.out[0, 0], "<W, x> + b vs logit",
           scale=logit)
    return "exact"


def check_field(engine, x, state):
    layer, _, y, xx, _ = _probe_unit(engine, x)
    f = engine.receptive_field(layer, y, xx)
    box = (f.top, f.left, f.bottom, f.right)
    assert tuple(engine.field_map(layer).boxes()[y, xx]) == box, "field_map vs receptive_field"
    c, h, w = engine.layer(layer).output_shape
    flat = int(np.ravel_multi_index((0, y, xx), (c, h, w)))
    xs = _image(engine, 1, n=2) * 4 - 2
    with _OpenGates():
        opened = _unit_gradient(engine, xs, layer, flat)
    assert _box(opened.sum(0)) == box, f"gradient support {_box(opened.sum(0))} vs field {box}"
    true = np.abs(_unit_gradient(engine, xs, layer, flat)).sum((0, 1))
    assert not true[_outside(true.shape, box)].any(), "gradient outside the field"
    return "exact"


def _outside(shape, box):
    out = np.ones(shape, bool)
    out[box[0]:box[2], box[1]:box[3]] = False
    return out


def check_reconstruct(engine, x, state):
    layer, ch, y, xx, flat = _probe_unit(engine, x)
    r = engine.reconstruct(x, (layer, ch, y, xx), method="all")
    f = r.field
    for method, img in r.images.items():
        assert not img[:, _outside(img.shape[1:], (f.top, f.left, f.bottom, f.right))].any(), \
            f"{method} non-zero outside the field"
    _close(r.images["filter"], _unit_gradient(engine, x[None], layer, flat)[0],
           "filter vs autograd gradient")
    return "exact" if r.exact else "Jacobian"


def check_regions(engine, x, state):
    xs = torch.cat([_image(engine, 2, n=3), x[None]])
    xs = torch.cat([xs, xs[:1]])                               # a duplicate: same region
    pat = engine.activation_pattern(xs)
    assert (pat[0] == pat[-1]).all(), "one image, two patterns"
    rc = engine.count_regions(data=(xs.numpy(), np.zeros(len(xs), np.int64)))
    assert rc.total == len(np.unique(pat, axis=0)) and rc.images == len(xs), rc
    return "exact" if engine.exactness()[0] else "works"    # patterns are regions if exact


def check_gradcam(engine, x, state):
    g = engine.gradcam(x, classes=[0])
    assert g.maps.shape == (1, 1, *engine.input_shape[1:]), g.maps.shape
    assert np.isfinite(g.maps).all() and (g.maps >= 0).all(), "maps not finite / negative"
    return "works"


def check_maximize(engine, x, state):
    r = engine.maximize(O.logit(0), steps=3, seed=0)
    trace = np.append(r.trace[:, 0], r.values[0]).astype(np.float64)
    assert np.isfinite(trace).all(), trace
    if np.ptp(trace) <= 1e-6 * max(1.0, np.abs(trace).max()):
        state["why"] = "the logit is flat at this random init (no gradient to ascend)"
    else:
        assert trace[-1] > trace[0], f"the objective fell: {trace}"
    return "works"


def check_activation_stats(engine, x, state):
    s = engine.activation_stats(x)
    name = s.layers[-1]
    a = engine.activations(x[None], [name])[name]
    a = a.reshape(1, a.shape[1], -1) if a.ndim > 2 else a[:, :, None]
    assert ((a > 0).sum(1) == s.counts[name].reshape(1, -1)).all(), "counts"
    return "works"


CHECKS = {"etalons": check_etalons, "paper": check_paper, "field": check_field,
          "reconstruct": check_reconstruct, "regions": check_regions,
          "gradcam": check_gradcam, "maximize": check_maximize,
          "activation_stats": check_activation_stats}


def run_model(name: str, capabilities=CAPABILITIES, strict: bool = False,
              paper_budget: float | None = None):
    """(size, {capability: Cell}, seconds). strict: re-raise a failure; paper_budget: stop
    Algorithm 1 after its first batch when the whole would take longer than this many
    seconds (None: always run it)."""
    start = time.perf_counter()
    model = build(name)
    size = smallest_size(model)
    engine = Engine(model, (3, size, size), device="cpu")
    x, state, cells = _image(engine), {"paper_budget": paper_budget}, {}
    for cap in capabilities:
        t0 = time.perf_counter()
        try:
            cells[cap] = Cell(CHECKS[cap](engine, x, state), state.pop("why", ""))
        except CnnWidgetsError as err:
            cells[cap] = Cell("refused", f"{type(err).__name__}: {err}")
        except Exception as err:   # noqa: BLE001 - any other exception is a failure
            if strict:
                raise
            cells[cap] = Cell("FAIL", f"{type(err).__name__}: {err}")
        cells[cap].seconds = time.perf_counter() - t0
    engine.close()
    return size, cells, time.perf_counter() - start


# -- the table ------------------------------------------------------------------------------
def _why_key(why: str) -> str:
    """A reason without the model's own names (its first two clauses), to share a footnote."""
    cls, _, msg = why.partition(": ")
    if not msg:
        return cls
    msg = re.sub(r"'([^']*)'", lambda m: m[0] if m[1] in ("paper", "fast") else "'…'", msg)
    msg = re.sub(r"\[[^\]]*\]", "[…]", msg)
    msg = "; ".join(msg.split("; ")[:2]).split(" (")[0].split(". ")[0]
    return f"{cls}: {msg}"[:150].strip()


def markdown(rows) -> str:
    """The table: one row per group of models with the same input size and cells."""
    notes: dict[str, int] = {}
    groups: dict[tuple, list[str]] = {}
    for name, size, cells in rows:
        out = []
        for cap in CAPABILITIES:
            cell = cells.get(cap)
            if cell is None:
                out.append("–")
            elif cell.status.startswith("skipped"):
                k = notes.setdefault(SKIPPED, len(notes) + 1)
                out.append(f"skipped [{k}]")
            elif cell.why:
                k = notes.setdefault(_why_key(cell.why), len(notes) + 1)
                out.append(f"{cell.status} [{k}]")
            else:
                out.append(cell.status)
        groups.setdefault((size, *out), []).append(name)
    lines = ["| models | input | " + " | ".join(CAPABILITIES) + " |",
             "|---|---|" + "---|" * len(CAPABILITIES)]
    lines += [f"| {', '.join(names)} | {key[0]} | " + " | ".join(key[1:]) + " |"
              for key, names in groups.items()]
    lines.append("")
    lines += [f"[{k}] {why}" + "  " for why, k in notes.items()]
    return "\n".join(lines)


def _read_rows(path):
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[r["name"]] = (r["name"], r["size"],
                               {k: Cell(*v) for k, v in r["cells"].items()})
    return [rows[n] for n in sorted(rows)]


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    args.add_argument("--models", help="comma-separated builder names (default: all "
                      "torchvision builders; 'timm': the timm families of TIMM)")
    args.add_argument("--markdown", action="store_true", help="print the README table")
    args.add_argument("--jsonl", metavar="PATH", help="append one JSON line per model")
    args.add_argument("--table-from", metavar="PATH",
                      help="print the table of a --jsonl file (the last row of a model wins)")
    args.add_argument("--paper-budget", type=float, default=None, metavar="S",
                      help="skip Algorithm 1 where it would take over S seconds (default: run)")
    opts = args.parse_args(argv)
    if opts.table_from:
        print(markdown(_read_rows(opts.table_from)))
        return 0
    names = (list(TIMM) if opts.models == "timm" else opts.models.split(",") if opts.models
             else list(QUICK) if opts.quick else classification_models())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(names)} models")
    rows, failures = [], 0
    for name in names:
        try:
            size, cells, secs = run_model(name, paper_budget=opts.paper_budget)
        except Exception as err:   # noqa: BLE001 - a model that does not even build is a row
            print(f"{name}: could not build or wrap: {type(err).__name__}: {err}", flush=True)
            rows.append((name, "–", {c: Cell("FAIL", f"{type(err).__name__}: {err}")
                                     for c in CAPABILITIES}))
            failures += 1
            continue
        failures += sum(c.status == "FAIL" for c in cells.values())
        rows.append((name, size, cells))
        if opts.jsonl:
            with open(opts.jsonl, "a") as f:
                f.write(json.dumps({"name": name, "size": size, "cells": {
                    k: [c.status, c.why] for k, c in cells.items()}}) + "\n")
        print(f"{name} ({size}px, {secs:.0f} s): " + ", ".join(
            f"{k} {c.status} {c.seconds:.1f}s" + (f" ({c.why[:200]})" if c.why else "")
            for k, c in cells.items()), flush=True)
    if opts.markdown:
        print(markdown(rows))
    run = sum(not c.status.startswith("skipped") for r in rows for c in r[2].values())
    print(f"bar: model matrix cells failing (neither working nor clearly refused) = {failures} "
          f"(target <= 0) {'ok' if failures == 0 else 'short'}")
    print(f"bar: model matrix cells run = {run} (target >= {len(names) * len(CAPABILITIES)}) "
          f"{'ok' if run >= len(names) * len(CAPABILITIES) else 'short'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
