"""Prediction tree speed (clustering paper, Algorithm 2), measured side by side in one run.

Synthetic post-ReLU feature maps (512 filters x 4 x 4, the shape of ResNet-18's layer4 on
32x32 CIFAR images, as in the paper; about 40% of the filters silent per image, seeded):
the fast build (distance matrix + nearest-neighbour pointers) against the paper's loop as
written (all pairwise distances again on every merge), checked to give the same tree; how
each scales with the number of images (log-log slope). Both use one BLAS thread (threads
made both slower on this shared 2-core machine). Then the real default: one digit class of the LeNet default.

Usage: python benchmarks/tree.py [--quick]   (--quick: smaller sizes, for the smoke test)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import bar

from cnn_widgets.engine.clustering.prediction_tree import build_fast, build_naive

D_FILTERS, SIDE = 512, 4


def features(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((n, D_FILTERS, SIDE * SIDE)), 0.0)
    return (x * (rng.random((n, D_FILTERS, 1)) < 0.6)).astype(np.float32)


def timed(fn, *args, repeat: int = 1):
    """Best wall time of ``repeat`` runs (other work shares this machine) and the result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def slope(ns, ts) -> float:
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def same_tree(a, b) -> bool:
    return (np.array_equal(a.pairs, b.pairs) and np.array_equal(a.critical, b.critical)
            and np.allclose(a.distance, b.distance, rtol=0, atol=1e-6))


def main(quick: bool) -> None:
    fast_ns = [100, 200, 400] if quick else [125, 250, 500, 1000]
    naive_ns = [25, 50, 100] if quick else [25, 50, 100, 200]
    big, side = fast_ns[-1], naive_ns[-1]
    print(f"synthetic features: {D_FILTERS} filters x {SIDE}x{SIDE}; fast build in float32 "
          f"(the default) and float64, best of 2-3 runs; the paper's loop in float64, one run")
    print("| images | fast (float32) | fast (float64) | paper's loop | speed-up | same tree |")
    print("|---|---|---|---|---|---|")
    t_fast, t_naive = {}, {}
    for n in sorted(set(fast_ns) | set(naive_ns)):
        X = features(n, seed=n)
        t_fast[n], fast = timed(build_fast, X, repeat=3 if n < 1000 else 2)
        t64, fast64 = timed(lambda: build_fast(X, dtype=np.float64), repeat=2)
        row = f"| {n} | {t_fast[n]:.3f} s | {t64:.3f} s |"
        if n in naive_ns:
            t_naive[n], naive = timed(build_naive, X)
            same = same_tree(fast64, naive) and same_tree(fast, naive)
            row += f" {t_naive[n]:.2f} s | {t_naive[n] / t_fast[n]:.0f}x | {same} |"
            if not same_tree(fast64, naive):
                raise SystemExit(f"fast (float64) and paper trees differ at {n} images")
        else:
            row += " – | – | – |"
        print(row, flush=True)
    s_fast = slope(fast_ns, [t_fast[n] for n in fast_ns])
    s_naive = slope(naive_ns, [t_naive[n] for n in naive_ns])
    print(f"scaling with the number of images n: fast ~ n^{s_fast:.2f} over n = {fast_ns}; "
          f"paper's loop ~ n^{s_naive:.2f} over n = {naive_ns}")

    from cnn_widgets.zoo import lenet_digits
    engine = lenet_digits()
    t_digit, tree = timed(lambda: engine.prediction_tree(3))
    t_cat, _ = timed(lambda: engine.category_tree())
    print(f"LeNet digits default: category tree ({engine.n_classes} classes, "
          f"{len(engine.dataset)} images, {tree.layer}) {t_cat:.2f} s; "
          f"prediction tree of '3' ({len(tree.images)} images, {tree.n_filters} filters, "
          f"features included) {t_digit:.3f} s")
    print(bar(f"prediction tree {big} images x {D_FILTERS} filters", t_fast[big], "<=", 10, " s"))
    print(bar(f"prediction tree vs paper loop at {side} images (speed-up)",
              t_naive[side] / t_fast[side], ">=", 10, "x"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
