"""The canvases of :class:`~.prediction_tree_view.PredictionTreeView`: the category hierarchy
with its MST, and one category's prediction tree. No engine calls, no view state."""
from __future__ import annotations

from ipycanvas import Canvas

from ._base import drawing
from .layout.prediction_tree_view import CAT_SIZE, DENDRO_W, MARGIN, CategoryLayout, Point

RED, GRAY, BLUE = "#d00", "#888", "#1f5fa8"


def paint_categories(c: Canvas, ct, lay: CategoryLayout, category: int) -> None:
    """The WPGMA dendrogram of ``ct`` (CategoryTree) on the left, its MST on the right; the
    ``category`` shown in red."""
    h = CAT_SIZE[0]
    with drawing():
        c.clear()
        c.font, c.fill_style = "12px sans-serif", "#222"
        c.fill_text("hierarchy (WPGMA)", MARGIN, 12)
        c.fill_text("minimum spanning tree", DENDRO_W + 20, 12)
        c.stroke_style, c.line_width = "#444", 1.5
        for line in lay.lines:
            c.stroke_lines(line)
        for cl, x in lay.leaf_x.items():
            name = ct.names[ct.classes.index(cl)]
            c.fill_style = RED if cl == category else "#222"
            c.fill_text(name, x - 3 * len(name), h - MARGIN)
        c.stroke_style, c.line_width = BLUE, 2
        for i, j, _w in ct.mst:
            a, b = lay.positions[ct.classes[int(i)]], lay.positions[ct.classes[int(j)]]
            c.stroke_line(a[0], a[1], b[0], b[1])
        for cl, (x, y) in lay.positions.items():
            name = ct.names[ct.classes.index(cl)][:2]
            c.fill_style = RED if cl == category else "#fff"
            c.fill_circle(x, y, 9)
            c.stroke_style, c.line_width = "#222", 1
            c.stroke_circle(x, y, 9)
            c.fill_style = "#fff" if cl == category else "#222"
            c.fill_text(name, x - 3.3 * len(name), y + 4)


def paint_tree(c: Canvas, tree, pos: dict[int, Point], on_path: set[int], selected: int) -> None:
    """The prediction tree ``tree`` with its nodes at ``pos`` (canvas px; -1: the root), the
    nodes ``on_path`` in red with their critical filters, the ``selected`` node ringed."""
    with drawing():
        c.clear()
        c.line_width = 1
        for top in tree.top:                           # root R -> its children
            _edge(c, pos[-1], pos[top], top in on_path)
        for k in range(len(tree.images), tree.n_nodes):
            for kid in tree.children(k):
                _edge(c, pos[k], pos[kid], kid in on_path)
        for k, (x, y) in pos.items():
            leaf = 0 <= k < len(tree.images)
            c.fill_style = RED if k in on_path or k == -1 else (GRAY if leaf else BLUE)
            c.fill_circle(x, y, 2.5 if leaf else 4)
        c.fill_style, c.font = RED, "10px sans-serif"
        for k in on_path:                              # critical filters on the path
            if k >= len(tree.images):
                c.fill_text(f"f{tree.critical(k)}", pos[k][0] + 5, pos[k][1] - 4)
        if selected in pos:
            x, y = pos[selected]
            c.stroke_style, c.line_width = "#000", 2
            c.stroke_circle(x, y, 8)
        c.fill_style, c.font = "#222", "12px sans-serif"
        c.fill_text(f"prediction tree of '{tree.name}' at {tree.layer}: {len(tree.images)} "
                    f"images, {tree.n_filters} filters; red: the image's path, fN: critical "
                    f"filter", MARGIN, 12)


def _edge(c: Canvas, a: Point, b: Point, red: bool) -> None:
    c.stroke_style, c.line_width = (RED, 2.5) if red else ("#bbb", 1)
    c.stroke_line(a[0], a[1], b[0], b[1])
