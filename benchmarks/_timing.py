"""Timing helpers shared by the benchmarks: median wall time of repeated calls."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bar(name: str, value: float, op: str, target: float, unit: str = "") -> str:
    """One line in the project's benchmark format, judged honestly."""
    ok = value >= target if op == ">=" else value <= target
    fmt = lambda v: f"{v:.3g}{unit}"
    return f"bar: {name} = {fmt(value)} (target {op} {fmt(target)}) {'ok' if ok else 'short'}"
