"""PredictionTreeView: the clustering paper's Fig. 8 and Fig. 10 / 1f as a live view.

Left: the category hierarchy (WPGMA dendrogram) with the minimum spanning tree beside it;
click a category to pick it. Middle: that category's filter-wise prediction tree, the path of
the chosen image in red; click a node for its critical filter, the dataset images that drive
that filter most and the filters it still reaches. Hover for distances.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine.core.control import NO_CONTROL
from ..engine.visualization import objectives
from . import draw
from ._base import JobWidget, drawing, new_canvas, paint_sheet, redraw_on_reconnect
from .pad import DrawingPad

CAT_SIZE = (250, 470)          # category canvas (height, width): dendrogram left, MST right
DENDRO_W = 270
TREE_H = 320
MARGIN = 14
TITLE = 18         # px of title above the tree
TOP_K = 6
RED, GRAY, BLUE = "#d00", "#888", "#1f5fa8"
PAD_PX = 112                   # drawing pad side in px


def classical_mds(d: np.ndarray) -> np.ndarray:
    """(K, K) distances -> (K, 2) positions whose distances approximate them (Torgerson)."""
    k = len(d)
    j = np.eye(k) - 1.0 / k
    b = -0.5 * j @ (d ** 2) @ j
    w, v = np.linalg.eigh(b)
    order = np.argsort(w)[::-1][:2]
    return v[:, order] * np.sqrt(np.maximum(w[order], 1e-12))


def spread(points: np.ndarray, min_dist: float, rounds: int = 60) -> np.ndarray:
    """Push apart points closer than ``min_dist`` (px) so that labelled discs do not cover
    each other; the layout otherwise stays as it was."""
    p = np.array(points, dtype=np.float64)
    for _ in range(rounds):
        diff = p[:, None] - p[None]
        dist = np.hypot(diff[..., 0], diff[..., 1]) + np.eye(len(p))
        push = np.clip(min_dist - dist, 0, None) / 2
        np.fill_diagonal(push, 0)
        if not push.any():
            break
        p += (diff / dist[..., None] * push[..., None]).sum(1)
    return p


def fit(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Scale (K, 2) points into box (left, top, width, height), keeping the aspect ratio."""
    lo, hi = points.min(0), points.max(0)
    span = np.maximum(hi - lo, 1e-12)
    s = min(box[2] / span[0], box[3] / span[1])
    centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    return centre + (points - (lo + hi) / 2) * s


def tree_layout(tree, width: int, height: int) -> dict[int, tuple[float, float]]:
    """Canvas (x, y) of every node of a prediction tree: leaves in a bottom row in
    depth-first order, each super node above the middle of its children, one row per depth
    from the root (top)."""
    depth: dict[int, int] = {}
    order: list[int] = []
    stack = [(t, 1) for t in reversed(tree.top)]
    while stack:
        k, dep = stack.pop()
        depth[k] = dep
        kids = tree.children(k)
        if kids:
            stack.extend((c, dep + 1) for c in reversed(kids))
        else:
            order.append(k)
    rows = max(depth.values()) + 1
    top = TITLE + MARGIN
    dy = (height - top - MARGIN) / max(rows, 1)
    dx = (width - 2 * MARGIN) / max(len(order), 1)
    pos = {k: (MARGIN + dx * (i + 0.5), height - MARGIN) for i, k in enumerate(order)}
    for k in sorted(depth, key=lambda n: -depth[n]):          # deepest first
        kids = tree.children(k)
        if kids:
            pos[k] = (float(np.mean([pos[c][0] for c in kids])), top + dy * depth[k])
    pos[-1] = (float(np.mean([pos[t][0] for t in tree.top])), top)    # the root R
    return pos


class PredictionTreeView(JobWidget):
    """Category hierarchy, MST and one category's prediction tree for an Engine.

    category: class index shown first (default 0); layer: default the last (C, H, W) layer;
    image: dataset row whose path is drawn (default: the first image of the category);
    include_noise: add random noise as a category in the hierarchy (Fig. 8, lower).
    """

    category = T.Int()
    layer = T.Unicode()
    include_noise = T.Bool(False)
    image = T.Int()
    selected = T.Int(-1)            # node of the prediction tree, -1 = none

    def __init__(self, engine, *, category: int = 0, layer: str | None = None,
                 image: int | None = None, include_noise: bool = False,
                 max_images: int | None = None):
        super().__init__(engine)
        self.add_class("cnnw-prediction-tree")
        if engine.dataset is None:
            raise ValueError("PredictionTreeView needs an engine with a dataset")
        self.max_images = max_images
        self.cat_tree = self.tree = self.path = self.top = None
        self.cat_pos: dict[int, tuple[float, float]] = {}     # category -> MST position
        self.leaf_x: dict[int, float] = {}                     # category -> dendrogram x
        self.node_pos: dict[int, tuple[float, float]] = {}
        self.detail_rgba = None
        self.use_pad = False          # the path follows the pad (True) or the dataset image
        self._build()
        with self.hold_trait_notifications():
            self.layer = engine.default_layer_for("features", layer)
            self.include_noise = include_noise
            self.category = int(category)
            self.image = self._first_image(self.category) if image is None else int(image)
        # first picture computed here (a headless notebook saves it); later via the worker
        self._show_categories(engine.category_tree(self.layer, include_noise=include_noise))
        self._show_tree(self._compute_tree())
        self.drawing_pad.draw()
        self.observe(lambda _c: self._request_categories(), names=["layer", "include_noise"])
        self.observe(self._on_category, names=["category"])
        self.observe(self._on_image, names=["image"])
        self.observe(lambda _c: self._on_select(), names=["selected"])
        self._sync_controls()

    # -- building ------------------------------------------------------------------------------
    def _build(self):
        e = self.engine
        spatial = [i.name for i in e.layers if len(i.output_shape) == 3]
        self.layer_box = W.Dropdown(options=spatial, description="layer",
                                    layout=W.Layout(width="190px"))
        self.category_box = W.Dropdown(options=[(n, i) for i, n in enumerate(e.class_names)],
                                       description="category", layout=W.Layout(width="190px"))
        self.noise_box = W.Checkbox(description="noise as a category", indent=False,
                                    layout=W.Layout(width="170px"))
        self.image_box = W.BoundedIntText(min=0, max=len(e.dataset) - 1, description="image",
                                          layout=W.Layout(width="150px"))
        self.hover = W.Label("")
        self.path_text = W.HTML("")
        self.detail_text = W.HTML("Click a node of the prediction tree.")
        self.cat_canvas = new_canvas(CAT_SIZE[1], CAT_SIZE[0], "cnnw-categories")
        self.tree_canvas = new_canvas(560, TREE_H, "cnnw-tree")
        self.detail_canvas = new_canvas(10, 10, "cnnw-filter-images")
        self.pad_scale = max(1, PAD_PX // max(e.input_shape[1:]))
        self.drawing_pad = DrawingPad(e.input_shape, self.pad_scale, row=True)
        self.drawing_pad.on_change(self._on_pad)
        self.pad_canvas, self.clear_button = self.drawing_pad.canvas, self.drawing_pad.clear_button
        for w, cls in ((self.layer_box, "cnnw-layer"), (self.category_box, "cnnw-category"),
                       (self.noise_box, "cnnw-noise"), (self.image_box, "cnnw-image"),
                       (self.hover, "cnnw-hover"), (self.path_text, "cnnw-path"),
                       (self.detail_text, "cnnw-detail-text")):
            w.add_class(cls)
        self.layer_box.observe(lambda c: setattr(self, "layer", c["new"]), names="value")
        self.category_box.observe(lambda c: setattr(self, "category", c["new"]), names="value")
        self.noise_box.observe(lambda c: setattr(self, "include_noise", c["new"]), names="value")
        self.image_box.observe(lambda c: setattr(self, "image", c["new"]), names="value")
        self.cat_canvas.on_mouse_down(self._click_category)
        self.cat_canvas.on_mouse_move(self._hover_category)
        self.tree_canvas.on_mouse_down(self._click_node)
        self.tree_canvas.on_mouse_move(self._hover_node)
        redraw_on_reconnect(self.cat_canvas, self._draw_categories)
        redraw_on_reconnect(self.tree_canvas, self._draw_tree)
        redraw_on_reconnect(self.detail_canvas, self._draw_detail)
        pad = W.VBox([W.HTML("<b>or draw an image</b> (its path replaces the red one)"),
                      self.drawing_pad])
        detail = W.VBox([self.detail_text, self.detail_canvas, pad],
                        layout=W.Layout(width="400px", margin="0 0 0 10px"))
        self.children = [
            W.HBox([self.category_box, self.layer_box, self.noise_box, self.image_box]),
            self.status_bar, self.error, self.hover,
            W.HBox([self.cat_canvas, detail]),
            self.tree_canvas, self.path_text,
        ]

    def _sync_controls(self):
        self.layer_box.value, self.category_box.value = self.layer, self.category
        self.noise_box.value, self.image_box.value = self.include_noise, self.image

    def _first_image(self, category: int) -> int:
        hits = np.flatnonzero(self.engine.dataset.labels.numpy() == category)
        return int(hits[0]) if len(hits) else 0

    # -- requests (worker thread) ---------------------------------------------------------------
    def _compute_tree(self, control=NO_CONTROL):
        return self.engine.prediction_tree(self.category, self.layer,
                                           max_images=self.max_images, control=control)

    def _request_categories(self):
        layer, noise = self.layer, self.include_noise
        self.run_job("categories", lambda control: self.engine.category_tree(
            layer, include_noise=noise, control=control), self._show_categories,
            label="category hierarchy")
        self._request_tree()

    def _on_category(self, _change):
        if not self.use_pad:                         # a drawn image stays the query
            self.image = self._first_image(self.category)
        self._sync_controls()
        self._request_tree()

    def _request_tree(self):
        self.selected = -1
        self.run_job("tree", self._compute_tree, self._show_tree, label="prediction tree")

    def _query_image(self) -> np.ndarray:
        return self.pad.copy() if self.use_pad else self.engine.dataset.images[self.image].numpy()

    def _on_image(self, _change):
        self.use_pad = False
        self._request_path()

    def _request_path(self):
        self._sync_controls()
        tree, image = self.tree, self._query_image()
        if tree is not None:
            self.run_job("path", lambda control: tree.path(image),
                         lambda path: tree is self.tree and self._show_path(path),
                         label="path", quiet=True)

    def _on_select(self):
        node, tree = self.selected, self.tree
        self.top = None                                   # the last node's images are stale
        self._draw_detail()
        self._draw_tree()
        if tree is None or node < len(tree.images):       # none, or a leaf: no filter
            return
        f = tree.critical(node)
        self.run_job("top", lambda control: self.engine.top_images(
            objectives.channel(tree.layer, f), k=TOP_K, control=control),
            self._show_top, label=f"top images of filter {f}")

    # -- results ---------------------------------------------------------------------------------
    def _show_categories(self, cat_tree):
        """Keep the hierarchy and lay it out once (redraws only recolour the category)."""
        h = CAT_SIZE[0]
        dg = cat_tree.dendrogram()
        ic, dc = np.array(dg["icoord"]), np.array(dg["dcoord"])
        sx = (DENDRO_W - 2 * MARGIN) / (10.0 * len(cat_tree.names))
        sy = (h - 3 * MARGIN - 16) / max(dc.max(), 1e-12)
        self._dendro_lines = [np.stack([xs, ys], 1) for xs, ys in
                              zip(MARGIN + ic * sx, h - 2 * MARGIN - dc * sy)]
        self.leaf_x = {int(cat_tree.classes[leaf]): MARGIN + (10 * i + 5) * sx
                       for i, leaf in enumerate(dg["leaves"])}
        pos = spread(fit(classical_mds(cat_tree.distances), (DENDRO_W + 20, MARGIN + 14,
                                                            CAT_SIZE[1] - DENDRO_W - 30,
                                                            h - 2 * MARGIN - 20)), 22.0)
        self.cat_pos = {int(cl): (float(p[0]), float(p[1]))
                        for cl, p in zip(cat_tree.classes, pos)}
        self.cat_tree = cat_tree
        self._draw_categories()

    def _show_tree(self, tree):
        self.tree = tree
        self.node_pos = tree_layout(tree, self.tree_canvas.width, self.tree_canvas.height)
        self.path = tree.path(self._query_image())
        self.top = None
        self._draw_tree()
        self._draw_detail()
        self._draw_categories()
        self._write_path()

    def _show_path(self, path):
        self.path = path
        self._draw_tree()
        self._write_path()

    def _show_top(self, top):
        self.top = top
        self._draw_detail()

    # -- drawing ---------------------------------------------------------------------------------
    def _draw_categories(self):
        ct = self.cat_tree
        if ct is None:
            return
        c, h = self.cat_canvas, CAT_SIZE[0]
        with drawing():
            c.clear()
            c.font, c.fill_style = "12px sans-serif", "#222"
            c.fill_text("hierarchy (WPGMA)", MARGIN, 12)
            c.fill_text("minimum spanning tree", DENDRO_W + 20, 12)
            c.stroke_style, c.line_width = "#444", 1.5
            for line in self._dendro_lines:
                c.stroke_lines(line)
            for cl, x in self.leaf_x.items():
                name = ct.names[ct.classes.index(cl)]
                c.fill_style = RED if cl == self.category else "#222"
                c.fill_text(name, x - 3 * len(name), h - MARGIN)
            c.stroke_style, c.line_width = BLUE, 2
            for i, j, _w in ct.mst:
                a, b = self.cat_pos[ct.classes[int(i)]], self.cat_pos[ct.classes[int(j)]]
                c.stroke_line(a[0], a[1], b[0], b[1])
            for cl, (x, y) in self.cat_pos.items():
                name = ct.names[ct.classes.index(cl)]
                c.fill_style = RED if cl == self.category else "#fff"
                c.fill_circle(x, y, 9)
                c.stroke_style, c.line_width = "#222", 1
                c.stroke_circle(x, y, 9)
                c.fill_style = "#fff" if cl == self.category else "#222"
                c.fill_text(name[:2], x - 3.3 * len(name[:2]), y + 4)

    def _draw_tree(self):
        tree, c = self.tree, self.tree_canvas
        if tree is None:
            return
        pos = self.node_pos
        on_path = set(self.path.nodes) if self.path is not None else set()
        with drawing():
            c.clear()
            c.line_width = 1
            for top in tree.top:                           # root R -> its children
                self._edge(c, pos[-1], pos[top], top in on_path)
            for k in range(len(tree.images), tree.n_nodes):
                for kid in tree.children(k):
                    self._edge(c, pos[k], pos[kid], kid in on_path)
            for k, (x, y) in pos.items():
                leaf = 0 <= k < len(tree.images)
                c.fill_style = RED if k in on_path or k == -1 else (GRAY if leaf else BLUE)
                c.fill_circle(x, y, 2.5 if leaf else 4)
            c.fill_style, c.font = RED, "10px sans-serif"
            for k in on_path:                              # critical filters on the path
                if k >= len(tree.images):
                    c.fill_text(f"f{tree.critical(k)}", pos[k][0] + 5, pos[k][1] - 4)
            if self.selected in pos:
                x, y = pos[self.selected]
                c.stroke_style, c.line_width = "#000", 2
                c.stroke_circle(x, y, 8)
            c.fill_style, c.font = "#222", "12px sans-serif"
            c.fill_text(f"prediction tree of '{tree.name}' at {tree.layer}: {len(tree.images)} "
                        f"images, {tree.n_filters} filters; red: the image's path, fN: critical "
                        f"filter", MARGIN, 12)

    @staticmethod
    def _edge(c, a, b, red):
        c.stroke_style, c.line_width = (RED, 2.5) if red else ("#bbb", 1)
        c.stroke_line(a[0], a[1], b[0], b[1])

    def _draw_detail(self):
        tree, node, top = self.tree, self.selected, self.top
        c = self.detail_canvas
        if tree is None or node < 0:
            self.detail_text.value = "Click a node of the prediction tree."
            self.detail_rgba = None
            with drawing():
                c.clear()
            return
        filters = np.flatnonzero(tree.merges.filters[node])
        n = len(tree.images)
        if node < n:
            self.detail_text.value = (f"<b>leaf {node}</b>: dataset image {tree.images[node]} "
                                      f"(all {tree.n_filters} filters reachable)")
            cells = [[draw.upscale(draw.image(self.engine.dataset.images[tree.images[node]]
                                              .numpy()), 2)]]
        else:
            f = tree.critical(node)
            kids = tree.children(node)
            self.detail_text.value = (
                f"<b>node {node}</b> ({tree.merges.size[node]} images): critical filter "
                f"<b>{f}</b>, merged at ½(1−cos) = {tree.merges.distance[node - n]:.4f} from "
                f"nodes {kids[0]} and {kids[1]}<br>reachable filters ({len(filters)}): "
                f"{html.escape(', '.join(str(int(i)) for i in filters))}<br>"
                + (f"dataset images that drive filter {f} most "
                   f"({html.escape(top.objective)}):" if top is not None else "…"))
            if top is None:
                self.detail_rgba = None
                with drawing():
                    c.clear()
                return
            cells = [[draw.upscale(draw.image(img), 2) for img in top.images]]
        sheet, _ = draw.tile(cells, cells[0][0].shape[:2], (2, 4))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(c, sheet)

    def _write_path(self):
        p, tree = self.path, self.tree
        if p is None or tree is None:
            return
        steps = []
        for k, f, a, m in zip(p.nodes, p.critical, p.image_activation, p.node_activation):
            steps.append(f"leaf {k} (image {tree.images[k]})" if f < 0 else
                         f"node {k}: filter {f} = {a:.2f} (node mean {m:.2f})")
        if self.use_pad:
            what = "<b>path of the drawn image</b>"
        else:
            label = self.engine.class_names[int(self.engine.dataset.labels[self.image])]
            what = f"<b>path of image {self.image}</b> (label {label})"
        self.path_text.value = f"{what} in red: " + " → ".join(steps)

    # -- events (kernel thread: quick) ----------------------------------------------------------
    def _nearest(self, points: dict[int, tuple[float, float]], x, y, radius=12.0):
        if not points:
            return None
        keys = list(points)
        d = [np.hypot(points[k][0] - x, points[k][1] - y) for k in keys]
        i = int(np.argmin(d))
        return keys[i] if d[i] <= radius else None

    def _category_at(self, x, y) -> int | None:
        hit = self._nearest(self.cat_pos, x, y)
        if hit is None and y > CAT_SIZE[0] - 2 * MARGIN:          # the dendrogram's labels
            hit = self._nearest({k: (v, CAT_SIZE[0] - MARGIN) for k, v in self.leaf_x.items()},
                                x, y, radius=10.0)
        return hit

    def _click_category(self, x, y):
        cl = self._category_at(x, y)
        if cl is not None and cl >= 0:                              # noise has no tree
            self.category = cl
            self._sync_controls()
            self._draw_categories()

    def _hover_category(self, x, y):
        cl, ct = self._category_at(x, y), self.cat_tree
        if cl is None or ct is None:
            return
        i = ct.classes.index(cl)
        order = np.argsort(ct.distances[i])[1:4]
        self.hover.value = (f"{ct.names[i]}: nearest " + ", ".join(
            f"{ct.names[j]} {ct.distances[i, j]:.3f}" for j in order))

    def _click_node(self, x, y):
        node = self._nearest(self.node_pos, x, y, radius=8.0)
        if node is not None and node >= 0:
            self.selected = node

    def _hover_node(self, x, y):
        node, tree = self._nearest(self.node_pos, x, y, radius=8.0), self.tree
        if node is None or node < 0 or tree is None:
            return
        n = len(tree.images)
        text = f"node {node}: {tree.merges.size[node]} images"
        if node >= n:
            text += f", merge distance {tree.merges.distance[node - n]:.4f}"
        if self.path is not None and node in self.path.nodes:
            text += f", image distance {self.path.distance[self.path.nodes.index(node)]:.4f}"
        self.hover.value = text

    # -- the drawing pad ---------------------------------------------------------------------
    @property
    def pad(self) -> np.ndarray:
        """The drawing on the pad, (C, H, W) float32 in [0, 1] (the pad's own array)."""
        return self.drawing_pad.image

    def _on_pad(self, kind: str):
        """A stroke makes the drawing the query and asks for its path; clearing asks again
        only while the drawing is the query."""
        if kind == "stroke":
            self.use_pad = True
        if self.use_pad:
            self._request_path()

    def clear_pad(self):
        self.drawing_pad.clear()
