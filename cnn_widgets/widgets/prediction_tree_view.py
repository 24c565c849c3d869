"""PredictionTreeView: the clustering paper's Fig. 8 and Fig. 10 / 1f as a live view.

Left: the category hierarchy (WPGMA dendrogram) with the minimum spanning tree beside it;
click a category to pick it. Middle: that category's filter-wise prediction tree, the path of
the chosen image in red; click a node for its critical filter, the dataset images that drive
that filter most and the filters it still reaches. Hover for distances.

State: ``category``, ``layer``, ``include_noise``, ``image`` and ``selected`` are traits
(validated); :meth:`_changed` derives what is shown. Every engine call runs as a job, whose
result is shown only while the state it was asked for is still the view's.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine import Engine, InvalidArgument
from ..engine.clustering.category_tree import CategoryTree
from ..engine.visualization import objectives
from . import draw
from ._base import JobWidget, drawing, new_canvas, paint_sheet, placeholder, redraw_on_reconnect
from .layout.prediction_tree_view import (
    CAT_SIZE,
    Categories,
    CategoryLayout,
    TreeResult,
    category_at,
    category_layout,
    nearest,
    tree_layout,
)
from .pad import DrawingPad
from .prediction_tree_drawing import paint_categories, paint_tree
from .validate import Whole, in_range, one_of

TREE_H = 320
TOP_K = 6
PAD_PX = 112                   # drawing pad side in px


class PredictionTreeView(JobWidget):
    """Category hierarchy, MST and one category's prediction tree for an Engine.

    category: class index shown first (default 0); layer: default the last (C, H, W) layer;
    image: dataset row whose path is drawn (default: the first image of the category);
    include_noise: add random noise as a category in the hierarchy (Fig. 8, lower).
    """

    category = Whole()
    layer = T.Unicode()
    include_noise = T.Bool(False)
    image = Whole()
    selected = Whole(-1)            # node of the prediction tree, -1 = none
    # job key -> the state its result answers (shown only while that still holds); ``_query``
    # counts the changes of the query image (a dataset row or the pad)
    REQUESTS = {"categories": ("layer", "include_noise"), "tree": ("category", "layer"),
                "path": ("tree", "_query"), "top": ("tree", "selected")}

    def __init__(self, engine: Engine, *, category: int = 0, layer: str | None = None,
                 image: int | None = None, include_noise: bool = False,
                 max_images: int | None = None):
        super().__init__(engine)
        self.add_class("cnnw-prediction-tree")
        if engine.dataset is None:
            raise InvalidArgument("PredictionTreeView needs an engine with a dataset")
        self.max_images = max_images
        self.cat_tree: CategoryTree | None = None
        self.cat_layout: CategoryLayout | None = None
        self.tree = self.path = self.top = None
        self.node_pos: dict[int, tuple[float, float]] = {}
        self.detail_rgba = None
        self.use_pad = False          # the path follows the pad (True) or the dataset image
        self._query = 0               # version of the query image: +1 at every change
        self._build()
        with self.hold_trait_notifications():
            self.layer = engine.default_layer_for("features", layer)
            self.include_noise = include_noise
            self.category = int(category)
            self.image = self._first_image(self.category) if image is None else int(image)
        self._sync_controls()
        self.drawing_pad.draw()
        placeholder(self.cat_canvas, "computing the category hierarchy…")
        placeholder(self.tree_canvas, "computing the prediction tree…")
        self.observe(self._changed, names=["layer", "include_noise", "category", "image",
                                           "selected"])
        self._request_categories()
        self._request_tree()

    # -- traits --------------------------------------------------------------------------------
    @T.validate("category")
    def _valid_category(self, proposal):
        return in_range("category", proposal.value, 0, self.engine.n_classes - 1)

    @T.validate("image")
    def _valid_image(self, proposal):
        return in_range("image", proposal.value, 0, len(self.engine.dataset) - 1)

    @T.validate("layer")
    def _valid_layer(self, proposal):
        return one_of("layer", proposal.value, self.layer_box.options,
                      " (the layers with a (C, H, W) output)")

    @T.validate("selected")
    def _valid_selected(self, proposal):
        n = self.tree.n_nodes if self.tree is not None else 0
        return in_range("selected", proposal.value, -1, n - 1)

    def _changed(self, change):
        name = change["name"]
        self._sync_controls()
        if name == "layer":
            self._request_categories()
            self._request_tree()
        elif name == "include_noise":
            self._request_categories()
        elif name == "category":
            if not self.use_pad:                     # a drawn image stays the query
                self.image = self._first_image(self.category)
            self._draw_categories()
            self._request_tree()
        elif name == "image":
            self.use_pad = False
            self._request_path()
        else:
            self._on_select()

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
        for box, name in ((self.layer_box, "layer"), (self.category_box, "category"),
                          (self.noise_box, "include_noise"), (self.image_box, "image")):
            box.observe(lambda c, name=name: setattr(self, name, c["new"]), names="value")
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

    @property
    def cat_pos(self) -> dict[int, tuple[float, float]]:
        """category -> its MST disc (x, y) on the category canvas."""
        return self.cat_layout.positions if self.cat_layout is not None else {}

    @property
    def leaf_x(self) -> dict[int, float]:
        """category -> the x of its dendrogram label."""
        return self.cat_layout.leaf_x if self.cat_layout is not None else {}

    # -- requests (jobs on the worker) ----------------------------------------------------------
    def _request_categories(self):
        layer, noise = self.layer, self.include_noise

        def work(control):
            ct = self.engine.category_tree(layer, include_noise=noise, control=control)
            dg = ct.dendrogram()
            return Categories(ct, category_layout(dg["icoord"], dg["dcoord"], dg["leaves"],
                                                  ct.classes, ct.distances))
        self.run_job("categories", work, self._show_categories, label="category hierarchy")

    def _request_tree(self):
        self.selected = -1
        category, layer = self.category, self.layer
        w, h = self.tree_canvas.width, self.tree_canvas.height

        def work(control):
            tree = self.engine.prediction_tree(category, layer, max_images=self.max_images,
                                               control=control)
            version, query = self._query, self._query_image()    # the query as it is now
            return TreeResult(tree, tree.path(query), tree_layout(tree.top, tree.children, w, h),
                              version)
        self.run_job("tree", work, self._show_tree, label="prediction tree")

    def _query_image(self) -> np.ndarray:
        return self.pad.copy() if self.use_pad else self.engine.dataset.images[self.image].numpy()

    def _request_path(self):
        self._query += 1
        tree, image = self.tree, self._query_image()
        if tree is not None:
            self.run_job("path", lambda control: tree.path(image), self._show_path,
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
            self._show_top, label=f"top images of filter {f}", quiet=True)

    # -- results (on the worker) -----------------------------------------------------------------
    def _show_categories(self, result: Categories):
        self.cat_tree, self.cat_layout = result.tree, result.layout
        self._draw_categories()

    def _show_tree(self, result: TreeResult):
        self.selected = -1
        self.tree, self.path, self.node_pos = result.tree, result.path, result.node_pos
        self.top = None
        self._draw_tree()
        self._draw_detail()
        self._write_path()
        if result.query != self._query:        # the query changed while the tree was built
            self._request_path()

    def _show_path(self, path):
        self.path = path
        self._draw_tree()
        self._write_path()

    def _show_top(self, top):
        self.top = top
        self._draw_detail()

    # -- drawing ---------------------------------------------------------------------------------
    def _draw_categories(self):
        if self.cat_tree is not None:
            paint_categories(self.cat_canvas, self.cat_tree, self.cat_layout, self.category)

    def _draw_tree(self):
        if self.tree is not None:
            on_path = set(self.path.nodes) if self.path is not None else set()
            paint_tree(self.tree_canvas, self.tree, self.node_pos, on_path, self.selected)

    def _draw_detail(self):
        tree, node, top = self.tree, self.selected, self.top
        cells = None
        if tree is None or node < 0:
            self.detail_text.value = "Click a node of the prediction tree."
        elif node < len(tree.images):
            self.detail_text.value = (f"<b>leaf {node}</b>: dataset image {tree.images[node]} "
                                      f"(all {tree.n_filters} filters reachable)")
            cells = [[draw.upscale(draw.image(self.engine.dataset.images[tree.images[node]]
                                              .numpy()), 2)]]
        else:
            self.detail_text.value = self._node_text(tree, node, top)
            if top is not None:
                cells = [[draw.upscale(draw.image(img), 2) for img in top.images]]
        if cells is None:
            self.detail_rgba = None
            with drawing():
                self.detail_canvas.clear()
            return
        sheet, _ = draw.tile(cells, cells[0][0].shape[:2], (2, 4))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(self.detail_canvas, sheet)

    @staticmethod
    def _node_text(tree, node: int, top) -> str:
        n, f, kids = len(tree.images), tree.critical(node), tree.children(node)
        filters = np.flatnonzero(tree.merges.filters[node])
        return (f"<b>node {node}</b> ({tree.merges.size[node]} images): critical filter "
                f"<b>{f}</b>, merged at ½(1−cos) = {tree.merges.distance[node - n]:.4f} from "
                f"nodes {kids[0]} and {kids[1]}<br>reachable filters ({len(filters)}): "
                f"{', '.join(str(int(i)) for i in filters)}<br>"
                + (f"dataset images that drive filter {f} most "
                   f"({html.escape(top.objective)}):" if top is not None else "…"))

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
            what = f"<b>path of image {self.image}</b> (label {html.escape(label)})"
        self.path_text.value = f"{what} in red: " + " → ".join(steps)

    # -- events (kernel thread: quick, no engine work) ---------------------------------------------
    def _click_category(self, x, y):
        cl = category_at(self.cat_layout, x, y)
        if cl is not None and cl >= 0:                              # noise has no tree
            self.category = cl

    def _hover_category(self, x, y):
        cl, ct = category_at(self.cat_layout, x, y), self.cat_tree
        if cl is None or ct is None:
            return
        i = ct.classes.index(cl)
        order = np.argsort(ct.distances[i])[1:4]
        self.hover.value = (f"{ct.names[i]}: nearest " + ", ".join(
            f"{ct.names[j]} {ct.distances[i, j]:.3f}" for j in order))

    def _click_node(self, x, y):
        node = nearest(self.node_pos, x, y, radius=8.0)
        if node is not None and node >= 0:
            self.selected = node

    def _hover_node(self, x, y):
        node, tree = nearest(self.node_pos, x, y, radius=8.0), self.tree
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
