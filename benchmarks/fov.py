"""FOVExplorer speed, measured side by side in one run on this machine.

- torchvision VGG-16 (random init, 224x224, a photo): a click -> all four reconstructions of
  the strongest unit at the centre of features.28 (the paper's layer 13, whose field is the
  largest: 196x196 px), against one plain VGG-16 forward+backward to the input.
- The receptive field of every unit of every VGG-16 layer from the layer geometry.

Usage: python benchmarks/fov.py [--quick]   (--quick: fewer repeats, for the smoke test)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from _timing import bar, median_seconds

from cnn_widgets.engine.probing import receptive_field as rf_module
from cnn_widgets.engine.probing.activation_stats import activation_slices
from cnn_widgets.zoo import vgg16

LAYER = "features.28"


def click_part(engine, repeat):
    x = engine.dataset.images[0]
    y = xx = 7
    c = activation_slices(engine, x, LAYER).strongest_channel(y, xx)
    unit = (LAYER, c, y, xx)
    model = engine.model

    def plain():
        xg = x[None].clone().requires_grad_(True)
        with engine.borrow():
            out = model(engine.normalize(xg))
            (g,) = torch.autograd.grad(out[0, 281], xg)
        return g

    start = time.perf_counter()
    engine.reconstruct(x, unit, method="all")       # first click also draws the random weights
    t_first = time.perf_counter() - start
    t_plain, t_click = [], []
    for _ in range(repeat):                          # interleaved: drift hits both alike
        t_plain.append(median_seconds(plain, repeat=1, warmup=0 if t_plain else 1))
        t_click.append(median_seconds(lambda: engine.reconstruct(x, unit, method="all"),
                                      repeat=1, warmup=0))
    t_plain, t_click = statistics.median(t_plain), statistics.median(t_click)
    field = engine.receptive_field(LAYER, y, xx)
    print(f"VGG-16 224x224, unit {unit} (field {field.height}x{field.width} px): plain "
          f"forward+backward {t_plain:.2f} s; click -> four reconstructions {t_click:.2f} s "
          f"(first click, drawing the random weights too: {t_first:.2f} s); medians of "
          f"{repeat}, interleaved")
    return [bar("fov click (four reconstructions) / plain forward+backward", t_click / t_plain,
                "<=", 3, "x")]


def field_part(engine, repeat):
    start = time.perf_counter()
    rf_module.field_maps(engine)
    t_chain = time.perf_counter() - start

    def all_fields():
        rf_module._CACHE[engine.require_graph("receptive fields")].pop("maps", None)
        maps = rf_module.field_maps(engine)
        return {name: m.boxes() for name, m in maps.items()}
    t_all = median_seconds(all_fields, repeat=repeat * 5)
    boxes = all_fields()
    units = sum(engine.layer(n).n_units for n in boxes)
    positions = sum(b.shape[0] * b.shape[1] for b in boxes.values())
    print(f"receptive fields of all {units:,} units ({positions:,} positions) of the "
          f"{len(boxes)} VGG-16 layers: {t_all * 1e3:.1f} ms (the first call, per engine: "
          f"{t_chain:.2f} s)")
    assert np.all(boxes["features.28"][7, 7] == [22, 22, 218, 218])
    return [bar("fov receptive fields of every VGG-16 unit", t_all * 1e3, "<=", 100, " ms")]


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    opts = args.parse_args(argv)
    repeat = 2 if opts.quick else 5
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    engine = vgg16(pretrained=False, device="cpu")
    lines = field_part(engine, repeat)
    lines = click_part(engine, repeat) + lines
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
