"""PredictionTreeView in JupyterLab in Debian's Chromium: the hierarchy, MST and tree draw;
hovering a node names it; clicking a node shows its critical filter and that filter's top
images; a stroke on the pad gets its path; clicking a category in the MST builds its tree."""

from lab_helpers import (
    STDERR,
    canvas_stats,
    click_tree_node,
    draw_stroke,
    open_cells,
    printed_targets,
    text_matches,
    wait_canvas,
    widget_screenshot,
)

CELLS = [
    "import json, cnn_widgets\nfrom cnn_widgets import zoo\nengine = zoo.lenet_digits()",
    "view = cnn_widgets.PredictionTreeView(engine)\nview",
    # where to click: the first super node on the image's path, and category 3 in the MST
    "view.wait()\nnode = next(k for k in view.path.nodes if k >= len(view.tree.images))\n"
    "print('TARGETS ' + json.dumps({'node': node, 'xy': view.node_pos[node], "
    "'cat3': view.cat_pos[3]}))",
]


def test_prediction_tree_view_in_jupyterlab(lab_server, page, artifacts):
    open_cells(page, lab_server, "_prediction_tree.ipynb", CELLS)
    assert page.locator(STDERR).count() == 0, page.locator(STDERR).all_inner_texts()
    root = page.locator(".cnnw-prediction-tree")
    root.scroll_into_view_if_needed()

    # 1. the hierarchy + MST and the tree are drawn
    wait_canvas(page, ".cnnw-categories", "s.lit > 2000")
    wait_canvas(page, ".cnnw-tree", "s.lit > 2000")
    text_matches(root.locator(".cnnw-path"), r"path of image \d+")

    # 2. hover a node: its size and distances; click it: critical filter and top images
    targets = printed_targets(page)
    click_tree_node(page, root, targets)
    text_matches(root.locator(".cnnw-detail-text"), r"reachable filters \(\d+\)")
    text_matches(root.locator(".cnnw-detail-text"), r"dataset images that drive filter \d+ most")
    widget_screenshot(page, root, artifacts, "prediction-tree", 1200)

    # 3. a stroke drawn on the pad gets its own path
    drawn_before = canvas_stats(page, ".cnnw-tree")
    draw_stroke(page, root.locator(".cnnw-pad"), 58, 20, 8, 9)
    assert canvas_stats(page, ".cnnw-pad")["lit"] > 200
    text_matches(root.locator(".cnnw-path"), r"path of the drawn image")
    drawn = wait_canvas(page, ".cnnw-tree", "s.lit > 2000")
    assert drawn_before["lit"] > 2000

    # 4. click category 3 in the MST: the dropdown follows and the tree is rebuilt
    cats = page.locator(".cnnw-categories")
    cbox = cats.bounding_box()
    page.mouse.click(cbox["x"] + targets["cat3"][0], cbox["y"] + targets["cat3"][1])
    # wait for this click's effects: the status and the tree already changed in step 3
    page.wait_for_function("el => el.value === '3'",
                           arg=page.locator(".cnnw-category select").element_handle())
    text_matches(root.locator(".cnnw-status"), r"prediction tree: done")
    wait_canvas(page, ".cnnw-tree", "s.hash !== arg", drawn["hash"])
    text_matches(root.locator(".cnnw-path"), r"path of the drawn image")   # the pad still leads
    assert canvas_stats(page, ".cnnw-tree")["lit"] > 2000
    assert not page.js_errors, page.js_errors
