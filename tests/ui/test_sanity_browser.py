"""SanityCheckView in JupyterLab in Debian's Chromium: the grid fills with maps, the similarity
curves get their points, a clicked map is enlarged, and a long check's progress moves until
Stop, which keeps the maps done."""
import time

from lab_helpers import (
    STDERR,
    canvas_stats,
    open_cells,
    progress_fraction,
    text_matches,
    wait_canvas,
    wait_count,
    wait_progress_moving,
    watch_progress,
    widget_screenshot,
)

CELLS = [
    "import torch\ntorch.set_num_threads(1)\nimport cnn_widgets\nfrom cnn_widgets import zoo",
    "engine = zoo.lenet_digits()\n"
    "view = cnn_widgets.SanityCheckView(engine, other=zoo.lenet_digits_shuffled(), metric='rank')\n"
    "view",
]
STAGES, METHODS = 6, 5        # the digits LeNet: the original and 5 layers; the default methods


def test_sanity_check_view(lab_server, page, artifacts):
    open_cells(page, lab_server, "_sanity.ipynb", CELLS)
    root = page.locator(".cnnw-sanity-check")
    root.scroll_into_view_if_needed()
    status = root.locator(".cnnw-status")

    # 1. the grid fills: signed maps in blue and red (cells still to come are grey)
    text_matches(status, r"sanity check: done in", timeout=120_000)
    grid = wait_canvas(page, root.locator(".cnnw-grid"), "s.coloured > 20000")
    assert grid["w"] > 400 and grid["h"] > 300
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()

    # 2. the curves: one line per method with a point per stage
    wait_count(root, ".cnnw-curves path.dot", STAGES * METHODS)
    lines = root.locator(".cnnw-curves path.line")
    drawn = [d for d in lines.evaluate_all("els => els.map(e => e.getAttribute('d') || '')")
             if d.count("L") >= STAGES - 1]
    assert len(drawn) >= METHODS, drawn

    # 3. a click enlarges a map beside the original one
    box = root.locator(".cnnw-grid").bounding_box()
    page.mouse.click(box["x"] + 104 + 62 * 2 + 28, box["y"] + 18 + 72 * 1 + 28)   # row 1, col 2
    text_matches(root.locator(".cnnw-detail-text"), r"guided backprop.*re-initialised")
    wait_canvas(page, root.locator(".cnnw-detail"), "s.coloured > 2000")
    assert not page.js_errors, page.js_errors
    widget_screenshot(page, root, artifacts, "sanity-check", 1100)

    # 4. a long check (32 images): the progress moves, Stop stops it and keeps the maps done
    page.set_viewport_size({"width": 1400, "height": 1000})
    bar = watch_progress(root)
    images = root.locator(".cnnw-images input")
    images.fill("0-31")
    images.press("Enter")
    text_matches(status, r"sanity check: \d+/\d+")
    seen = wait_progress_moving(bar)
    assert seen == sorted(seen), seen                                   # it only goes forward
    root.locator(".cnnw-stop").click()
    text_matches(status, r"stopped at \d+%", timeout=30_000)
    stopped_at, pixels = progress_fraction(bar), canvas_stats(page, root.locator(".cnnw-grid"))
    time.sleep(1.0)
    assert progress_fraction(bar) == stopped_at < 1                     # it really stopped
    assert canvas_stats(page, root.locator(".cnnw-grid"))["hash"] == pixels["hash"]
    assert 0 < pixels["coloured"] < grid["coloured"]                    # the maps done stay
    assert not page.js_errors, page.js_errors
