"""MaximizerPanel in JupyterLab in Debian's Chromium: press Run, the image changes and the
progress bar moves while it runs, the objective curve is drawn; Stop stops it."""
import time

from lab_helpers import (
    STDERR,
    canvas_stats,
    open_cells,
    progress_fraction,
    text_matches,
    wait_canvas,
    wait_progress_moving,
    watch_progress,
    widget_screenshot,
)

CELLS = [
    "import torch\ntorch.set_num_threads(1)\nfrom cnn_widgets import zoo, MaximizerPanel, objectives",
    "engine = zoo.lenet_digits()\n"
    "panel = MaximizerPanel(engine, objective=objectives.logit(8), steps=100000)\npanel",
]


def test_maximizer_runs_live_and_stops(lab_server, page, artifacts):
    open_cells(page, lab_server, "_maximizer.ipynb", CELLS)
    root = page.locator(".cnnw-maximizer")
    root.scroll_into_view_if_needed()
    start = wait_canvas(page, ".cnnw-max-image", "s.lit > 500")         # the noise start
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()

    bar = watch_progress(root)
    root.locator(".cnnw-run").click()
    text_matches(root.locator(".cnnw-status"), r"maximize: \d+/\d+")
    seen = wait_progress_moving(bar)
    assert seen == sorted(seen), seen
    wait_canvas(page, ".cnnw-max-image", "s.hash !== arg", start["hash"])   # the image changes
    page.wait_for_function(                                                 # the curve is drawn
        "() => { const p = document.querySelector('.cnnw-curve path.line');"
        " return p && (p.getAttribute('d') || '').length > 50; }")
    page.screenshot(path=str(artifacts / "maximizer-running.png"))

    root.locator(".cnnw-stop").click()
    text_matches(root.locator(".cnnw-status"), r"stopped at \d+%", timeout=10_000)
    stopped_at, pixels = progress_fraction(bar), canvas_stats(page, ".cnnw-max-image")["hash"]
    time.sleep(1.0)
    assert progress_fraction(bar) == stopped_at < 1                        # it really stopped
    assert canvas_stats(page, ".cnnw-max-image")["hash"] == pixels
    assert not page.js_errors, page.js_errors
    widget_screenshot(page, root, artifacts, "maximizer-panel", 1400)   # the whole widget in view
