"""Real-browser fixtures: a throwaway JupyterLab server and Debian's Chromium driven by Playwright.

Playwright here is only the PyPI package (bindings + Node driver); it drives /usr/bin/chromium.
Never run `playwright install`: it downloads a browser, which fails on the project machines.

Fixtures: lab_server (session), browser (session), page, artifacts. The helpers tests call
(open_and_run_all, open_cells, canvas_stats, wait_canvas, text_matches, ...) are in
lab_helpers.py: import them with `from lab_helpers import ...`.
Screenshots of failed tests and the server log go to $CNN_WIDGETS_ARTIFACTS
(default <tmp>/cnnw-artifacts).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_helpers import stop_server

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
        stop_server(proc)
        shutil.copy(log, artifacts / "jupyter-lab.log")


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
    # a widget model that could not take its new state shows a stale view, silently
    broken = [e for e in pg.console_errors if "Error setting state" in e]
    if rep is not None and rep.passed and broken:
        pytest.fail(f"the browser could not apply widget state: {broken}")
