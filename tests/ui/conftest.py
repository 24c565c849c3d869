"""Real-browser fixtures: a throwaway JupyterLab server and Debian's Chromium driven by Playwright.

Playwright here is only the PyPI package (bindings + Node driver); it drives /usr/bin/chromium.
Never run `playwright install`: it downloads a browser, which fails on the project machines.

Fixtures: lab_server (session), browser (session), page, artifacts.
Helpers for tests: open_and_run_all(page, url), canvas_stats(page, selector),
wait_canvas(page, selector, predicate_js).
Screenshots of failed tests and the server log go to $CNN_WIDGETS_ARTIFACTS
(default <tmp>/cnnw-artifacts).
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
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
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


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    skip = None
    if not Path(CHROMIUM).exists() and not _in_ci():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} missing: apt-get install -y chromium "
                                       "chromium-driver (in CI these tests must run)")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if skip:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # lets `page` see whether the test body failed
    return rep


@pytest.fixture(scope="session")
def artifacts() -> Path:
    d = Path(os.environ.get("CNN_WIDGETS_ARTIFACTS")
             or Path(tempfile.gettempdir()) / "cnnw-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- JupyterLab server

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


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, artifacts):
    base = tmp_path_factory.mktemp("lab")
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
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for debugging
        # safety net should pytest be killed before the teardown runs
        "--ServerApp.shutdown_no_activity_timeout=900",
        "--MappingKernelManager.cull_idle_timeout=900",
        "--MappingKernelManager.cull_interval=60",
    ]
    log = base / "jupyter-lab.log"
    with open(log, "wb") as fh:
        # own session = own process group, so the teardown can kill kernels left behind
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
        _stop(proc)
        shutil.copy(log, artifacts / "jupyter-lab.log")


def _stop(proc: subprocess.Popen) -> None:
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


# ---------------------------------------------------------------- browser and page

@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():  # only reached in CI (see pytest_collection_modifyitems)
        pytest.fail(f"{CHROMIUM} missing; .ci/run installs it with apt-get")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("chromium")
    # The driver makes Chromium's temporary profile under its $TMPDIR: keep it in pytest's tmp.
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        pw = sync_playwright().start()
    finally:
        if old_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmp
    # Without these, Chromium still writes ~/.config/chromium/Crash Reports and ~/.cache/dconf.
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "config"), XDG_CACHE_HOME=str(tmp / "cache"))
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, env=env)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser, artifacts, request):
    """A fresh page; `page.js_errors` and `page.console_errors` collect what the browser reports."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)  # kernel start + `import torch` on 2 slow cores
    pg.js_errors, pg.console_errors = [], []
    pg.on("pageerror", lambda e: pg.js_errors.append(str(e)))
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
        try:
            pg.screenshot(path=str(artifacts / f"{name}-FAILED.png"), full_page=True)
        except Exception as e:  # a dead page must not hide the real failure
            print(f"screenshot failed: {e}")
        print(f"artifacts in {artifacts}; js errors: {pg.js_errors}; "
              f"console errors: {pg.console_errors}")
    ctx.close()


# ---------------------------------------------------------------- helpers for tests

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
CANVAS_STATS_JS = """el => {
  const d = el.getContext('2d').getImageData(0, 0, el.width, el.height).data;
  let lit = 0, h = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && (d[i] > 32 || d[i + 1] > 32 || d[i + 2] > 32)) lit++;
    h = (((h * 31 + d[i]) * 31 + d[i + 1]) * 31 + d[i + 2]) >>> 0;
  }
  return {w: el.width, h: el.height, lit, hash: h};
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
