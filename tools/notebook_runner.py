"""Run the notebooks in fresh kernels (nbclient): time, kernel peak memory, time to the first
widget, and the command that stores them executed. A developer tool, not part of the package.

``python tools/notebook_runner.py`` re-executes every notebook of ``notebooks/`` at
full size and saves it in place with its outputs and widget state (views render without a
kernel on GitHub, nbviewer and in JupyterLab), then checks each file is at most 3 MB and has
no error output. ``--only 00_tour.ipynb ...`` limits it; ``--smoke`` runs the small sizes
(CNN_WIDGETS_SMOKE=1) and saves nothing. Needs the ``[test]`` extras (nbclient, ipykernel).
"""
from __future__ import annotations

import argparse
import ast
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 3 * 1024 * 1024
#: a code cell with this tag is not expected to print or show anything
NO_OUTPUT_TAG = "no-output"
# Run after the last cell (and not saved): waits for every widget's background jobs, so that
# the saved widget state and the measured memory are those of the finished views, then stores
# what each widget shows (its canvases' pictures in the widget state, a PNG beside each view).
SETTLE = ("from cnn_widgets import jobs as _jobs\n"
          "[_job.wait(1200) for _r in list(_jobs._ALIVE) for _job in list(_r._latest.values())]\n"
          "import cnn_widgets.widgets as _widgets\n"
          "_widgets.settle(1200);")


@dataclass
class Run:
    """One execution: the executed notebook, seconds from kernel start to the end of the last
    cell, the kernel's peak resident memory (MB, VmHWM), seconds from kernel start to the
    first widget view (None if none); the peak and the resident memory after each code cell
    (index, MB): a cell whose peak is far above the memory it leaves holds a transient."""
    nb: object
    seconds: float
    peak_mb: float
    first_widget_s: float | None
    cell_peaks: list[tuple[int, float]]
    cell_rss: list[tuple[int, float]] = field(default_factory=list)


def peak_rss_mb(pid: int, key: str = "VmHWM") -> float:
    """The process's peak resident set size (``VmHWM`` in /proc/<pid>/status; ``key="VmRSS"``:
    the current one), MB (2**20)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


@contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """os.environ with ``values`` set (None: removed) for the block: kernels inherit it."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _client_class():
    from nbclient import NotebookClient

    class TimedClient(NotebookClient):
        """Notes when the first widget view arrives and polls the kernel's peak memory."""

        def output(self, outs, msg, display_id, cell_index):
            if self.first_widget is None and WIDGET_VIEW in msg["content"].get("data", {}):
                self.first_widget = time.perf_counter()
            return super().output(outs, msg, display_id, cell_index)

    return TimedClient


def run_notebook(path: Path, *, smoke: bool = False, cache: str | None = None,
                 timeout: int = 1200, store_widget_state: bool = True, settle: bool = True) -> Run:
    """Execute ``path`` top to bottom in a fresh python3 kernel started in its folder, then
    (``settle``) wait for the widgets' background jobs.

    smoke: CNN_WIDGETS_SMOKE=1 (the notebooks' small sizes); cache: a CNN_WIDGETS_CACHE
    folder for the kernel (e.g. an empty one). Raises nbclient's CellExecutionError on the
    first failing cell.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if settle:
        nb.cells.append(nbformat.v4.new_code_cell(SETTLE))
    client = _client_class()(nb, kernel_name="python3", timeout=timeout,
                             store_widget_state=store_widget_state, record_timing=False,
                             resources={"metadata": {"path": str(Path(path).parent)}})
    client.first_widget, peak, done, cells, rss = None, [0.0], threading.Event(), [], []

    def poll(pid):
        while not done.wait(0.1):
            try:
                peak[0] = max(peak[0], peak_rss_mb(pid))
            except (OSError, RuntimeError):   # the kernel is gone
                return

    def started(notebook):
        pid = client.km.provisioner.process.pid
        threading.Thread(target=poll, args=(pid,), daemon=True).start()

    def finished(cell, cell_index, execute_reply):
        pid = client.km.provisioner.process.pid
        cells.append((cell_index, peak_rss_mb(pid)))
        rss.append((cell_index, peak_rss_mb(pid, "VmRSS")))
        if cell_index == len(nb.cells) - 1 or all(
                c.cell_type != "code" for c in nb.cells[cell_index + 1:]):
            peak[0] = max(peak[0], peak_rss_mb(client.km.provisioner.process.pid))
            done.set()

    client.on_notebook_start, client.on_cell_executed = started, finished
    env = {"CNN_WIDGETS_SMOKE": "1" if smoke else None}
    if cache is not None:
        env["CNN_WIDGETS_CACHE"] = cache
    start = time.perf_counter()
    with environment(env):
        client.execute()
    seconds = time.perf_counter() - start
    done.set()
    if settle:
        nb.cells.pop()
    first = None if client.first_widget is None else client.first_widget - start
    return Run(nb, seconds, peak[0], first, cells, rss)


def needs_output(cell) -> bool:
    """Whether a code cell is expected to show something: any top-level statement other than
    an import, a definition or an assignment (a call, a bare expression, a loop, ...), unless
    the cell is tagged ``no-output``."""
    if NO_OUTPUT_TAG in cell.get("metadata", {}).get("tags", []):
        return False
    try:
        body = ast.parse(cell.source).body
    except SyntaxError:
        return True
    quiet = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
             ast.Assign, ast.AnnAssign, ast.AugAssign)
    return any(not isinstance(s, quiet) for s in body)


def stored_problems(path: Path) -> list[str]:
    """What keeps a stored notebook from being read without running it: error outputs,
    cells not executed or without the outputs they should have, widget views without saved
    widget state, more than 3 MB."""
    import nbformat

    problems = []
    size = Path(path).stat().st_size
    if size > MAX_BYTES:
        problems.append(f"{size / 2**20:.1f} MB > {MAX_BYTES / 2**20:.0f} MB")
    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = state.get("state", {})
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        where = f"cell {i} ({cell.source.strip().splitlines()[0][:40]!r})"
        if cell.get("execution_count") is None:
            problems.append(f"{where} was not executed")
        problems += [f"{where}: {o.get('ename')}: {o.get('evalue')}" for o in cell.outputs
                     if o.output_type == "error"]
        if needs_output(cell) and not cell.outputs:
            problems.append(f"{where} has no output")
        for o in cell.outputs:
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is not None and view.get("model_id") not in models:
                problems.append(f"{where}: widget view {view.get('model_id')} has no saved state")
    return problems


def missing_pictures(path: Path) -> list[str]:
    """What keeps a stored notebook's widgets from showing their last view without a kernel:
    another library's widget (a bqplot figure) with no static picture (PNG) in its cell; a
    cnn_widgets view with no PNG beside it (what JupyterLab shows for a notebook it does not
    trust, and GitHub), or none of whose canvases holds a picture in the saved widget state
    (what nbconvert's HTML, nbviewer and a trusted JupyterLab show)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    models = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def pictured(model_id: str) -> bool:
        seen, stack = set(), [model_id]
        while stack:
            m = stack.pop()
            if m in seen or m not in models:
                continue
            seen.add(m)
            if any(b.get("path") == ["image_data"] for b in models[m].get("buffers", [])):
                return True
            state = models[m].get("state", {})
            stack += [r.removeprefix("IPY_MODEL_") for key in ("children", "_canvases")
                      for r in state.get(key, [])]
        return False

    def ours(model_id: str) -> bool:       # a cnn_widgets view (its root has a cnnw- class)
        classes = models.get(model_id, {}).get("state", {}).get("_dom_classes", [])
        return any(c.startswith("cnnw-") for c in classes)

    problems = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            view = o.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            where = f"cell {i} ({cell.source.strip().splitlines()[0][:40]!r})"
            if not ours(view.get("model_id", "")):   # bqplot figures: a static twin in the cell
                if not any("image/png" in p.get("data", {}) for p in cell.outputs):
                    problems.append(f"{where}: a widget with no static picture in its cell")
                continue
            if "image/png" not in o.data:
                problems.append(f"{where}: no PNG beside the widget view")
            if not pictured(view.get("model_id", "")):
                problems.append(f"{where}: no canvas picture in the widget state")
    return problems


def execute_all(names: list[str], *, smoke: bool = False, folder: Path = NOTEBOOKS) -> int:
    """Run each notebook; unless ``smoke``, save it in place with its outputs. Prints time,
    peak memory and size; returns the number of notebooks with problems."""
    import nbformat

    bad = 0
    for name in names:
        run = run_notebook(folder / name, smoke=smoke)
        if smoke:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / name
                nbformat.write(run.nb, out)
                size, problems = out.stat().st_size, stored_problems(out)
        else:
            nbformat.write(run.nb, folder / name)
            size, problems = (folder / name).stat().st_size, stored_problems(folder / name)
        print(f"{name}: {run.seconds:.0f} s, kernel peak {run.peak_mb:.0f} MB, "
              f"{size / 2**20:.2f} MB" + "".join(f"\n  PROBLEM {p}" for p in problems), flush=True)
        bad += bool(problems)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/notebook_runner.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        default=sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
    parser.add_argument("--smoke", action="store_true", help="small sizes, save nothing")
    args = parser.parse_args(argv)
    return 1 if execute_all(args.only, smoke=args.smoke) else 0


if __name__ == "__main__":
    raise SystemExit(main())
