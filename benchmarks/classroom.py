"""Fit for a classroom or a free Binder (1-2 CPU cores, 1-2 GB): every notebook at full size in
a fresh kernel (nbclient), its run time and the kernel's peak resident memory (VmHWM), and the
tour's time from Run All (kernel start included) to its first widget with an empty model cache.

Usage: python benchmarks/classroom.py [--quick] [--only 03_probing.ipynb ...]
(--quick: the tour alone, for the smoke test). Memory in MB (2**20 bytes).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))   # not in the package
from notebook_runner import NOTEBOOKS, run_notebook  # noqa: E402

PEAK_MB = 1536          # 1.5 GB: a free Binder gives 1-2 GB
FIRST_WIDGET_S = 15.0
TOUR = "00_tour.ipynb"


def bar(name: str, value: float, target: float, digits: int = 0) -> str:
    return (f"bar: {name} = {value:.{digits}f} (target <= {target:g}) "
            f"{'ok' if value <= target else 'short'}")


def torch_baseline_mb() -> float:
    """Peak memory of a kernel that only imports torch: this torch build's fixed share of every
    notebook's figure (a CUDA build maps far more than the CPU build Binder installs)."""
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "baseline.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")]),
                       path)
        return run_notebook(path).peak_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="NAME")
    args = parser.parse_args()
    names = [TOUR] if args.quick else args.only or sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    import torch

    print(f"torch {torch.__version__}: a kernel that imports it peaks at {torch_baseline_mb():.0f} MB")
    bars, first = [], None
    for name in names:
        with tempfile.TemporaryDirectory() as empty:      # the tour: from an empty cache
            run = run_notebook(NOTEBOOKS / name, cache=empty if name == TOUR else None)
            if name == TOUR:
                assert not any(Path(empty).iterdir()), "the tour trained a model"
                first = run.first_widget_s
        top = max(run.cell_peaks, key=lambda p: p[1], default=(None, 0.0))
        print(f"{name}: {run.seconds:.0f} s, kernel peak {run.peak_mb:.0f} MB (reached by cell "
              f"{top[0]})" + (f", first widget after {first:.1f} s" if name == TOUR else ""),
              flush=True)
        steps, last = [], 0.0
        for index, mb in run.cell_peaks:        # the cells that raised the peak by >= 50 MB
            if mb - last >= 50:
                steps.append(f"{index}: {mb:.0f}")
            last = max(last, mb)
        print(f"  peak after cell (MB): {', '.join(steps)}")
        bars.append(bar(f"peak memory {name[:2]} (MB)", run.peak_mb, PEAK_MB))
    if first is not None:
        bars.append(bar("tour first widget (s)", first, FIRST_WIDGET_S, 1))
    print("\n".join(bars))


if __name__ == "__main__":
    main()
