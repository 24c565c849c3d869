"""FOVExplorer in JupyterLab in Debian's Chromium: the image and the four reconstructions draw;
hovering the grid shows a field of view; clicking a grid position brings new reconstructions;
the best-input search moves the progress bar until Stop stops it."""
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
    "engine = zoo.vgg_digits()\nfov = cnn_widgets.FOVExplorer(engine, image=4, best_steps=100000)\nfov",
]


def test_fov_explorer_hover_and_click(lab_server, page, artifacts):
    open_cells(page, lab_server, "_fov.ipynb", CELLS)
    root = page.locator(".cnnw-fov")
    root.scroll_into_view_if_needed()
    # a MultiCanvas is drawn as one <canvas>: the digit (enlarged), grid and field box
    wait_canvas(page, ".cnnw-fov-image", "s.lit > 20000")
    before = wait_canvas(page, ".cnnw-recon", "s.lit > 5000")
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    wait_count(root, ".cnnw-active-chart rect.bar", 5)   # active features per layer, from a job

    # hover: the field of the position under the mouse, nothing computed
    box = page.locator(".cnnw-fov-image").bounding_box()
    cell = box["width"] / 7                                     # features.10: 7 x 7 positions
    page.mouse.move(box["x"] + 0.5 * cell, box["y"] + 6.5 * cell)
    text_matches(root.locator(".cnnw-hover"), r"^\(6, 0\): field rows \d+–27, columns 0–\d+")

    # click another position: new reconstructions and a new unit
    info_before = page.locator(".cnnw-fov-info").inner_text()
    page.mouse.click(box["x"] + 5.5 * cell, box["y"] + 1.5 * cell)
    text_matches(root.locator(".cnnw-fov-info"), r"at \(y=1, x=5\)", timeout=20_000)
    wait_canvas(page, ".cnnw-recon", "s.hash !== arg", before["hash"])
    assert page.locator(".cnnw-fov-info").inner_text() != info_before
    assert canvas_stats(page, ".cnnw-recon")["lit"] > 5000
    text_matches(root.locator(".cnnw-status"), r"reconstructions: done")

    # a long job: the best-input search moves the progress bar; Stop stops it
    bar = watch_progress(root)
    root.locator(".cnnw-best").click()
    text_matches(root.locator(".cnnw-status"), r"best input: \d+/100000")
    seen = wait_progress_moving(bar)
    assert seen == sorted(seen), seen
    root.locator(".cnnw-stop").click()
    text_matches(root.locator(".cnnw-status"), r"best input: stopped at \d+%", timeout=10_000)
    stopped_at = progress_fraction(bar)
    time.sleep(1.0)
    assert progress_fraction(bar) == stopped_at < 1
    assert not page.js_errors, page.js_errors

    widget_screenshot(page, root, artifacts, "fov-explorer", 1200)
