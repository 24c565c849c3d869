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

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from lab_helpers import CHROMIUM, chromium
from lab_helpers import lab_server as start_lab

HERE = Path(__file__).resolve().parent


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


# ---------------------------------------------------------------- server, browser and page

@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, artifacts):
    base = tmp_path_factory.mktemp("lab")
    try:
        with start_lab(base) as server:
            yield server
    finally:
        if (base / "jupyter-lab.log").exists():
            shutil.copy(base / "jupyter-lab.log", artifacts / "jupyter-lab.log")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():  # only reached in CI (see pytest_collection_modifyitems)
        pytest.fail(f"{CHROMIUM} missing; .ci/run installs it with apt-get")
    with chromium(tmp_path_factory.mktemp("chromium")) as b:
        yield b


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
