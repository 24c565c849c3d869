"""The tour in Notebook 7 (the ``notebook`` package's interface, served by the same Jupyter
server as JupyterLab) in Debian's Chromium: Run All, then the first widget (the EtalonGrid)
draws and explains a clicked cell."""
import pytest
from lab_helpers import STDERR, click_etalon, open_and_run_all, wait_canvas

pytest.importorskip("notebook", minversion="7")
# Notebook 7.6.5's own frontend throws these, not this package: its settings code on loading
# any notebook, an empty one too (checked by hand), and, now and then, its file browser
# calling a command before the plugin that registers it has started (a race in its startup).
NOTEBOOK7_OWN = ("Cannot read properties of undefined (reading 'schema')",
                 "Command 'filebrowser:open-path' not registered.")


def test_tour_in_notebook7(lab_server, page, artifacts):
    url = f"{lab_server.url}/notebooks/notebooks/00_tour.ipynb?token={lab_server.token}"
    open_and_run_all(page, url)
    assert "/notebooks/" in page.url and "/lab" not in page.url   # Notebook 7, not JupyterLab
    root = page.locator(".cnnw-etalon-grid")
    root.scroll_into_view_if_needed()
    wait_canvas(page, root.locator(".cnnw-grid"), "s.lit > 100000 && s.coloured > 10000")
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    detail = root.locator(".cnnw-detail-text")
    before = detail.inner_text() if detail.count() else ""
    click_etalon(page, root)                                # row 3, neuron 2
    page.screenshot(path=str(artifacts / "notebook7-tour.png"), full_page=True)
    assert detail.inner_text() != before                   # the click changed the view
    errors = [e for e in page.js_errors if e not in NOTEBOOK7_OWN]
    assert not errors, errors
