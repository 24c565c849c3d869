"""InverseSetGallery in JupyterLab in Debian's Chromium: the dataset histogram shows when its
values arrive after the page drew the widget; Run shows the seeds, then fills the gallery with
samples while the progress bar moves, Stop stops it, a clicked sample is enlarged with its
etalon."""
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

# The dataset values arrive 3 s late, as on a large dataset: the page draws the widget first.
# (Drawn from a one-point placeholder, bqplot's axis failed and the histogram never showed.)
CELL = """\
import time
import cnn_widgets
from cnn_widgets import zoo
engine, G = zoo.lenet_digits(), zoo.digits_generator()
values, late = engine.activation_histogram, [3]
engine.activation_histogram = lambda *a, **k: (time.sleep(late.pop() if late else 0),
                                               values(*a, **k))[1]
gallery = cnn_widgets.InverseSetGallery(engine, G, layer="fc3", unit=3, range=(8, 10), K=10,
                                        n=20000)
gallery"""


def test_inverse_set_gallery(lab_server, page, artifacts):
    from cnn_widgets.zoo import digits_generator, lenet_digits
    lenet_digits(), digits_generator()      # trained and cached here: the kernel only loads them
    open_cells(page, lab_server, "_inverse_set.ipynb", [CELL])
    root = page.locator(".cnnw-inverse-set")
    root.scroll_into_view_if_needed()
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    wait_count(root, ".cnnw-data-hist rect.bar", 10)     # the dataset histogram, from a job
    assert not page.console_errors, page.console_errors

    # 1. Run: the seeds, then the gallery fills as samples arrive, the progress bar moves
    empty = wait_canvas(page, ".cnnw-gallery", "s.w > 0")
    bar = watch_progress(root)
    root.locator(".cnnw-run").click()
    first = wait_canvas(page, ".cnnw-gallery", "s.lit > 5000 && s.hash !== arg", empty["hash"])
    wait_canvas(page, ".cnnw-gallery", "s.hash !== arg", first["hash"])   # more pictures came
    seen = wait_progress_moving(bar)
    assert seen == sorted(seen), seen                                   # it only goes forward
    text_matches(root.locator(".cnnw-status"), r"inverse set: ([2-9]\d|\d{3,})/20000")  # samples

    # 2. Stop stops it
    root.locator(".cnnw-stop").click()
    text_matches(root.locator(".cnnw-status"), r"stopped at \d+%", timeout=10_000)
    stopped_at = progress_fraction(bar)
    time.sleep(1.0)
    assert progress_fraction(bar) == stopped_at < 1

    # 3. click a sample: enlarged with its etalon
    gallery = page.locator(".cnnw-gallery")
    gallery.scroll_into_view_if_needed()
    box = gallery.bounding_box()
    page.mouse.click(box["x"] + 28, box["y"] + 18 + 28)      # the first cell, below the title
    text_matches(root.locator(".cnnw-detail-text"), r"fc3 unit 3: f = [0-9.]+ \(range \[8\.00, 10\.00\]")
    wait_canvas(page, ".cnnw-detail", "s.lit > 1000")
    assert not page.js_errors, page.js_errors
    assert canvas_stats(page, ".cnnw-gallery")["lit"] > 5000
    widget_screenshot(page, root, artifacts, "inverse-set-gallery", 1000)
