"""PredictionTreeView in JupyterLab in Debian's Chromium: the hierarchy, MST and tree draw;
hovering a node names it; clicking a node shows its critical filter and that filter's top
images; a stroke on the pad gets its path; clicking a category in the MST builds its tree;
a category searched by name in the category box does too, and the path to it is spelled out."""

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

    # 1. the hierarchy + MST and the tree are drawn (the red path, the blue MST and nodes;
    # the hints shown at once have no colour)
    wait_canvas(page, ".cnnw-categories", "s.coloured > 300")
    wait_canvas(page, ".cnnw-tree", "s.coloured > 300")
    text_matches(root.locator(".cnnw-path"), r"path of image \d+")
    text_matches(root.locator(".cnnw-breadcrumb"), r"^all 10 › .* › 0$")

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
    wait_canvas(page, ".cnnw-tree", "s.coloured > 300")
    assert drawn_before["coloured"] > 300

    # 4. click category 3 in the MST: the category box and the path to it follow, and the tree
    # is rebuilt (wait for the box: events queue behind the pad's)
    box = root.locator(".cnnw-category input")
    tree_drawn = canvas_stats(page, ".cnnw-tree")
    cats = page.locator(".cnnw-categories")
    cbox = cats.bounding_box()
    page.mouse.click(cbox["x"] + targets["cat3"][0], cbox["y"] + targets["cat3"][1])
    page.wait_for_function("([el, v]) => el.value === v", arg=[box.element_handle(), "3: 3"])
    text_matches(root.locator(".cnnw-breadcrumb"), r"^all 10 › .* › 3$")
    text_matches(root.locator(".cnnw-status"), r"prediction tree: done")
    tree_3 = wait_canvas(page, ".cnnw-tree", "s.hash !== arg && s.coloured > 300",
                         tree_drawn["hash"])
    text_matches(root.locator(".cnnw-path"), r"path of the drawn image")   # the pad still leads

    # 5. search a category by name: type it in the category box, Enter
    box.fill("7: 7")
    box.press("Enter")
    text_matches(root.locator(".cnnw-breadcrumb"), r"^all 10 › .* › 7$")
    text_matches(root.locator(".cnnw-status"), r"prediction tree: done")
    wait_canvas(page, ".cnnw-tree", "s.hash !== arg && s.coloured > 300", tree_3["hash"])
    assert not page.js_errors, page.js_errors
