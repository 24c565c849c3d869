"""SanityCheckView: Adebayo et al.'s sanity checks for saliency maps as a live view.

A grid with a row per explanation method and a column per stage: the original model, then each
layer re-initialised from the logits down (cascading: that layer and every one above it;
independent: that layer alone), or a model trained on shuffled labels (data randomisation);
each map drawn as the chosen measure reads it, with its similarity to the original map below
it. Beside it the paper's curves (bqplot): per method, the mean similarity over the images
after each stage. Maps appear as they are computed; Stop keeps those done. Click a map to see
it enlarged next to the input and the original map, with all three measures.

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): this module holds the state (the
validated traits ``indices``, ``shown``, ``methods``, ``mode``, ``metric``, ``layers``,
``selected``), the one observer ``_on_state``, the request and what a result does;
``controls.py`` builds the controls, ``paint.py`` turns rows into RGBA sheets and curves,
``geometry.py`` is the layout math.
"""
from __future__ import annotations

import html

import numpy as np
import traitlets as T
from torch import nn

from ...engine import Engine
from ...engine.sanity.maps import GUIDED_BACKPROP, METHODS
from ...engine.sanity.similarity import METRICS
from .._base import JobWidget, painted
from ..validate import Checked, InvalidTrait, Whole, dataset_rows, in_range, one_of
from .controls import LABELS, METRIC_LABELS, build
from .geometry import Cell, GridLayout
from .paint import VIEWS, curve_values, detail_sheet, grid_sheet, placed, score_text

__all__ = ["SanityCheckView", "Cell", "GridLayout"]

MANY_CLASSES = 16    # a classifier with more classes: one image by default
FEW_IMAGES = 4       # default images of a smaller one: the first of each of its first classes
MAX_IMAGES = 32      # images one check may average over (every map of each is kept)
MAX_STAGES = 16      # default stages: the top 16 layers (the cascade from the logits down)
#: the methods in the widget's order (rows, buttons): the paper's headline pair first
ORDER = ("gradient", GUIDED_BACKPROP, "deconvnet", "random_masks", "gradcam", "etalon", "filter")
DEFAULT_METHODS = ORDER[:5]
OTHER = "other"       # the data test's column title (its model: `other`)


class SanityCheckView(JobWidget):
    """Live sanity checks (Adebayo et al.) for an :class:`~cnn_widgets.Engine`.

    engine: the engine (its dataset gives the images); other: a model (an Engine or a module
    with the same inputs and classes) for the data-randomisation test, e.g.
    ``zoo.lenet_digits_shuffled()`` (without it, mode "data" is not offered); indices: dataset
    rows (default: the first image of each of the first 4 classes, one image above 16
    classes); shown: which of them the grid shows (a position in ``indices``); methods: of
    "etalon", "deconvnet", "deconvnet_masks" (guided backprop), "random_masks", "filter",
    "gradient", "gradcam" (default: all but etalon and filter, which equal the gradient on a
    ReLU network); mode: "cascade", "independent" or "data"; metric: "rank_abs", "rank" or
    "ssim" (the pictures and the curves); layers: which layers to re-initialise (default: the
    top 16 of ``engine.sanity_layers()``). Each model explains its own predicted class. The
    work runs on the engine's worker: ``wait()`` for it in a script; ``rows`` holds every
    SanityRow done (maps and similarities), ``result`` the SanityCheck when it is complete.
    """

    indices = Checked()               # dataset rows checked
    shown = Whole(0)                  # the image the grid shows: a position in indices
    methods = Checked()               # tuple of method names, in ORDER
    mode = T.Unicode("cascade")
    metric = T.Unicode("rank_abs")
    layers = Checked()                # tuple of layer names, top first
    selected = T.Instance(Cell, allow_none=True)
    # what the canvases show, as painted (for scripts and tests)
    grid_rgba = painted("grid_canvas")
    captions = painted("grid_canvas", "captions")
    detail_rgba = painted("detail_canvas")
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"check": ("indices", "methods", "mode", "layers")}

    def __init__(self, engine: Engine, *, other: Engine | nn.Module | None = None, indices=None,
                 shown: int = 0, methods=None, mode: str = "cascade", metric: str = "rank_abs",
                 layers=None):
        super().__init__(engine)
        self.add_class("cnnw-sanity-check")
        self._ready = False
        if other is not None and not isinstance(other, (Engine, nn.Module)):
            raise InvalidTrait(f"other must be an Engine or a torch.nn.Module (e.g. "
                               f"zoo.lenet_digits_shuffled()); got {type(other).__name__}")
        self.other = other
        self.modes = ("cascade", "independent") + (("data",) if other is not None else ())
        self.rows: tuple = ()           # every SanityRow done (what the grid and curves show)
        self.result = None              # the SanityCheck once complete (its maps: in rows)
        self._layout: GridLayout | None = None
        self.controls = c = build(engine, ORDER, self.modes, self.status_bar, self.error)
        self.children = c.children

        data = engine.dataset
        if indices is None and data is not None:
            # unlabelled images (labels -1, e.g. photos): the first rows
            first = data.first_of_each_class(engine.n_classes).tolist() or list(range(len(data)))
            indices = first[:FEW_IMAGES] if engine.n_classes <= MANY_CLASSES else first[:1]
        self.indices = list(indices or [])
        c.shown_box.options = self._shown_options()
        self.shown = shown
        self.methods = methods if methods is not None else DEFAULT_METHODS
        self.layers = layers if layers is not None else engine.sanity_layers()[:MAX_STAGES]
        self.mode, self.metric = mode, metric
        self.link("indices", c.indices_box, show=lambda rows: ", ".join(map(str, rows)))
        self.link("shown", c.shown_box, show=lambda k: k if self.indices else None,
                  take=lambda k: 0 if k is None else k)           # None: no images
        for m, button in c.method_buttons.items():    # (ignores: mypy infers no lambda with a default)
            self.link("methods", button, show=lambda ms, m=m: m in ms,  # type: ignore[misc]
                      take=lambda on, m=m: self._toggled(m, on))  # type: ignore[misc]
        self.link("mode", c.mode_box)
        self.link("metric", c.metric_box)
        c.run_button.on_click(lambda _b: self.run())
        c.grid_canvas.on_mouse_down(self._click)
        self._ready = True
        self._request()

    # -- state: validated traits, one observer ----------------------------------------------
    @T.validate("indices")
    def _valid_indices(self, proposal):
        n = len(self.engine.dataset) if self.engine.dataset is not None else 0
        return dataset_rows(proposal["value"], n, "image row", MAX_IMAGES)

    @T.validate("shown")
    def _valid_shown(self, proposal):
        return in_range("shown (a position in indices)", proposal["value"], 0,
                        max(len(self.indices), 1) - 1)

    @T.validate("methods")
    def _valid_methods(self, proposal):
        value = proposal["value"]
        if isinstance(value, str):
            value = ORDER if value == "all" else (value,)
        if not isinstance(value, (list, tuple)):
            raise InvalidTrait(f"methods must be 'all' or a list of names from "
                               f"{list(METHODS)}; got {value!r}")
        for m in value:
            one_of("methods", m, METHODS)
        if not value:
            raise InvalidTrait(f"methods: pick at least one of {list(METHODS)}; got none")
        return tuple(m for m in ORDER if m in value)

    @T.validate("mode")
    def _valid_mode(self, proposal):
        note = "" if self.other is not None else (
            " (data randomisation needs other=, a model trained on shuffled labels, e.g. "
            "zoo.lenet_digits_shuffled())")
        return one_of("mode", proposal["value"], self.modes, note)

    @T.validate("metric")
    def _valid_metric(self, proposal):
        return one_of("metric", proposal["value"], METRICS)

    @T.validate("layers")
    def _valid_layers(self, proposal):
        value, order = proposal["value"], self.engine.sanity_layers()
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise InvalidTrait(f"layers must be a non-empty list of names from {list(order)}; "
                               f"got {value!r}")
        for name in value:
            one_of("layers", name, order, " (layers with parameters, top first)")
        return tuple(n for n in order if n in value)

    @T.validate("selected")
    def _valid_selected(self, proposal):
        cell = proposal["value"]
        if cell is not None:
            in_range("selected.row", cell.row, 0, len(self.methods) - 1)
            in_range("selected.col", cell.col, 0, len(self._titles()) - 1)
        return cell

    @T.observe("indices", "shown", "methods", "mode", "metric", "layers", "selected")
    def _on_state(self, change):
        if not self._ready:
            return
        if change["name"] == "selected":
            self._draw_detail()
        elif change["name"] in ("shown", "metric"):
            self._draw()
        else:
            self._request()

    def _toggled(self, method: str, on: bool) -> list[str]:
        """The methods with ``method`` toggled ``on`` or off (a method button)."""
        return [m for m in ORDER if (m == method and on) or (m != method and m in self.methods)]

    def _shown_options(self) -> list[tuple[str, int]]:
        data, names = self.engine.dataset, self.engine.class_names

        def label(i: int) -> str:
            y = int(data.labels[i])
            return f" (label {names[y]})" if 0 <= y < len(names) else ""
        return [(f"row {i}{label(i)}", k) for k, i in enumerate(self.indices)]

    def _titles(self) -> tuple[str, ...]:
        """The grid's column titles: the original, then each stage."""
        return ("original",) + ((OTHER,) if self.mode == "data" else self.layers)

    # -- requests: every engine call runs on the worker ---------------------------------------
    def run(self) -> None:
        """Compute the check again for the current state (after a Stop, say)."""
        self._request()

    def _request(self):
        engine, other, methods, mode, layers = (self.engine, self.other, self.methods,
                                                self.mode, self.layers)
        x = engine.dataset.images[self.indices] if self.indices else None

        def work(control):
            if mode == "data":
                return engine.sanity_check_data(x, other, methods=methods, keep_maps=False,
                                                control=control)
            return engine.sanity_check(x, methods=methods, cascade=mode == "cascade",
                                       layers=layers, keep_maps=False, control=control)
        with self.runner.lock:       # nothing of the last request lands between here and submit
            self.rows, self.result = (), None
            options = self._shown_options()
            if list(self.controls.shown_box.options) != options:
                self.controls.shown_box.options = options      # the link resets shown to 0
            self.selected = None
            self._draw()             # the grid's titles and grey cells at once
            if x is not None:
                self.run_job("check", work, self._show_result, label="sanity check",
                             on_partial=self._show_rows)

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_rows(self, rows):
        """Every SanityRow done so far (a partial)."""
        self.rows = rows
        self._draw()

    def _show_result(self, result):
        self.result = result

    def _draw(self):
        self._draw_grid()
        self._draw_curves()
        self._draw_detail()
        self.controls.explain.value = self._explanation()

    def _draw_grid(self):
        c = self.controls
        if not self.indices:
            self._layout = None
            self.paint(c.grid_canvas, "no dataset rows: give the engine a dataset"
                       if self.engine.dataset is None else "no images: type rows into 'images'")
            return
        sheet, self._layout = grid_sheet(self.rows, self.methods,
                                         [LABELS[m] for m in self.methods], self._titles(),
                                         self.shown, self.metric, self.engine.input_shape[1:])
        self.paint(c.grid_canvas, sheet)

    def _draw_curves(self):
        c, titles = self.controls, self._titles()
        values = curve_values(self.rows, self.methods, len(titles), self.metric)
        c.x_axis.scale.max = float(max(len(titles) - 1, 1))
        c.x_axis.tick_values = np.arange(len(titles), dtype=float)
        c.x_axis.tick_labels = {str(i): t for i, t in enumerate(titles)}
        c.y_axis.label = METRIC_LABELS[self.metric]
        for m, line in c.curves.items():
            ys = values[self.methods.index(m)] if m in self.methods else np.zeros(0)
            done = np.flatnonzero(np.isfinite(ys))
            with line.hold_sync():
                line.x, line.y = done.astype(float), ys[done]
                line.visible = line.display_legend = m in self.methods

    def _draw_detail(self):
        """The shown image, and a clicked cell's original and changed maps beside it."""
        sel, c, done = self.selected, self.controls, placed(self.rows, self.methods)
        if not self.indices:
            c.detail_text.value = ""
            self.paint(c.detail_canvas, "")
            return
        i, names = self.shown, self.engine.class_names
        x = self.engine.dataset.images[self.indices[i]].numpy()
        if sel is None or (sel.row, sel.col) not in done or (sel.row, 0) not in done:
            sheet = detail_sheet(x, (), self.metric, ("input",))
            c.detail_text.value = "Click a map to enlarge it beside the original one."
        else:
            row, original = done[sel.row, sel.col], done[sel.row, 0]
            sheet = detail_sheet(x, (original.maps[i], row.maps[i]), self.metric,
                                 ("input", "original", self._titles()[sel.col]))
            scores = ", ".join(f"{METRIC_LABELS[k]} {score_text(float(getattr(row, k)[i]))}"
                               for k in METRICS)
            c.detail_text.value = (
                f"<b>{html.escape(LABELS[row.method])}</b>, "
                f"{html.escape(self._stage_words(sel.col))}<br>similarity to the original "
                f"map: {scores}<br>image: dataset row {self.indices[i]}; class explained: "
                f"{html.escape(str(names[int(original.classes[i])]))} by the original model, "
                f"{html.escape(str(names[int(row.classes[i])]))} by this one")
        self.paint(c.detail_canvas, sheet)

    def _stage_words(self, col: int) -> str:
        if col == 0:
            return "the original model"
        if self.mode == "data":
            return "the other model (e.g. trained on shuffled labels)"
        layers = self.layers
        if self.mode == "independent":
            return f"only {layers[col - 1]} re-initialised"
        return (f"{layers[0]} re-initialised" if col == 1
                else f"{layers[0]} down to {layers[col - 1]} re-initialised")

    def _explanation(self) -> str:
        n = len(self.indices)
        what = {"cascade": "Cascading randomisation: each column re-initialises the layers from "
                           "the top (logits) down to its own, on a copy of the model.",
                "independent": "Independent randomisation: each column re-initialises its own "
                               "layer only; the others stay trained.",
                "data": "Data randomisation: the maps of another model (e.g. one trained on "
                        "shuffled labels) beside the original's."}[self.mode]
        return (f"{what} A method that explains the model changes its maps. Pictures: "
                f"{VIEWS[self.metric]}; below each, its {METRIC_LABELS[self.metric]} "
                f"similarity to the original map. Curves: the mean over {n} image"
                f"{'s' if n != 1 else ''}.")

    # -- events (kernel thread: quick) ---------------------------------------------------------
    def _click(self, x, y):
        hit = None if self._layout is None else self._layout.hit(x, y)
        if hit is not None and (hit.row, hit.col) in placed(self.rows, self.methods):
            self.selected = hit
