"""Timing helpers shared by the benchmarks: median wall time of repeated calls."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (after one warm-up each) so that load on
    the machine hits all alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def bar(name: str, value: float, op: str, target: float, unit: str = "") -> str:
    """One line in the project's benchmark format, judged honestly."""
    ok = value >= target if op == ">=" else value <= target
    return (f"bar: {name} = {value:.3g}{unit} (target {op} {target:.3g}{unit}) "
            f"{'ok' if ok else 'short'}")


def missing(name: str, package: str, op: str, target: float, unit: str = "") -> str:
    """The bar of a comparison whose peer is not installed: ``short``, naming the package
    (0 stands for "not measured"; a missing peer never reads as a pass)."""
    return (f"bar: {name} ({package} not installed) = 0{unit} "
            f"(target {op} {target:.3g}{unit}) short")
