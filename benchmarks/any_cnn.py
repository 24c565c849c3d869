"""Any CNN: the probing and etalon views on a ResNet-50, side by side in one run on this machine.

torchvision ResNet-50 (random init, seeded, eval mode), a random 224x224 image:
- a click: all four reconstructions (``engine.reconstruct(..., method="all")``) of the
  strongest unit at the centre of ``layer3``'s last layer, against one plain forward+backward
  to the input;
- the receptive fields of every unit of that layer (``engine.field_map``), the first call on a
  fresh engine (whatever graph work it needs included);
- the etalon of one logit (``engine.etalons``) against one plain forward+backward.

Only the engine's public API is used, so the script measures whatever the engine does on
any graph. A capability that refuses the model prints its bar as ``short`` with the error's
class name (value 0: not measured).
Usage: python benchmarks/any_cnn.py [--quick]   (--quick: 64x64, one repeat, for the smoke test)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _timing import bar, interleaved

from cnn_widgets import Engine
from cnn_widgets.engine import CnnWidgetsError


def resnet50(size):
    import torchvision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet50(weights=None).eval()
    return model, Engine(model, (3, size, size), device="cpu")


def refused(name, err, op, target, unit=""):
    print(f"{name}: refused, {type(err).__name__}: {err}")
    return (f"bar: {name} ({type(err).__name__}) = 0{unit} (target {op} {target:.3g}{unit}) "
            "short")


def plain_fn(engine, x, logit):
    def plain():
        xg = x[None].clone().requires_grad_(True)
        with engine.borrow() as model:
            (g,) = torch.autograd.grad(model(engine.normalize(xg))[0, logit], xg)
        return g
    return plain


def click_part(engine, x, layer, size, repeat):
    name = f"resnet50 {size}px {layer.split('.')[0]} four reconstructions / forward+backward"
    try:
        c = engine.activation_slices(x, layer).strongest_channel(*_centre(engine, layer))
        unit = (layer, c, *_centre(engine, layer))
        t = interleaved({"plain": plain_fn(engine, x, 7),
                         "click": lambda: engine.reconstruct(x, unit, method="all")}, repeat)
    except CnnWidgetsError as err:
        return refused(name, err, "<=", 3, "x")
    print(f"ResNet-50 {size}x{size}, unit {unit}: plain forward+backward {t['plain']:.3f} s, "
          f"four reconstructions {t['click']:.3f} s (medians of {repeat}, interleaved)")
    return bar(name, t["click"] / t["plain"], "<=", 3, "x")


def field_part(model, size, layer, repeat):
    name = f"resnet50 {size}px receptive fields of every unit of {layer.split('.')[0]}"
    times = []
    try:
        for _ in range(repeat):
            engine = Engine(model, (3, size, size), device="cpu")   # nothing cached yet
            start = time.perf_counter()
            boxes = engine.field_map(layer).boxes()
            times.append(time.perf_counter() - start)
    except CnnWidgetsError as err:
        return refused(name, err, "<=", 100, " ms")
    ms = statistics.median(times) * 1e3
    print(f"receptive fields of the {boxes.shape[0] * boxes.shape[1]} positions of {layer} "
          f"({engine.layer(layer).n_units:,} units), first call on a fresh engine: {ms:.1f} ms")
    return bar(name, ms, "<=", 100, " ms")


def etalon_part(engine, x, size, repeat):
    name = f"resnet50 {size}px etalon of one logit / forward+backward"
    try:
        t = interleaved({"plain": plain_fn(engine, x, 7),
                         "etalon": lambda: engine.etalons(x, units=[7])}, repeat)
        et = engine.etalons(x, units=[7])
    except CnnWidgetsError as err:
        return refused(name, err, "<=", 1.2)
    print(f"ResNet-50 {size}x{size} one logit: plain forward+backward {t['plain']:.3f} s, "
          f"etalon {t['etalon']:.3f} s (exact={et.exact}; medians of {repeat}, interleaved)")
    return bar(name, t["etalon"] / t["plain"], "<=", 1.2)


def _centre(engine, layer):
    shape = engine.layer(layer).output_shape
    return shape[1] // 2, shape[2] // 2


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="64x64, one repeat (smoke test)")
    opts = args.parse_args(argv)
    size, repeat = (64, 1) if opts.quick else (224, 5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    model, engine = resnet50(size)
    layer = [n for n in engine.layer_names if n.startswith("layer3.")][-1]
    x = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    lines = [click_part(engine, x, layer, size, repeat), field_part(model, size, layer, repeat),
             etalon_part(engine, x, size, repeat)]
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
