"""Sanity-check speed on the digits LeNet, measured side by side in one run on this machine.

- A full cascade (5 layers re-initialised from the logits down) on 8 test digits with all seven
  methods: seconds, and the same against computing every method's maps 6 times (the trained
  model and the 5 stages) on the engine directly: the cost of the copy, the re-initialisation
  and the three similarity measures on top of the maps themselves.

Usage: python benchmarks/sanity.py [--quick]   (--quick: fewer repeats, for the smoke test)
"""
from __future__ import annotations

import argparse
import sys

import torch
from _timing import bar, interleaved

from cnn_widgets.engine.sanity.maps import METHODS, explain, predicted
from cnn_widgets.zoo import lenet_digits


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    opts = args.parse_args(argv)
    repeat = 1 if opts.quick else 5
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, device cpu")
    engine = lenet_digits(device="cpu")
    x = engine.dataset.images[:8]
    stages = 1 + len(engine.sanity_check(x[:1], methods="gradient").layers)
    classes = predicted(engine, engine.prepare(x))

    def maps_only():
        for _ in range(stages):
            list(explain(engine, engine.prepare(x), classes, METHODS, lambda: None))

    t = interleaved({"cascade": lambda: engine.sanity_check(x), "maps": maps_only}, repeat)
    print(f"8 digits, {len(METHODS)} methods, {stages - 1} layers: cascade {t['cascade']:.2f} s; "
          f"the maps alone, {stages} times, {t['maps']:.2f} s; medians of {repeat}, interleaved")
    print(bar("sanity cascade of 8 digits all methods", t["cascade"], "<=", 10, " s"))
    print(bar("sanity cascade / the maps alone", t["cascade"] / t["maps"], "<=", 2, "x"))


if __name__ == "__main__":
    sys.exit(main())
