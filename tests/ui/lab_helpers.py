"""Helpers for the browser tests (the fixtures are in conftest.py): run a notebook in
JupyterLab, read a <canvas>'s pixels, wait for a text or a moving progress bar.

Test modules import them with `from lab_helpers import ...` (never from `conftest`: that name
can be another folder's conftest module once several are loaded).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCREENSHOTS = HERE / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Playwright's launch() adds --headless, --no-sandbox and a fresh --user-data-dir itself. The
# *-networking/-update/-sync flags stop Chromium calling Google services on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# No news/update toast (it can cover widgets); windowingMode none keeps every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# Pixels where red and blue differ clearly: etalons drawn on the diverging map.
COLOURED_JS = """el => {
  const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && Math.abs(d[i] - d[i + 2]) > 40) n++;
  return n;
}"""
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
NOTEBOOK = ".jp-NotebookPanel .jp-Notebook"
CODE_PROMPTS = ".jp-CodeCell .jp-InputPrompt"  # "[ ]:" not run, "[*]:" queued/running, "[3]:"
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"  # + tracebacks
# Ready = a kernel is attached AND idle. The indicator alone reads "idle" before any kernel
# exists, and a Run All clicked then opens "Select Kernel" instead of running.
KERNEL_READY_JS = """() => {
  const name = document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName');
  const ind = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
  return !!name && !!ind && !/No Kernel/.test(name.textContent) && ind.dataset.status === 'idle';
}"""
# A notebook saved with outputs already shows "[n]:" prompts, so "all numbered" alone proves
# nothing: record every prompt that turns "[*]:" after the click, and wait until none is left.
WATCH_PROMPTS_JS = """sel => {
  const seen = window.__cnnwRunning = new Set();
  const scan = () => document.querySelectorAll(sel).forEach(
    p => { if (p.textContent.trim() === '[*]:') seen.add(p); });
  new MutationObserver(scan).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}"""
RUN_FINISHED_JS = """sel => {
  const p = [...document.querySelectorAll(sel)];
  return window.__cnnwRunning.size > 0 && !p.some(e => e.textContent.trim() === '[*]:');
}"""
# lit: pixels not black; coloured: as COLOURED_JS (an EtalonGrid shows its inputs and grey
# cells at once, its etalons when they are done)
CANVAS_STATS_JS = """el => {
  const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
  let lit = 0, coloured = 0, h = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && (d[i] > 32 || d[i + 1] > 32 || d[i + 2] > 32)) lit++;
    if (d[i + 3] > 0 && Math.abs(d[i] - d[i + 2]) > 40) coloured++;
    h = (((h * 31 + d[i]) * 31 + d[i + 1]) * 31 + d[i + 2]) >>> 0;
  }
  return {w: el.width, h: el.height, lit, coloured, hash: h};
}"""


def open_and_run_all(page, url: str) -> None:
    """Open a notebook URL, wait for its kernel, Run > Run All Cells, wait until every code cell
    ran. Fails with the notebook's stderr/traceback text if a cell did not run."""
    page.goto(url)
    page.wait_for_selector(NOTEBOOK)
    page.wait_for_function(KERNEL_READY_JS)
    page.evaluate(WATCH_PROMPTS_JS, CODE_PROMPTS)
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item[data-command='runmenu:run-all']")
    page.wait_for_function(RUN_FINISHED_JS, arg=CODE_PROMPTS)
    prompts = [p.strip() for p in page.locator(CODE_PROMPTS).all_text_contents()]
    if not all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
        raise AssertionError(f"not every cell ran: prompts {prompts}; stderr/tracebacks: "
                             f"{page.locator(STDERR).all_inner_texts()}")


def open_cells(page, lab_server, name: str, cells) -> None:
    """Write a notebook of code ``cells`` (python3 kernel) to lab_server.root/notebooks/name
    and open and run it (:func:`open_and_run_all`)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells],
                                  metadata={"kernelspec": KERNELSPEC})
    nbformat.write(nb, lab_server.root / "notebooks" / name)
    open_and_run_all(page, lab_server.notebook_url(f"notebooks/{name}"))


def text_matches(locator, pattern: str, **kw) -> None:
    """Wait until the text of the element of ``locator`` (a Locator) matches the regular
    expression ``pattern``; ``kw`` go to wait_for_function (timeout)."""
    locator.page.wait_for_function("([el, pat]) => new RegExp(pat).test(el.innerText)",
                                   arg=[locator.element_handle(), pattern], **kw)


def draw_stroke(page, canvas, x, y, dy, steps) -> None:
    """Drag the mouse down a canvas (a Locator): from (x, y) px of the element, ``steps``
    moves of ``dy`` px."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.down()
    for step in range(1, steps + 1):
        page.mouse.move(box["x"] + x, box["y"] + y + dy * step, steps=2)
    page.mouse.up()


def widget_screenshot(page, root, artifacts, name: str, height: int) -> None:
    """Screenshot the widget ``root`` (a Locator) in a 1400 x ``height`` viewport into
    artifacts/name.png; with CNN_WIDGETS_UPDATE_SCREENSHOT=1 also into tests/ui/screenshots."""
    page.set_viewport_size({"width": 1400, "height": height})
    root.scroll_into_view_if_needed()
    shot = artifacts / f"{name}.png"
    root.screenshot(path=str(shot))
    if os.environ.get("CNN_WIDGETS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOTS / f"{name}.png")


def _locator(page, selector):
    return page.locator(selector) if isinstance(selector, str) else selector


def canvas_stats(page, selector) -> dict:
    """Pixels of one <canvas> (an ipycanvas view element is the canvas itself): {w, h, lit, hash}.
    `lit` counts opaque pixels brighter than near-black. Assert on lit and on hash changes only:
    exact hashes can change with the Chromium version."""
    return _locator(page, selector).evaluate(CANVAS_STATS_JS)


def wait_canvas(page, selector, predicate_js: str = "s.lit > 0", arg=None) -> dict:
    """Wait (no sleeps) until predicate_js, over the stats `s` and `arg`, holds; return the stats."""
    handle = _locator(page, selector).element_handle()
    page.wait_for_function(
        f"([el, arg]) => {{ const s = ({CANVAS_STATS_JS})(el); return ({predicate_js}); }}",
        arg=[handle, arg])
    return canvas_stats(page, selector)


def wait_count(root, selector: str, n: int, timeout=60_000) -> int:
    """Wait (no sleeps) until `root` (a Locator) holds at least `n` elements matching `selector`:
    charts filled by a job on the kernel arrive after the widget is shown. Return the count."""
    root.page.wait_for_function(
        "([el, sel, n]) => el.querySelectorAll(sel).length >= n",
        arg=[root.element_handle(), selector, n], timeout=timeout)
    return root.locator(selector).count()


def printed_targets(page) -> dict:
    """The JSON a cell printed after ``TARGETS `` (where to hover or click, computed by the
    kernel from the widget's own layout)."""
    out = page.locator(".jp-OutputArea-output:has-text('TARGETS')").inner_text()
    return json.loads(out.split("TARGETS", 1)[1].strip())


def click_etalon(page, root, x: float = 62 * 3 + 28, y: float = 18 + 72 * 3 + 28):
    """Click the EtalonGrid ``root`` at (x, y) in its grid (default: row 3, neuron 2 of the
    digits grid) and wait for the exact decomposition and its drawing."""
    gbox = root.locator(".cnnw-grid").bounding_box()
    page.mouse.click(gbox["x"] + x, gbox["y"] + y)
    detail = root.locator(".cnnw-detail-text")
    detail.wait_for()
    text_matches(detail, r"f = <W, x> \+ b = -?[0-9.]+")
    wait_canvas(page, root.locator(".cnnw-detail"), "s.lit > 1000")
    return detail


def click_tree_node(page, root, targets: dict) -> None:
    """Hover, then click the PredictionTreeView node ``targets['node']`` at ``targets['xy']``:
    its size, then its critical filter and that filter's top images."""
    tree = page.locator(".cnnw-tree")
    tree.scroll_into_view_if_needed()
    box = tree.bounding_box()
    x, y = box["x"] + targets["xy"][0], box["y"] + targets["xy"][1]
    page.mouse.move(x, y)
    text_matches(root.locator(".cnnw-hover"), rf"^node {targets['node']}: \d+ images")
    page.mouse.click(x, y)
    text_matches(root.locator(".cnnw-detail-text"), r"critical filter \d+[\s\S]*reachable filters")
    wait_canvas(page, ".cnnw-filter-images", "s.w > 100 && s.lit > 1000")


# -- a throwaway JupyterLab and Debian's Chromium (the fixtures in conftest.py, and benchmarks) --

@dataclass
class LabServer:
    proc: subprocess.Popen
    url: str      # http://127.0.0.1:PORT
    token: str
    root: Path    # server root; holds a copy of the repo's notebooks/ folder
    log: Path

    def notebook_url(self, relpath: str) -> str:
        """URL that opens ROOT/relpath in JupyterLab (`reset` ignores saved workspace layouts)."""
        return f"{self.url}/lab/tree/{relpath}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def lab_server(base: Path) -> Iterator[LabServer]:
    """A JupyterLab server in the empty folder ``base`` (its root: base/root, with a copy of the
    repo's notebooks/; Jupyter's and IPython's per-user folders under base/home), stopped with
    its kernels on exit."""
    root, home = base / "root", base / "home"
    root.mkdir()
    if (REPO / "notebooks").is_dir():
        shutil.copytree(REPO / "notebooks", root / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for rel, value in LAB_SETTINGS.items():
        f = home / "lab-settings" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))

    # The whole environment passes through (CNN_WIDGETS_CACHE included, so kernels find the
    # model/data cache); only Jupyter's and IPython's per-user dirs are replaced by temp ones.
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # Chromium shares this machine's two cores with the kernel; with torch on both, the page
        # fell seconds behind the kernel's messages. A user's browser runs on their own machine.
        "OMP_NUM_THREADS": "1",
        "npm_config_cache": str(home / "npm"),  # jupyter_lsp runs `npm prefix -g`: logs go here
    })
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp (debugging, benchmarks)
        # safety net should the caller be killed before it stops the server
        "--ServerApp.shutdown_no_activity_timeout=900",
        "--MappingKernelManager.cull_idle_timeout=900",
        "--MappingKernelManager.cull_interval=60",
    ]
    log = base / "jupyter-lab.log"
    with open(log, "wb") as fh:
        # own session = own process group, so stopping it can kill kernels left behind
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter lab did not answer on {url}:\n{log.read_text()}")
            time.sleep(0.2)
        yield LabServer(proc, url, token, root, log)
    finally:
        stop_server(proc)


@contextmanager
def chromium(tmp: Path):
    """Debian's Chromium driven by Playwright (never `playwright install`), its profile and
    caches in the folder ``tmp``; closed on exit."""
    from playwright.sync_api import sync_playwright

    # The driver makes Chromium's temporary profile under its $TMPDIR: keep it in ``tmp``.
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        pw = sync_playwright().start()
    finally:
        if old_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmp
    try:
        # Without these, Chromium still writes ~/.config/chromium/Crash Reports and ~/.cache/dconf.
        env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "config"),
                   XDG_CACHE_HOME=str(tmp / "cache"))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                     env=env)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then SIGKILL what is left of its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- progress bars -------------------------------------------------------------------------
_WATCH_JS = """el => {
  el.__cnnwSeen = [];
  new MutationObserver(() => el.__cnnwSeen.push(parseFloat(el.style.width || '0') / 100))
      .observe(el, {attributes: true, attributeFilter: ['style']});
}"""


def watch_progress(root):
    """Record every width the progress bar inside `root` (a Locator) takes from now on."""
    bar = root.locator(".cnnw-progress .progress-bar")
    bar.evaluate(_WATCH_JS)
    return bar


def wait_progress_moving(bar, count=2, timeout=30_000):
    """Wait until the bar has shown `count` distinct fractions strictly between 0 and 1; return them."""
    bar.page.wait_for_function(
        "([el, n]) => new Set(el.__cnnwSeen.filter(w => w > 0 && w < 1)).size >= n",
        arg=[bar.element_handle(), count], timeout=timeout)
    return bar.evaluate("el => el.__cnnwSeen.slice()")


def progress_fraction(bar):
    """The fraction the progress bar (a Locator) shows now."""
    return bar.evaluate("el => parseFloat(el.style.width || '0') / 100")
