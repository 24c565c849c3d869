"""MaximizerPanel and the activation index in JupyterLab in Debian's Chromium: "Build index"
moves the progress bar while the dataset is scanned; "Top-k + histogram" then reads the index
and the panel says so, with the top images and the histogram drawn."""
from lab_helpers import (
    STDERR,
    open_cells,
    text_matches,
    wait_canvas,
    wait_progress_moving,
    watch_progress,
)

CELLS = [
    "import os, tempfile, torch\ntorch.set_num_threads(1)\n"
    "from cnn_widgets import Engine, zoo, MaximizerPanel, objectives",
    # the digits 12 times over in batches of 8: a build long enough to watch
    "digits = zoo.lenet_digits()\n"
    "x, y = digits.dataset.images.repeat(12, 1, 1, 1), digits.dataset.labels.repeat(12)\n"
    "engine = Engine(digits.model, digits.input_shape, dataset=(x, y), batch_size=8,\n"
    "                device='cpu')\n"
    "os.environ['CNN_WIDGETS_CACHE'] = tempfile.mkdtemp()   # a fresh index root\n"
    "panel = MaximizerPanel(engine, objective=objectives.logit(8), top_k=9)\npanel",
]


def test_top_k_is_served_from_an_index_built_with_a_moving_progress_bar(lab_server, page,
                                                                         artifacts):
    open_cells(page, lab_server, "_index.ipynb", CELLS)
    root = page.locator(".cnnw-maximizer")
    root.scroll_into_view_if_needed()
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    text_matches(root.locator(".cnnw-index-status"), "top-k: full scan")

    bar = watch_progress(root)
    root.locator(".cnnw-index-build").click()
    text_matches(root.locator(".cnnw-status"), r"index dataset: \d+/\d+")
    seen = wait_progress_moving(bar, count=3)
    assert seen == sorted(seen), seen
    page.screenshot(path=str(artifacts / "index-building.png"))
    text_matches(root.locator(".cnnw-status"), r"index dataset: done", timeout=120_000)
    text_matches(root.locator(".cnnw-index-status"), r"index: 4320 images")

    root.locator(".cnnw-scan").click()
    text_matches(root.locator(".cnnw-index-status"), r"top-k: from the index", timeout=60_000)
    wait_canvas(page, ".cnnw-max-top", "s.lit > 500")
    page.wait_for_function(                        # the histogram over all 4320 images is drawn
        "() => document.querySelectorAll('.cnnw-hist rect.bar').length >= 20")
    assert not page.js_errors, page.js_errors
    root.screenshot(path=str(artifacts / "index-top-k.png"))
