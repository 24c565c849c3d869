"""Self-test of the browser fixtures: a tiny ipycanvas notebook runs in JupyterLab and draws."""
import nbformat
from lab_helpers import STDERR, canvas_stats, open_and_run_all, wait_canvas

DRAW = """\
from ipycanvas import Canvas

canvas = Canvas(width=200, height=120)
canvas.add_class("smoke-canvas")

def draw():
    canvas.fill_style = "#e05020"
    canvas.fill_rect(20, 20, 160, 80)

def redraw_for_new_client():
    # ipycanvas 0.14 caches the current canvas and would skip switchCanvas for a new front end
    canvas._canvas_manager._current_canvas = None
    draw()

canvas.on_client_ready(redraw_for_new_client)
draw()
canvas"""


def test_canvas_notebook_runs_and_draws(lab_server, page):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import ipycanvas"), nbformat.v4.new_code_cell(DRAW)]
    nbformat.write(nb, lab_server.root / "smoke.ipynb")

    open_and_run_all(page, lab_server.notebook_url("smoke.ipynb"))
    stats = wait_canvas(page, ".smoke-canvas", "s.lit > 0")

    assert (stats["w"], stats["h"]) == (200, 120)
    assert 0.9 * 160 * 80 <= stats["lit"] <= 200 * 120, stats
    assert canvas_stats(page, ".smoke-canvas")["hash"] == stats["hash"]
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    assert not page.js_errors, page.js_errors
