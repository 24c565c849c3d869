"""A first view in seconds on the networks people bring (issue 17, part 2), in the browser.

A throwaway JupyterLab and Debian's Chromium driven by Playwright, as tests/ui does
(``tests/ui/lab_helpers.py``). One notebook: torchvision's ResNet-50 (random weights: the same
cost as trained) at 224 px, ImageNet's mean and std, its 1000 class names, 48 random images
with random labels (seeded), 2 torch threads, the CPU. Before each widget the kernel times one
forward+backward of one image (the input gradient of one logit; the median of 5 after a
warm-up), and again after it; every time below is a ratio to the shorter of the two (the
machine is shared: a pass slowed by a passing load would flatter the ratios).

Each widget is built with its defaults in a cell of its own; the page records (in Chromium's
clock, polled every frame) the moment the cell is executed and the moment the first *computed*
result is painted (not what shows at once: the input images, grids, grey cells, hints):

- EtalonGrid: the first etalon cell of row 0 is no longer the grey "pending" cell (so row 0's
  etalons are painted); "default view complete": the same for the last cell of the last row;
- FOVExplorer: the reconstructions canvas holds a picture (more than 5000 lit pixels; its hint
  text lights fewer);
- MaximizerPanel (the cell also presses Run, ``run()``): the first ascent frame, the image
  painted while the objective curve has its first points;
- PredictionTreeView: the first drawing of the category hierarchy or of the prediction tree;
- InverseSetGallery (with a small random generator of 224 px images, code size 16; the cell
  also presses Run): the first samples in the gallery (more than 1500 lit pixels: its hint
  text lights fewer, a 224 px sample 50,000);
- SanityCheckView: the first map of its first row (first method, original model) is no longer
  grey.

Stop: once the widget's long work runs (its Stop button enabled and the progress bar past 0,
or enabled for 2 s; if the first view's work has ended, a cell starts it again: EtalonGrid's rows reversed,
FOVExplorer's best-input search, the tree view's hierarchy with noise as a category or
without, a new run otherwise), the page clicks Stop and records when the Stop button is
disabled again: every job of the widget has ended.
Close: the long work is started again and a cell calls ``close()``, timing in the kernel until
the widget's jobs have ended (the engine is free for the next widget).

A widget that fails, or shows nothing within the time limit, prints its bars ``short`` with
the reason in the name (the value: the seconds waited, a lower bound).

Usage: python benchmarks/first_view.py [--quick] [--only EtalonGrid SanityCheckView ...]
(--quick: ResNet-18 at 32 px, 12 images: the same steps in the browser, for the smoke test).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _timing import bar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))
from lab_helpers import CHROMIUM, KERNEL_READY_JS, KERNELSPEC, NOTEBOOK, chromium, lab_server  # noqa: E402

FIRST, COMPLETE, STOP = 10.0, 40.0, 2.0       # targets, in forward+backward passes

SETUP = """\
import json, statistics, time
import numpy as np, torch, torchvision
from torch import nn
torch.set_num_threads(2)
from cnn_widgets import (Engine, EtalonGrid, FOVExplorer, InverseSetGallery, MaximizerPanel,
                         PredictionTreeView, SanityCheckView)
from cnn_widgets.zoo import IMAGENET_MEAN, IMAGENET_STD
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    model = getattr(torchvision.models, ARCH)(weights=None).eval()
names = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
x = torch.rand(N, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
y = torch.from_numpy(np.random.default_rng(0).integers(0, 1000, N))
engine = Engine(model, (3, SIZE, SIZE), dataset=(x, y), class_names=names,
                mean=IMAGENET_MEAN, std=IMAGENET_STD, device="cpu")


class RandomGenerator(nn.Module):
    '''A random decoder: (n, 16) codes -> (n, 3, SIZE, SIZE) images in [0, 1].'''
    code_dim = 16

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 8 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (8, 7, 7)),
                                 nn.Upsample(size=(SIZE, SIZE)), nn.Conv2d(8, 3, 3, padding=1),
                                 nn.Sigmoid())

    def forward(self, c):
        return self.net(c)


with torch.random.fork_rng(devices=[]):
    torch.manual_seed(1)
    generator = RandomGenerator().eval()


def forward_backward():
    '''Seconds of one forward+backward of one image: the median of 5 after a warm-up.'''
    one = engine.dataset.images[:1]

    def once():
        xg = one.clone().requires_grad_(True)
        with engine.borrow() as m:
            torch.autograd.grad(m(engine.normalize(xg))[0, 7], xg)
    once()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    print("FWDBWD", statistics.median(times))


def cell_rect(layout, row, col):
    top, left = layout.corner(row, col)
    return {"x": int(left), "y": int(top), "w": int(layout.cell[1]), "h": int(layout.cell[0])}


def targets(w):
    '''Where the first (and last) computed cell of a grid widget goes, from its own layout.'''
    if isinstance(w, EtalonGrid):
        grid = w._layouts["grid"]
        return {"first": cell_rect(grid, 0, 1), "last": cell_rect(grid, grid.rows - 1, grid.units)}
    if isinstance(w, SanityCheckView):
        return {"first": cell_rect(w._layout, 0, 0)}
    return {}


def show(w, name):
    w.add_class("fv-" + name)
    print("TARGET", name, json.dumps(targets(w)))
    return w


def close_timed(w):
    '''close(), then wait for the jobs that were running: the seconds until the engine is free.'''
    jobs = [j for k in w._keys if (j := w.runner.latest(k)) is not None
            and j.state in ("pending", "running")]
    t = time.perf_counter()
    w.close()
    ended = all(j.wait(60) for j in jobs)
    print("CLOSED", time.perf_counter() - t, len(jobs), ended)


print("READY")
"""


@dataclass(frozen=True)
class Spec:
    """One widget: the expression that builds it (``g``: the generator), JS predicates over its
    root element ``root`` and its printed targets ``t`` (``fv``: the page helpers below), and
    the statement that starts its long work again."""
    name: str
    make: str
    first: str
    again: str
    complete: str | None = None
    then: str = ""       # run in the same cell, after it is shown (Run)

    @property
    def cells(self) -> dict[str, str]:
        """The notebook cells of this widget (each text unique in the notebook)."""
        n = self.name
        return {"fb": f"forward_backward()  # {n}",
                "make": f"_w = show({self.make}, {n!r})\n{self.then}\n_w",
                "again": f"{self.again}  # again {n}", "close again": f"{self.again}  # close {n}",
                "close": f"close_timed(_w)  # {n}", "fb after": f"forward_backward()  # after {n}"}


SPECS = (
    Spec("EtalonGrid", "EtalonGrid(engine)", "fv.done(root.querySelector('.cnnw-grid'), t.first)",
         "_w.indices = _w.indices[::-1]",
         complete="fv.done(root.querySelector('.cnnw-grid'), t.last)"),
    Spec("FOVExplorer", "FOVExplorer(engine)", "fv.lit(root.querySelector('.cnnw-recon')) > 5000",
         "_w.search_best_input()"),
    Spec("MaximizerPanel", "MaximizerPanel(engine)",
         "fv.lit(root.querySelector('.cnnw-max-image')) > 5000 && fv.curve(root)", "_w.run()",
         then="_w.run()"),
    Spec("PredictionTreeView", "PredictionTreeView(engine)",
         "fv.lit(root.querySelector('.cnnw-categories')) > 5000 || "
         "fv.lit(root.querySelector('.cnnw-tree')) > 5000",
         "_w.include_noise = not _w.include_noise"),
    Spec("InverseSetGallery", "InverseSetGallery(engine, generator)",
         "fv.lit(root.querySelector('.cnnw-gallery')) > 1500", "_w.run()", then="_w.run()"),
    Spec("SanityCheckView", "SanityCheckView(engine)",
         "fv.done(root.querySelector('.cnnw-grid'), t.first)", "_w.run()"),
)

# The page side: pixel tests, watchers that record the first frame a predicate holds, and Stop.
PAGE_JS = r"""() => {
  const fv = window.__fv = {times: {}, notes: {}, targets: {}};
  fv.lit = el => {
    if (!el || !el.width || !el.height) return 0;
    const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 3] > 0 && (d[i] > 32 || d[i + 1] > 32 || d[i + 2] > 32)) n++;
    return n;
  };
  // a grid cell is painted: over half its pixels differ from the grey pending cell (238)
  fv.done = (el, r) => {
    if (!el || !r || el.width < r.x + r.w || el.height < r.y + r.h) return false;
    const d = el.getContext('2d').getImageData(r.x, r.y, r.w, r.h).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 3] > 0 && Math.max(Math.abs(d[i] - 238), Math.abs(d[i + 1] - 238),
                                   Math.abs(d[i + 2] - 238)) > 10) n++;
    return n > 0.5 * r.w * r.h;
  };
  fv.curve = root => [...root.querySelectorAll('.cnnw-curve path.line')].some(
    p => /\d/.test(p.getAttribute('d') || ''));
  fv.root = name => document.querySelector('.fv-' + name);
  fv.target = name => {
    if (!(name in fv.targets)) {
      for (const o of document.querySelectorAll('.jp-OutputArea-output')) {
        const m = new RegExp('TARGET ' + name + ' (\\{.*\\})').exec(o.textContent);
        if (m) fv.targets[name] = JSON.parse(m[1]);
      }
    }
    return fv.targets[name] || {};
  };
  fv.failure = root => {
    const e = root && root.querySelector('.cnnw-error');
    return e && e.textContent.trim() ? e.textContent.trim() : null;
  };
  fv.status = root => { const s = root && root.querySelector('.cnnw-status');
                        return s ? s.textContent : ''; };
  fv.busy = name => { const b = fv.root(name) && fv.root(name).querySelector('.cnnw-stop');
                      return !!b && !b.disabled; };
  // long work runs: Stop enabled, and the progress bar past 0 or Stop enabled for 2 s (a job
  // that reports no progress for a while, e.g. while an inverse set's seeds are searched)
  fv.running = root => {
    const b = root.querySelector('.cnnw-stop'), p = root.querySelector('.cnnw-progress .progress-bar');
    if (!b || b.disabled) { root.__fvEnabled = null; return false; }
    root.__fvEnabled = root.__fvEnabled || performance.now();
    return (!!p && parseFloat(p.style.width || '0') > 0) || performance.now() - root.__fvEnabled > 2000;
  };
  // every frame until pred(root, target, fv) holds: times[key] = that frame's time
  fv.watch = (key, name, src) => {
    const pred = new Function('root', 't', 'fv', 'return (' + src + ');');
    const tick = () => {
      const root = fv.root(name);
      let ok = false;
      try { ok = !!root && pred(root, fv.target(name), fv); } catch (e) { fv.notes[key] = String(e); }
      const failed = fv.failure(root);
      if (ok) fv.times[key] = performance.now();
      else if (failed) fv.notes[key] = failed, fv.times[key] = -1;
      else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  };
  // once the widget runs long work, click Stop; times[key] = when the Stop button is disabled
  fv.stopWhenRunning = (key, name) => {
    const tick = () => {
      const root = fv.root(name);
      if (!root || !fv.running(root)) { requestAnimationFrame(tick); return; }
      const b = root.querySelector('.cnnw-stop');
      fv.notes[key + ' status'] = fv.status(root);
      b.click();
      fv.times[key + ' click'] = performance.now();
      const end = () => {
        if (b.disabled) { fv.times[key] = performance.now(); fv.notes[key + ' after'] = fv.status(root); }
        else requestAnimationFrame(end);
      };
      requestAnimationFrame(end);
    };
    requestAnimationFrame(tick);
  };
  fv.whenRunning = (key, name) => {
    const tick = () => { const root = fv.root(name);
      if (root && fv.running(root)) fv.times[key] = performance.now(); else requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  };
  // execute code cell i (no waiting): times['cell i'] = when it was asked
  fv.run = i => {
    const nb = window.jupyterapp.shell.currentWidget.content;
    nb.activeCellIndex = i;
    nb.deselectAll();
    fv.times['cell ' + i] = performance.now();
    window.jupyterapp.commands.execute('notebook:run-cell');
    return fv.times['cell ' + i];
  };
  fv.output = i => {
    const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
    const o = c && c.querySelector('.jp-OutputArea');
    return o ? o.textContent : '';
  };
}"""


class Failed(Exception):
    """A widget's step did not come: the reason, and the seconds waited."""

    def __init__(self, why: str, waited: float = 0.0):
        super().__init__(why)
        self.why, self.waited = why, waited


class Notebook:
    """The open notebook: run a cell, read what it printed, wait for a recorded time."""

    def __init__(self, page, cells: list[str]):
        self.page, self.cells = page, cells

    def run(self, code: str) -> tuple[int, float]:
        """Execute the cell holding ``code``; (its index, the page's time it was asked)."""
        i = self.cells.index(code)
        return i, self.page.evaluate("i => window.__fv.run(i)", i)

    def printed(self, i: int, pattern: str, timeout_s: float) -> re.Match:
        """Wait until cell ``i``'s output matches ``pattern`` (or shows a traceback)."""
        js = ("([i, p]) => { const t = window.__fv.output(i); "
              "return new RegExp(p).test(t) || /Traceback|Error:/.test(t); }")
        try:
            self.page.wait_for_function(js, arg=[i, pattern], timeout=timeout_s * 1000)
        except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError
            raise Failed(f"cell {i} printed nothing in {timeout_s:.0f} s", timeout_s) from exc
        text = self.page.evaluate("i => window.__fv.output(i)", i)
        m = re.search(pattern, text)
        if m is None:
            raise Failed(f"cell {i} failed: {_gist(text)}")
        return m

    def time_of(self, key: str, since: float, timeout_s: float) -> float:
        """Seconds from ``since`` (page ms) to the recorded time ``key``."""
        try:
            self.page.wait_for_function("k => window.__fv.times[k] !== undefined", arg=key,
                                        timeout=timeout_s * 1000)
        except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError
            raise Failed(f"not shown in {timeout_s:.0f} s", timeout_s) from exc
        at = self.page.evaluate("k => window.__fv.times[k]", key)
        if at < 0:
            note = self.page.evaluate("k => window.__fv.notes[k]", key)
            raise Failed(f"failed: {_gist(note)}")
        return (at - since) / 1000


def _gist(text: str) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(nothing)"


def _label(why: str) -> str:
    """A reason as a bar name may hold it (letters, digits, spaces, / + ( ) -)."""
    return re.sub(r"[^\w /+()-]+", " ", why).strip()[:60]


def measure(nb: Notebook, spec: Spec, limit_s: float, out: dict) -> None:
    """Fill ``out`` with the widget's seconds (or the Failed that stopped a step)."""
    page, name, cells = nb.page, spec.name, spec.cells
    out["fb"] = float(nb.printed(nb.run(cells["fb"])[0], r"FWDBWD ([0-9.e+-]+)", 120).group(1))
    watch = [("first", spec.first)] + ([("complete", spec.complete)] if spec.complete else [])
    for key, src in watch:
        page.evaluate("([k, n, s]) => window.__fv.watch(k, n, s)", [f"{name} {key}", name, src])
    i, t0 = nb.run(cells["make"])
    nb.printed(i, "TARGET", 120)
    for key, _src in watch:
        try:
            out[key] = nb.time_of(f"{name} {key}", t0, limit_s)
        except Failed as f:
            out[key] = f
    out["stop"] = _stop(nb, spec, limit_s)
    out["close"] = _close(nb, spec, limit_s)
    after = float(nb.printed(nb.run(cells["fb after"])[0], r"FWDBWD ([0-9.e+-]+)", 120).group(1))
    out["fb before"], out["fb after"] = out["fb"], after
    out["fb"] = min(out["fb"], after)


def _wait_key(page, key: str, timeout_s: float) -> bool:
    try:
        page.wait_for_function("k => window.__fv.times[k] !== undefined", arg=key,
                               timeout=timeout_s * 1000)
        return True
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError
        return False


def _stop(nb: Notebook, spec: Spec, limit_s: float) -> float | Failed:
    """Seconds from the Stop click to the end of every job of the widget."""
    page, name = nb.page, spec.name
    key = f"{name} stop"
    busy = page.evaluate("n => window.__fv.busy(n)", name)
    page.evaluate("([k, n]) => window.__fv.stopWhenRunning(k, n)", [key, name])
    # the first view's work may end before it is seen running: then it is started again
    if not (busy and _wait_key(page, f"{key} click", 5)):
        nb.run(spec.cells["again"])
        if not _wait_key(page, f"{key} click", limit_s):
            return Failed(f"no long work seen in {limit_s:.0f} s", limit_s)
    try:
        seconds = nb.time_of(key, page.evaluate("k => window.__fv.times[k]", f"{key} click"), 120)
    except Failed as f:
        return f
    before, after = page.evaluate("k => [window.__fv.notes[k + ' status'], "
                                  "window.__fv.notes[k + ' after']]", key)
    print(f"  stop clicked at '{before}'; then '{after}'", flush=True)
    return seconds


def _close(nb: Notebook, spec: Spec, limit_s: float) -> float | Failed:
    """Seconds in the kernel from close() to the end of the jobs it stopped."""
    page, name = nb.page, spec.name
    nb.run(spec.cells["close again"])
    key = f"{name} running again"
    page.evaluate("([k, n]) => window.__fv.whenRunning(k, n)", [key, name])
    _wait_key(page, key, limit_s)               # not seen running: closed anyway, and said so
    i, _t = nb.run(spec.cells["close"])
    try:
        m = nb.printed(i, r"CLOSED ([0-9.e+-]+) (\d+) (\w+)", limit_s + 60)
    except Failed as f:
        return f
    if m.group(2) == "0":
        return Failed("nothing running at close")
    if m.group(3) != "True":
        return Failed("jobs still running 60 s after close", 60)
    return float(m.group(1))


def bars_of(name: str, out: dict) -> list[str]:
    fb = out.get("fb")
    rows = [("first", f"{name} first result / fwd+bwd", FIRST)]
    if name == "EtalonGrid":
        rows.append(("complete", "etalon grid default view complete / fwd+bwd", COMPLETE))
    rows += [("stop", f"{name} stop / fwd+bwd", STOP), ("close", f"{name} close / fwd+bwd", STOP)]
    lines = []
    for key, label, target in rows:
        value = out.get(key, Failed(out.get("error", "not measured")))
        if isinstance(value, Failed) or not fb:
            why = value.why if isinstance(value, Failed) else "no forward+backward time"
            waited = value.waited / fb if isinstance(value, Failed) and fb else 0.0
            lines.append(f"bar: {label} ({_label(why)}) = {waited:.3g} (target <= {target:.3g}) "
                         "short")
        else:
            lines.append(bar(label, value / fb, "<=", target))
    return lines


def _seconds(out: dict, key: str) -> str:
    v = out.get(key)
    return f"{v:.2f} s" if isinstance(v, float) else f"({v.why})" if isinstance(v, Failed) else "-"


def main(argv=None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="ResNet-18 at 32 px (smoke test)")
    args.add_argument("--only", nargs="+", metavar="WIDGET", choices=[s.name for s in SPECS])
    opts = args.parse_args(argv)
    arch, size, n = ("resnet18", 32, 12) if opts.quick else ("resnet50", 224, 48)
    limit_s = 20.0 if opts.quick else 120.0
    specs = [s for s in SPECS if not opts.only or s.name in opts.only]
    print(f"torchvision {arch} at {size} px (random weights), {n} images, 1000 class names, "
          f"2 torch threads, the CPU; JupyterLab in Chromium via Playwright", flush=True)
    results = {s.name: {} for s in specs}
    why = _cannot_run()
    if why is None:
        why = _run(specs, results, f"ARCH, SIZE, N = {arch!r}, {size}, {n}\n" + SETUP, limit_s)
    for out in results.values():
        if why is not None:
            out.setdefault("error", why)
    for name, out in results.items():
        print(f"{name}: forward+backward {_seconds(out, 'fb before')} before, "
              f"{_seconds(out, 'fb after')} after; first result "
              f"{_seconds(out, 'first')}"
              + (f"; complete {_seconds(out, 'complete')}" if name == "EtalonGrid" else "")
              + f"; stop {_seconds(out, 'stop')}; close {_seconds(out, 'close')}")
    print("\n".join(line for name, out in results.items() for line in bars_of(name, out)))


def _cannot_run() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium not installed"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright not installed"
    return None


def _run(specs, results, setup: str, limit_s: float) -> str | None:
    """Measure every widget of ``specs`` into ``results``; the reason if nothing could be."""
    import nbformat

    cells = [setup] + [c for s in specs for c in s.cells.values()]
    with tempfile.TemporaryDirectory(prefix="first-view-") as tmp:
        base = Path(tmp)
        (base / "lab").mkdir()
        (base / "chromium").mkdir()
        with lab_server(base / "lab") as lab, chromium(base / "chromium") as browser:
            nbformat.write(nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_code_cell(c) for c in cells],
                metadata={"kernelspec": KERNELSPEC}), lab.root / "first_view.ipynb")
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            page.goto(lab.notebook_url("first_view.ipynb"))
            page.wait_for_selector(NOTEBOOK)
            page.wait_for_function(KERNEL_READY_JS)
            page.evaluate(PAGE_JS)
            nb = Notebook(page, cells)
            try:
                nb.printed(nb.run(setup)[0], "READY", 600)
            except Failed as f:
                return f"setup: {f.why}"
            for s in specs:
                print(f"{s.name} ...", flush=True)
                try:
                    measure(nb, s, limit_s, results[s.name])
                except Failed as f:
                    results[s.name]["error"] = f.why
    return None


if __name__ == "__main__":
    main()
