"""PredictionTreeView: the clustering paper's Fig. 8 and Fig. 10 / 1f as a live view.

Top left: the category hierarchy (Algorithm 1, WPGMA) from its ``focus`` node, with at most 16
rows (the highest merges open, the rest closed as counted groups; the digits show all 10
classes) and the minimum spanning tree of what is shown beside it; the path to the chosen
category in red, and above it the path from the root as text. Search a category by name:
the view zooms to show the path to it. Click a category to pick it, a group or a merge to zoom
into it, "zoom out" or the grey disc to go up. Below: that category's filter-wise prediction
tree (Algorithm 2), the path of the chosen image (or of one drawn on the pad) in red; click a
node for its critical filter, the dataset images that drive that filter most and the filters
it still reaches. Hover for distances. The hierarchy paints as the dataset is scanned (the
classes seen so far).

Only categories with images are in the hierarchy (a class mean needs an image); a category
with fewer than 2 images has no prediction tree, and the view says so.

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): this module holds the state (the
validated traits ``category``, ``layer``, ``include_noise``, ``image``, ``selected``,
``focus``), the one observer ``_on_state``, the requests and what a result does;
``controls.py`` builds the controls, ``paint.py`` draws the sheets, ``geometry.py`` lays out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import traitlets as T

from ...engine import Engine, InvalidArgument
from ...engine.clustering.prediction_tree import PredictionTree, TreePath
from ...engine.visualization import objectives
from .._base import JobWidget, painted
from ..pickers import picked
from ..validate import InvalidTrait, Whole, in_range, one_of, whole
from .controls import build
from .geometry import REST, TREE_LEAVES, TREE_SIZE, Hierarchy, category_view, nearest, opened, tree_layout
from .paint import (
    breadcrumb_html,
    categories_sheet,
    category_hover,
    detail_sheet,
    node_hover,
    node_html,
    path_html,
    tree_sheet,
)

__all__ = ["PredictionTreeView", "Hierarchy"]

TOP_K = 6                      # dataset images shown for a node's critical filter


@dataclass(frozen=True)
class TreeResult:
    """One category's prediction tree and the path of the query (version ``query``)."""
    tree: PredictionTree
    path: TreePath
    query: int


class PredictionTreeView(JobWidget):
    """Category hierarchy, MST and one category's prediction tree for an Engine.

    category: class index shown first (default: the first with at least 2 images, a tree's
    minimum: 0 for the digits); layer: default the last (C, H, W) layer; image: dataset row
    whose path is drawn (default: the first image of the category); include_noise: add random
    noise as a category in the hierarchy (Fig. 8, lower); max_images: images per tree at most.
    """

    category = Whole()
    layer = T.Unicode()
    include_noise = T.Bool(False)
    image = Whole()
    selected = Whole(-1)            # node of the prediction tree, -1 = none
    focus = Whole(-1)               # hierarchy node at the left of the dendrogram, -1 = root
    # what the canvases show, as painted (for scripts and tests)
    detail_rgba = painted("detail_canvas")
    # job key -> the state its result answers (shown only while that still holds); ``_query``
    # counts the changes of the query image (a dataset row or the pad)
    REQUESTS = {"categories": ("layer", "include_noise"), "tree": ("category", "layer"),
                "path": ("tree", "_query"), "top": ("tree", "selected")}

    def __init__(self, engine: Engine, *, category: int | None = None, layer: str | None = None,
                 image: int | None = None, include_noise: bool = False,
                 max_images: int | None = None):
        super().__init__(engine)
        self.add_class("cnnw-prediction-tree")
        if engine.dataset is None:
            raise InvalidArgument("PredictionTreeView needs an engine with a dataset")
        self._ready = False
        self.max_images = None if max_images is None else \
            in_range("max_images", whole("max_images", max_images), 2, len(engine.dataset))
        self.labels = engine.dataset.labels.numpy()
        self.cat_tree = self.hierarchy = self.cat_view = None
        self.tree: PredictionTree | None = None
        self.path: TreePath | None = None
        self.top = None
        self.node_pos: dict[int, tuple[float, float]] = {}
        self.tree_open: frozenset[int] = frozenset()
        self.use_pad = False          # the path follows the pad (True) or the dataset image
        self._query = 0               # version of the query image: +1 at every change
        self.controls = c = build(engine, self.status_bar, self.error)
        self.children = c.children

        self.layer = engine.default_layer_for("features", layer)
        self.include_noise = include_noise
        self.category = self._default_category() if category is None else category
        self.image = self._first_image(self.category) if image is None else image
        self.link("category", c.category_box, show=lambda i: c.category_box.options[i],
                  take=self._picked)
        self.link("layer", c.layer_box)
        self.link("include_noise", c.noise_box)
        self.link("image", c.image_box)
        c.up_button.on_click(lambda _b: self.zoom_out())
        c.top_button.on_click(lambda _b: self.zoom(-1))
        c.drawing_pad.on_change(self._on_pad)
        c.cat_canvas.on_mouse_down(self._click_category)
        c.cat_canvas.on_mouse_move(self._hover_category)
        c.tree_canvas.on_mouse_down(self._click_node)
        c.tree_canvas.on_mouse_move(self._hover_node)
        self._ready = True
        self._draw_detail()
        self._request_categories()
        self._request_tree()

    # -- state: validated traits, one observer ----------------------------------------------
    @T.validate("category")
    def _valid_category(self, proposal):
        return in_range("category", proposal.value, 0, self.engine.n_classes - 1)

    @T.validate("image")
    def _valid_image(self, proposal):
        return in_range("image", proposal.value, 0, len(self.engine.dataset) - 1)

    @T.validate("layer")
    def _valid_layer(self, proposal):
        return one_of("layer", proposal.value, self.controls.layer_box.options,
                      " (the layers with a (C, H, W) output)")

    @T.validate("selected")
    def _valid_selected(self, proposal):
        n = self.tree.n_nodes if self.tree is not None else 0
        return in_range("selected", proposal.value, -1, n - 1)

    @T.validate("focus")
    def _valid_focus(self, proposal):
        h, value = self.hierarchy, proposal.value
        if value != -1 and (h is None or not h.n <= value <= h.root):
            raise InvalidTrait("focus must be -1 (the root) or a merge of the hierarchy"
                               + (f", {h.n}..{h.root}" if h is not None else " (none yet)")
                               + f"; got {value!r}")
        return -1 if h is not None and value == h.root else value

    @T.observe("category", "layer", "include_noise", "image", "selected", "focus")
    def _on_state(self, change):
        if not self._ready:
            return
        name = change["name"]
        if name == "layer":
            self._request_categories()
            self._request_tree()
        elif name == "include_noise":
            self._request_categories()
        elif name == "category":
            self._request_tree()
            if not self.use_pad:                     # a drawn image stays the query
                self.image = self._first_image(self.category)
            self._show_focus(-1 if self.hierarchy is None
                             else self.hierarchy.fitting_focus(self._leaf(), self.focus))
        elif name == "image":
            self.use_pad = False
            self._request_path()
        elif name == "focus":
            self._draw_categories()
        else:
            self._on_select()

    def _show_focus(self, focus: int) -> None:
        """Set the focus; the hierarchy is drawn again either way."""
        if focus != self.focus:
            self.focus = focus                       # observed: drawn there
        else:
            self._draw_categories()

    def _picked(self, text: str) -> int:
        """The category of a picker option ("index: name")."""
        return picked(self.controls.category_box.options, text, "category")

    def _count(self, category: int) -> int:
        return int((self.labels == category).sum())

    def _default_category(self) -> int:
        counts = np.bincount(self.labels, minlength=self.engine.n_classes)
        return int(np.argmax(counts >= min(2, counts.max(initial=0))))

    def _first_image(self, category: int) -> int:
        hits = np.flatnonzero(self.labels == category)
        return int(hits[0]) if len(hits) else 0

    def _leaf(self) -> int | None:
        """The category's leaf in the hierarchy shown (None: not in it)."""
        ct = self.cat_tree
        return None if ct is None or self.category not in ct.classes \
            else ct.classes.index(self.category)

    @property
    def cat_pos(self) -> dict[int, tuple[float, float]]:
        """category (class, -1: noise) -> its MST disc (x, y), for the categories shown."""
        v, ct = self.cat_view, self.cat_tree
        return {} if v is None else {ct.classes[k]: xy for k, xy in v.discs.items()
                                     if 0 <= k < len(ct.classes)}

    def zoom(self, node: int) -> None:
        """Show the hierarchy from ``node`` (a merge; -1: the root)."""
        self.focus = node

    def zoom_out(self) -> None:
        """Show the hierarchy from the parent of the focus."""
        h = self.hierarchy
        if h is not None and self.focus >= 0:
            self.focus = int(h.parent[self.focus])

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _request_categories(self):
        layer, noise, engine = self.layer, self.include_noise, self.engine
        with self.runner.lock:       # nothing of the last request lands between here and submit
            self.cat_tree = self.hierarchy = None
            self._show_focus(-1)
            self.run_job("categories", lambda control: engine.category_tree(
                layer, include_noise=noise, control=control), self._show_categories,
                label="category hierarchy", on_partial=self._show_categories)

    def _request_tree(self):
        category, layer, engine, most = self.category, self.layer, self.engine, self.max_images
        with self.runner.lock:
            self.tree = self.path = self.top = None
            self.selected = -1
            self._draw_tree()
            self._draw_detail()
            self._write_path()
            if self._tree_size() < 2:
                return

            def work(control):
                tree = engine.prediction_tree(category, layer, max_images=most, control=control)
                version, query = self._query, self._query_image()    # the query as it is now
                return TreeResult(tree, tree.path(query), version)
            self.run_job("tree", work, self._show_tree, label="prediction tree")

    def _tree_size(self) -> int:
        n = self._count(self.category)
        return n if self.max_images is None else min(n, self.max_images)

    def _query_image(self) -> np.ndarray:
        return self.pad.copy() if self.use_pad else self.engine.dataset.images[self.image].numpy()

    def _request_path(self):
        self._query += 1
        tree, image = self.tree, self._query_image()
        if tree is not None:
            self.run_job("path", lambda control: tree.path(image), self._show_path,
                         label="path", quiet=True)

    def _on_select(self):
        node, tree, engine = self.selected, self.tree, self.engine
        self.top = None                                   # the last node's images are stale
        self._draw_detail()
        self._draw_tree()
        if tree is None or node < len(tree.images):       # none, or a leaf: no filter
            return
        f = tree.critical(node)
        self.run_job("top", lambda control: engine.top_images(
            objectives.channel(tree.layer, f), k=TOP_K, control=control),
            self._show_top, label=f"top images of filter {f}", quiet=True)

    # -- results (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_categories(self, ct):
        """The hierarchy of the classes scanned so far (a partial) or of all (the result)."""
        self.cat_tree, self.hierarchy = ct, Hierarchy.of(ct.linkage)
        self._show_focus(self.hierarchy.fitting_focus(self._leaf(), -1))

    def _show_tree(self, result: TreeResult):
        self.tree, self.path, self.top = result.tree, result.path, None
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

    # -- drawing (sheets from paint.py) --------------------------------------------------------
    def _draw_categories(self):
        c, ct, h = self.controls, self.cat_tree, self.hierarchy
        c.up_button.disabled = h is None or self.focus < 0
        if ct is None:
            self.cat_view = None
            c.breadcrumb.value = ""
            self.paint(c.cat_canvas, f"computing the category hierarchy of "
                                     f"{len(self.labels)} images…")
            return
        leaf = self._leaf()
        self.cat_view = category_view(h, self.focus, leaf, ct.distances, ct.mst)
        self.paint(c.cat_canvas, categories_sheet(h, self.cat_view, ct.names))
        c.breadcrumb.value = breadcrumb_html(h, leaf, self.focus, str(
            self.engine.class_names[self.category]), self._count(self.category))

    def _draw_tree(self):
        c, tree = self.controls, self.tree
        if tree is None:
            self.node_pos, self.tree_open = {}, frozenset()
            n, name = self._tree_size(), self.engine.class_names[self.category]
            self.paint(c.tree_canvas, f"computing the prediction tree of '{name}' ({n} images)…"
                       if n >= 2 else f"'{name}' has {n} image(s) in the dataset: a prediction "
                                      f"tree needs at least 2")
            return
        on_path = set(self.path.nodes) if self.path is not None else set()
        size = tree.merges.size
        keep = [-1, *(self.path.nodes[:TREE_LEAVES - 2] if self.path is not None else ())]
        self.tree_open = opened(-1, tree.children, lambda k: len(size) if k < 0 else size[k],
                                keep, TREE_LEAVES)         # the path open, as far as rows allow
        self.node_pos = tree_layout(tree.top, tree.children, TREE_SIZE[1], TREE_SIZE[0],
                                    self.tree_open)
        self.paint(c.tree_canvas, tree_sheet(tree, self.node_pos, self.tree_open, on_path,
                                             self.selected, TREE_SIZE))

    def _draw_detail(self):
        c, tree, node, top = self.controls, self.tree, self.selected, self.top
        images = None
        if tree is None or node < 0:
            c.detail_text.value = "Click a node of the prediction tree."
        elif node < len(tree.images):
            c.detail_text.value = (f"<b>leaf {node}</b>: dataset image {tree.images[node]} "
                                   f"(all {tree.n_filters} filters reachable)")
            images = [self.engine.dataset.images[tree.images[node]].numpy()]
        else:
            c.detail_text.value = node_html(tree, node, top)
            images = None if top is None else list(top.images)
        sheet = None if images is None else detail_sheet(images)
        self.paint(c.detail_canvas, "" if sheet is None else sheet)

    def _write_path(self):
        p, tree = self.path, self.tree
        label = None if self.use_pad else str(self.engine.class_names[int(self.labels[self.image])])
        self.controls.path_text.value = "" if p is None or tree is None \
            else path_html(tree, p, self.image, label)

    # -- events (kernel thread: quick, no engine work) ---------------------------------------------
    def _click_category(self, x, y):
        v, h = self.cat_view, self.hierarchy
        k = None if v is None else v.hit(x, y)
        if k is None:
            return
        if k == REST:
            self.zoom_out()
        elif k >= h.n:
            self.zoom(k)
        elif self.cat_tree.classes[k] >= 0:                       # noise has no tree
            self.category = self.cat_tree.classes[k]

    def _hover_category(self, x, y):
        v = self.cat_view
        k = None if v is None else v.hit(x, y)
        if k is not None:
            self.controls.hover.value = category_hover(self.hierarchy, self.cat_tree, v, k)

    def _click_node(self, x, y):
        node = nearest(self.node_pos, x, y, radius=8.0)
        if node is not None and node >= 0:
            self.selected = node

    def _hover_node(self, x, y):
        node, tree = nearest(self.node_pos, x, y, radius=8.0), self.tree
        if node is not None and node >= 0 and tree is not None:
            self.controls.hover.value = node_hover(tree, self.path, node, node in self.tree_open)

    # -- the drawing pad ---------------------------------------------------------------------
    @property
    def pad(self) -> np.ndarray:
        """The drawing on the pad, (C, H, W) float32 in [0, 1] (the pad's own array)."""
        return self.controls.drawing_pad.image

    def _on_pad(self, kind: str):
        """A stroke makes the drawing the query and asks for its path; clearing asks again
        only while the drawing is the query."""
        if kind == "stroke":
            self.use_pad = True
        if self.use_pad:
            self._request_path()

    def clear_pad(self):
        """Erase the pad (its path is computed again while the drawing is the query)."""
        self.controls.drawing_pad.clear()
