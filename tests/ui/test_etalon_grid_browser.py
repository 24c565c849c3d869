"""The tour in JupyterLab in Debian's Chromium: the EtalonGrid draws, follows a stroke drawn
with the mouse, explains a clicked cell, and runs a long job whose progress moves until Stop."""
import re
import time

from lab_helpers import (
    COLOURED_JS,
    STDERR,
    canvas_stats,
    click_etalon,
    draw_stroke,
    open_and_run_all,
    progress_fraction,
    text_matches,
    wait_canvas,
    wait_progress_moving,
    watch_progress,
    widget_screenshot,
)


def test_tour_etalon_grid(lab_server, page, artifacts):
    open_and_run_all(page, lab_server.notebook_url("notebooks/00_tour.ipynb"))
    root = page.locator(".cnnw-etalon-grid")
    root.scroll_into_view_if_needed()

    # 1. the grid shows etalons: non-blank, coloured pixels
    wait_canvas(page, root.locator(".cnnw-grid"), "s.lit > 100000 && s.coloured > 10000")
    assert root.locator(".cnnw-grid").evaluate(COLOURED_JS) > 10000
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()

    # 2. a stroke drawn with the mouse on the pad changes the pad row and its readout
    row_before = wait_canvas(page, root.locator(".cnnw-pad-row"), "s.lit > 1000")
    readout_before = root.locator(".cnnw-pad-readout").inner_text()
    pad = root.locator(".cnnw-pad")
    draw_stroke(page, pad, 112, 30, 11, 15)
    assert canvas_stats(page, pad)["lit"] > 500                          # the ink is on the pad
    wait_canvas(page, root.locator(".cnnw-pad-row"), "s.hash !== arg", row_before["hash"])
    page.wait_for_function("([el, old]) => el.innerText !== old",
                           arg=[root.locator(".cnnw-pad-readout").element_handle(), readout_before])

    # 3. clicking an etalon shows its exact decomposition
    click_etalon(page, root)                       # row 3, neuron 2

    # 4. a long job: the progress bar moves while it runs, Stop stops it
    bar = watch_progress(root)
    root.locator(".cnnw-paper").click()
    status = root.locator(".cnnw-status")
    text_matches(status, r"paper's algorithm: \d+/\d+")
    seen = wait_progress_moving(bar)
    assert seen == sorted(seen), seen                                   # it only goes forward
    page.screenshot(path=str(artifacts / "etalon-grid-running.png"))
    root.locator(".cnnw-stop").click()
    text_matches(status, r"stopped at \d+%", timeout=10_000)
    stopped_at = progress_fraction(bar)
    time.sleep(1.0)
    assert progress_fraction(bar) == stopped_at < 1                     # it really stopped
    assert re.search(r"stopped at \d+%", status.inner_text())
    assert not page.js_errors, page.js_errors

    widget_screenshot(page, root, artifacts, "etalon-grid", 1500)   # the whole widget in view
