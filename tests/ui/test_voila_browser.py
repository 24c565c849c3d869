"""The tour as a Voilà app in Debian's Chromium: widgets only, no code, and the first widget
(the EtalonGrid) draws and answers a click. Served two ways: ``voila notebooks/00_tour.ipynb``
(a classroom machine) and the server extension's ``/voila/render/...`` (the Binder link)."""
import os
import socket
import subprocess
import sys
import time

import pytest
from lab_helpers import STDERR, click_etalon, stop_server, wait_canvas

pytest.importorskip("voila")

SOURCE = "cnn_widgets.EtalonGrid(engine)"     # the tour's second code cell


@pytest.fixture(scope="module")
def voila_url(lab_server, tmp_path_factory, artifacts):
    """``python -m voila notebooks/00_tour.ipynb`` on a free port, in the lab server's root."""
    base = tmp_path_factory.mktemp("voila")
    env = dict(os.environ, TMPDIR=str(base), OMP_NUM_THREADS="1",
               JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_DATA_DIR=str(base / "data"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), IPYTHONDIR=str(base / "ipython"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = base / "voila.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--show_tracebacks=True",
             "--MappingKernelManager.cull_idle_timeout=300",
             "--MappingKernelManager.cull_interval=60", "notebooks/00_tour.ipynb"],
            cwd=lab_server.root, env=env, stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:   # the port, not GET /: every GET runs the notebook in a new kernel
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(log.read_text()) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_server(proc)
        (artifacts / "voila.log").write_bytes(log.read_bytes())


def check_tour_app(page, artifacts, name):
    """The page shows widgets and no code; the EtalonGrid draws and explains a clicked cell."""
    root = page.locator(".cnnw-etalon-grid")
    root.wait_for(timeout=180_000)             # Voilà runs the whole tour before showing it
    root.scroll_into_view_if_needed()
    wait_canvas(page, root.locator(".cnnw-grid"), "s.lit > 100000 && s.coloured > 10000")
    assert SOURCE not in page.locator("body").inner_text()                # no code shown
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    for widget in (".cnnw-fov", ".cnnw-maximizer", ".cnnw-prediction-tree", ".cnnw-inverse-set"):
        assert page.locator(widget).count() == 1, widget      # the tour's other four widgets
    click_etalon(page, root)                                # row 3, neuron 2
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    # uncaught errors only, as the JupyterLab tests; the console also has the CDN fonts (no
    # internet here) and Notebook 7's lab extension, which Voilà 0.5.13 fails to load
    assert not page.js_errors, page.js_errors


def test_tour_as_a_voila_app(voila_url, page, artifacts):
    page.goto(voila_url, timeout=240_000)
    check_tour_app(page, artifacts, "voila-tour")


def test_tour_through_the_binder_voila_link(lab_server, page, artifacts):
    """The route of the Binder README's Voilà link: urlpath=voila/render/notebooks/00_tour.ipynb."""
    page.goto(f"{lab_server.url}/voila/render/notebooks/00_tour.ipynb?token={lab_server.token}",
              timeout=240_000)
    check_tour_app(page, artifacts, "voila-render-tour")
