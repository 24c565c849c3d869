"""The widgets on a ResNet (the zoo's digits ResNet) in JupyterLab in Debian's Chromium: each one
draws without an error, and a hover or click brings what it should."""

import pytest
from lab_helpers import (
    COLOURED_JS,
    STDERR,
    canvas_stats,
    click_etalon,
    click_tree_node,
    open_cells,
    printed_targets,
    text_matches,
    wait_canvas,
)

from cnn_widgets.zoo import resnet_digits

SETUP = ("import json, torch\ntorch.set_num_threads(1)\nimport cnn_widgets\n"
         "from cnn_widgets import zoo\nengine = zoo.resnet_digits()")


@pytest.fixture(scope="module", autouse=True)
def trained():
    """Trained and cached here (once): the kernels only load it."""
    resnet_digits()


def no_errors(page, root):
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    assert root.locator(".cnnw-error").inner_text().strip() == ""


def test_fov_explorer_on_a_resnet(lab_server, page, artifacts):
    open_cells(page, lab_server, "_resnet_fov.ipynb", [
        SETUP, "fov = cnn_widgets.FOVExplorer(engine, image=4, layer='layer3.0.conv1')\nfov"])
    root = page.locator(".cnnw-fov")
    root.scroll_into_view_if_needed()
    wait_canvas(page, ".cnnw-fov-image", "s.lit > 20000")
    before = wait_canvas(page, ".cnnw-recon", "s.lit > 5000")
    # the status shows the job that ended last: the reconstructions or the dataset activity
    text_matches(root.locator(".cnnw-status"), r"(reconstructions|dataset activity): done")
    no_errors(page, root)
    box = page.locator(".cnnw-fov-image").bounding_box()
    cell = box["width"] / 7                                  # layer3: 7 x 7 positions
    page.mouse.move(box["x"] + 0.5 * cell, box["y"] + 6.5 * cell)
    text_matches(root.locator(".cnnw-hover"), r"^\(6, 0\): field rows \d+–27, columns 0–\d+")
    page.mouse.click(box["x"] + 5.5 * cell, box["y"] + 1.5 * cell)
    text_matches(root.locator(".cnnw-fov-info"), r"at \(y=1, x=5\)", timeout=20_000)
    wait_canvas(page, ".cnnw-recon", "s.hash !== arg", before["hash"])
    assert canvas_stats(page, ".cnnw-recon")["lit"] > 5000
    no_errors(page, root)
    assert not page.js_errors, page.js_errors


def test_etalon_grids_of_the_logits_and_of_a_conv_unit_on_a_resnet(lab_server, page, artifacts):
    open_cells(page, lab_server, "_resnet_etalons.ipynb", [
        SETUP, "grid = cnn_widgets.EtalonGrid(engine)\ngrid",
        "conv = cnn_widgets.EtalonGrid(engine, layer='layer4.0.conv2', units=[(5, 1, 2)])\nconv",
        "from cnn_widgets.widgets.etalon_grid import GAP, HEADER\ngrid.wait()\nh, w = grid.cell\n"
        "print('TARGETS ' + json.dumps({'x': 3 * (w + GAP[1]) + w / 2, "
        "'y': HEADER + 4 * (h + GAP[0]) + h / 2}))"])
    logits, unit = page.locator(".cnnw-etalon-grid").nth(0), page.locator(".cnnw-etalon-grid").nth(1)
    for root, lit in ((logits, 100000), (unit, 20000)):
        root.scroll_into_view_if_needed()
        wait_canvas(page, root.locator(".cnnw-grid"), f"s.lit > {lit} && s.coloured > {lit // 10}")
        assert root.locator(".cnnw-grid").evaluate(COLOURED_JS) > lit // 10
        text_matches(root.locator(".cnnw-status"), r"etalons: done")
        no_errors(page, root)
    # click row 4, logit 2: the exact decomposition of that logit
    xy = printed_targets(page)
    logits.scroll_into_view_if_needed()
    click_etalon(page, logits, xy["x"], xy["y"])
    assert not page.js_errors, page.js_errors


def test_prediction_tree_view_on_a_resnet(lab_server, page, artifacts):
    open_cells(page, lab_server, "_resnet_tree.ipynb", [
        SETUP, "view = cnn_widgets.PredictionTreeView(engine)\nview",
        "view.wait()\nnode = next(k for k in view.path.nodes if k >= len(view.tree.images))\n"
        "print('TARGETS ' + json.dumps({'node': node, 'xy': view.node_pos[node], "
        "'layer': view.tree.layer}))"])
    root = page.locator(".cnnw-prediction-tree")
    root.scroll_into_view_if_needed()
    wait_canvas(page, ".cnnw-categories", "s.lit > 2000")
    wait_canvas(page, ".cnnw-tree", "s.lit > 2000")
    text_matches(root.locator(".cnnw-path"), r"path of image \d+")
    no_errors(page, root)
    t = printed_targets(page)
    assert t["layer"] != "avgpool" and root.locator(".cnnw-layer select").input_value() == t["layer"]
    click_tree_node(page, root, t)
    no_errors(page, root)
    assert not page.js_errors, page.js_errors
