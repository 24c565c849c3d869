"""EtalonGrid: the etalon paper's Fig. 11 as a live view.

Rows: inputs (the first image of each class of a small classifier, of the first few classes of
a large one); columns: the input, then one etalon W_p(x) per unit, blue-white-red around zero
(red = attention, blue = ignoring), the unit's score under each, the row's strongest unit framed
in red. Units: every logit of a classifier with at most 16 classes; each row's own top 5
predicted classes of a larger one ("top 5"); or those typed or picked by class name. The inputs
show at once, each row's etalons as soon as they are done. Click a cell for the enlarged
etalon, the votes W ⊙ x and the decomposition f = <W, x> + b. Draw on the pad and its own row
updates while drawing.

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): this module holds the state (the
validated traits ``layer``, ``units``, ``indices``, ``selected``), the one observer
``_on_state``, the requests and what a result does; ``controls.py`` builds the controls,
``paint.py`` turns results into RGBA sheets and captions, ``geometry.py`` is the layout math.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass

import numpy as np
import traitlets as T

from ...engine import Engine, Etalons, RegionCount
from .._base import JobWidget, painted
from ..pickers import picked
from ..sheets import Caption
from ..units import MAX_ITEMS, TopK, default_units, format_units, parse_units
from ..validate import Checked, InvalidTrait, dataset_rows, in_range, refused, whole
from .controls import build
from .geometry import GAP, HEADER, GridLayout, Selection, cell_size
from .paint import detail_sheet, grid_sheet

__all__ = ["EtalonGrid", "Selection", "Caption", "PaperCheck", "GAP", "HEADER"]

MANY_CLASSES = 16    # a classifier with more classes: a few rows, each with its own top k
FEW_ROWS = 4         # rows shown by default for such a classifier
TOP_K = 5            # its units by default: each row's top 5 predicted classes


@dataclass(frozen=True)
class PaperCheck:
    """The paper's Algorithm 1 next to the fast path, with the seconds each took."""
    fast: Etalons
    paper: Etalons
    seconds_fast: float
    seconds_paper: float


class EtalonGrid(JobWidget):
    """Live etalon grid for an :class:`~cnn_widgets.Engine`.

    engine: the engine (its dataset gives the rows); indices: dataset rows to show (default:
    the first image of each class, of the first 4 classes for more than 16); layer: default
    the logits; units: unit indices, ``(c, y, x)`` tuples, or ``"top k"`` for each row's own
    k highest units (default: every logit up to 16 classes, else "top 5"). The pictures are
    computed on the engine's worker: ``wait()`` for them in a script.
    """

    layer = T.Unicode()
    units = Checked()                   # resolved unit tuples, or TopK (each row's own)
    indices = Checked()                 # dataset rows shown
    selected = T.Instance(Selection, allow_none=True)
    # what the canvases show, as painted (for scripts and tests)
    grid_rgba = painted("grid_canvas")
    captions = painted("grid_canvas", "captions")
    pad_row_rgba = painted("pad_row_canvas")
    detail_rgba = painted("detail_canvas")
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"grid": ("layer", "units", "indices"),
                "pad": ("layer", "units", "controls.drawing_pad.version"),
                "paper": ("layer", "units", "indices"), "regions": ()}

    def __init__(self, engine: Engine, *, indices=None, layer: str | None = None, units=None):
        super().__init__(engine)
        self.add_class("cnnw-etalon-grid")
        self._ready = False
        self.cell = cell_size(engine.input_shape[1:])
        self.grid_result = None             # Etalons of the rows done (what the grid shows)
        self.pad_result = None              # Etalons of the pad image
        self.region_count: RegionCount | None = None
        self.paper_check: PaperCheck | None = None
        self._layouts: dict[str, GridLayout] = {}     # "grid"/"pad" -> its sheet's layout
        self.controls = c = build(engine, self.status_bar, self.error)
        self.children = c.children

        if indices is None and engine.dataset is not None:
            # unlabelled images (labels -1, e.g. zoo.vgg16's photos): the first rows
            data = engine.dataset
            indices = data.first_of_each_class(engine.n_classes).tolist() or list(range(len(data)))
            indices = indices[:engine.n_classes if engine.n_classes <= MANY_CLASSES else FEW_ROWS]
        self.layer = layer if layer is not None else engine.default_layer
        self.units = units if units is not None else self._default_units(self.layer)
        self.indices = list(indices or [])
        self.link("layer", c.layer_box)
        self.link("units", c.units_box, show=format_units)        # the trait reads the text
        self.link("indices", c.indices_box, show=lambda rows: ", ".join(map(str, rows)))
        c.class_box.observe(lambda change: self._picked(change["new"]), names="value")
        c.regions_button.on_click(lambda _b: self.count_regions())
        c.paper_button.on_click(lambda _b: self.check_with_paper())
        c.drawing_pad.on_change(lambda _kind: self._request_pad())
        c.grid_canvas.on_mouse_down(lambda x, y: self._click("grid", x, y))
        c.pad_row_canvas.on_mouse_down(lambda x, y: self._click("pad", x, y))
        self._ready = True
        c.class_box.disabled = self.layer != engine.default_layer
        self._draw_detail()
        self._request_grid()
        self._request_pad(lane="long")      # the blank pad's row after the grid's rows

    # -- state: validated traits, one observer ----------------------------------------------
    @T.validate("layer")
    def _valid_layer(self, proposal):
        with refused():
            return self.engine.layer(proposal["value"]).name

    @T.validate("units")
    def _valid_units(self, proposal):
        value = proposal["value"]
        n = self.engine.layer(self.layer).n_units
        if isinstance(value, str):                     # typed: "0-9", "3:1:1, 5:2:2", "top 5"
            with refused():
                value = parse_units(value, n)
            if value is None:
                return self._default_units(self.layer)
        if isinstance(value, TopK):
            return TopK(in_range("units: top k", whole("units: top k", value.k), 1,
                                 min(n, MAX_ITEMS)))
        if not isinstance(value, (list, tuple)):
            raise InvalidTrait(f"units must be a list of units, their text (e.g. '0-9') or "
                               f"'top k'; got {value!r}")
        for u in value:
            for v in u if isinstance(u, (tuple, list)) else (u,):
                if isinstance(v, bool):
                    whole("units", v)          # True is not unit 1
        with refused():
            units = self.engine.resolve_units(self.layer, value)
        if len(units) > MAX_ITEMS:
            raise InvalidTrait(f"{len(units)} units asked for; at most {MAX_ITEMS} at once")
        return list(units)

    @T.validate("indices")
    def _valid_indices(self, proposal):
        n = len(self.engine.dataset) if self.engine.dataset is not None else 0
        return dataset_rows(proposal["value"], n, "input row")

    @T.validate("selected")
    def _valid_selected(self, proposal):
        sel = proposal["value"]
        if sel is None:
            return sel
        whole("selected.row", sel.row), whole("selected.unit", sel.unit)
        result = self.grid_result if sel.source == "grid" else self.pad_result
        rows = 0 if result is None else len(result.x)
        units = 0 if result is None else result.W.shape[1]
        if sel.source not in ("grid", "pad") or not (0 <= sel.row < rows and 0 <= sel.unit < units):
            raise InvalidTrait(f"selected={sel} out of range: expected source 'grid' or 'pad', "
                               f"0 <= row < {rows}, 0 <= unit < {units}")
        return sel

    @T.observe("layer", "units", "indices", "selected")
    def _on_state(self, change):
        if not self._ready:
            return
        if change["name"] == "selected":
            self._draw_detail()
            return
        if change["name"] == "layer":
            self.controls.class_box.disabled = self.layer != self.engine.default_layer
            if not self._units_fit():
                self.units = self._default_units(self.layer)      # observed again as "units"
                return
        self.selected = None
        self._request_grid()
        if change["name"] != "indices":
            self._request_pad(lane="long")

    def _units_fit(self) -> bool:
        if isinstance(self.units, TopK):
            return self.units.k <= self.engine.layer(self.layer).n_units
        try:
            self.engine.resolve_units(self.layer, self.units)
        except (ValueError, LookupError):
            return False
        return True

    def _default_units(self, layer):
        info = self.engine.layer(layer)
        if (info.name == self.engine.default_layer and len(info.output_shape) == 1
                and info.n_units > MANY_CLASSES):
            return TopK(TOP_K)
        return default_units(info.output_shape)

    def show_class(self, c: int) -> None:
        """Add class ``c``'s logit to the units shown (in place of each row's top k)."""
        logits = self.engine.default_layer
        keep = [] if isinstance(self.units, TopK) or self.layer != logits else list(self.units)
        with self.hold_trait_notifications():
            self.layer = logits
            self.units = keep + [(int(c),)] if (int(c),) not in keep else keep

    def _picked(self, text: str):
        """The class picker: an option ("index: name") adds that class."""
        if not text:
            return
        try:
            c = picked(self.controls.class_box.options, text)
        except InvalidTrait as exc:
            self.show_error(str(exc))
            return
        self.controls.class_box.value = ""
        self.show_class(c)

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _asked(self) -> dict:
        """The units of ``engine.etalons`` for the units shown."""
        return ({"top_k": self.units.k} if isinstance(self.units, TopK)
                else {"units": list(self.units)})

    def _request_grid(self):
        layer, asked, engine = self.layer, self._asked(), self.engine
        rows = engine.dataset.images[self.indices].numpy() if self.indices else None
        with self.runner.lock:       # nothing of the last request lands between here and submit
            self.grid_result = None
            self._draw_grid()        # the inputs at once, their etalons as they are done
            self.run_job("grid", lambda control: None if rows is None else
                         engine.etalons(rows, layer, control=control, **asked),
                         self._show_grid, label="etalons", on_partial=self._show_grid)

    def _request_pad(self, lane: str = "interactive"):
        """Recompute the pad's row; a newer stroke supersedes it. A stroke's runs on the
        interactive lane (between two passes of the grid's); a new layer's or units' waits
        for the grid's rows on the long lane."""
        layer, asked, engine, image = self.layer, self._asked(), self.engine, self.pad.copy()
        self.run_job("pad", lambda control: engine.etalons(image, layer, control=control, **asked),
                     self._show_pad, label="pad", quiet=True, lane=lane)

    def count_regions(self):
        """Long job: distinct activation patterns per class over the engine's dataset."""
        engine = self.engine
        self.run_job("regions", lambda control: engine.count_regions(control=control),
                     self._show_regions, label="counting linear regions")

    def check_with_paper(self):
        """Long job: the paper's Algorithm 1 as written (one coordinate image at a time) for
        every row of the grid, compared with the fast path."""
        if not self.indices:
            self.show_error("no input rows to check: type dataset rows into 'inputs'")
            return
        layer, asked, engine = self.layer, self._asked(), self.engine
        rows = engine.dataset.images[self.indices].numpy()

        def work(control):
            start = time.perf_counter()
            fast = engine.etalons(rows, layer, **asked)
            t_fast = time.perf_counter() - start
            start = time.perf_counter()
            paper = engine.etalons(rows, layer, method="paper", one_hot_batch=1,
                                   control=control, **asked)
            return PaperCheck(fast, paper, t_fast, time.perf_counter() - start)
        self.run_job("paper", work, self._show_paper_check, label="paper's algorithm")

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_grid(self, result):
        """The rows done so far (a partial) or all of them (the result)."""
        self.grid_result = result
        self._draw_grid()

    def _show_pad(self, result):
        self.pad_result = result
        score = result.out[0]
        best = int(np.argmax(score))
        word = "predicted" if result.layer == self.engine.default_layer else "strongest unit"
        self.controls.pad_readout.value = (
            f"pad: {word} {self._name(result.layer, result.units_of(0)[best])} "
            f"(score {score[best]:.2f})")
        self._draw_pad_row()
        if self.selected is not None and self.selected.source == "pad":
            self._draw_detail()          # the enlarged pad etalon follows the drawing

    def _name(self, layer: str, unit: tuple[int, ...]) -> str:
        """A class name for a logit, else the unit's coordinates (plain text: escape it for
        HTML)."""
        if layer == self.engine.default_layer and len(unit) == 1:
            return str(self.engine.class_names[unit[0]])
        return ":".join(str(i) for i in unit)

    def _columns(self, result) -> tuple[list[str], list[list[str]] | None]:
        """The column titles and, when each row has its own units, their names per row done."""
        if not isinstance(self.units, TopK):
            return [self._name(self.layer, u) for u in self.units], None
        names = [] if result is None else [[self._name(result.layer, u) for u in result.units_of(i)]
                                           for i in range(len(result.x))]
        return [f"top {j + 1}" for j in range(self.units.k)], names

    def _draw_grid(self):
        if not self.indices:
            self.paint(self.controls.grid_canvas, "no dataset rows: draw on the pad"
                       if self.engine.dataset is None else "no input rows: type some in 'inputs'")
            return
        data, names = self.engine.dataset, self.engine.class_names
        labels = [f"label {names[y]}" if 0 <= (y := int(data.labels[i])) < len(names)
                  else f"row {i}" for i in self.indices]
        titles, names = self._columns(self.grid_result)
        sheet, self._layouts["grid"] = grid_sheet(data.images[self.indices].numpy(), labels,
                                                  titles, self.grid_result, names)
        self.paint(self.controls.grid_canvas, sheet)

    def _draw_pad_row(self):
        if self.pad_result is None:
            return
        titles, names = self._columns(self.pad_result)
        sheet, self._layouts["pad"] = grid_sheet(self.pad_result.x, ["pad"], titles,
                                                 self.pad_result, names)
        self.paint(self.controls.pad_row_canvas, sheet)

    def _draw_detail(self):
        sel, c = self.selected, self.controls
        result = self.grid_result if sel and sel.source == "grid" else self.pad_result
        if sel is None or result is None:
            c.detail_text.value = ""
            self.paint(c.detail_canvas, "Click an etalon for its decomposition.")
            return
        i, j = sel.row, sel.unit
        votes = result.W[i, j] * result.x[i]
        sheet = detail_sheet(result.x[i], result.W[i, j], votes)
        self.paint(c.detail_canvas, sheet)
        linear = float(np.sum(votes, dtype=np.float64))
        b, out = result.b[i, j], result.out[i, j]
        flag = "exact" if result.exact else "not exact"
        where = "pad" if sel.source == "pad" else f"row {i}"
        c.detail_text.value = (
            f"<b>unit {html.escape(self._name(result.layer, result.units_of(i)[j]))}</b>, "
            f"{where}<br>"
            f"&lt;W, x&gt; = {linear:.4f}<br>b = {b:.4f}<br>"
            f"f = &lt;W, x&gt; + b = {linear + b:.4f}<br>"
            f"the network gives {out:.4f} "
            f"<span title='{html.escape(result.reason, quote=True)}'>({flag})</span>")

    def _show_regions(self, count):
        self.region_count = count
        rows = "".join(f"<tr><td>{html.escape(str(self.engine.class_names[c]))}</td>"
                       f"<td>{n}</td><td>{k}</td></tr>" for c, (n, k) in count.per_class.items())
        self.controls.report.value = (
            f"<b>Linear regions</b>: {count.images} images visit {count.total} distinct "
            f"activation patterns<table><tr><th>class</th><th>images</th><th>patterns</th></tr>"
            f"{rows}</table>")

    def _show_paper_check(self, check: PaperCheck):
        self.paper_check = check
        fast, paper = check.fast, check.paper
        scale = float(np.abs(paper.W).max()) or 1.0
        dev = float(np.abs(fast.W - paper.W).max()) / scale
        db = float(np.abs(fast.b - paper.b).max())
        self.controls.report.value = (
            f"<b>Paper's Algorithm 1</b> (one coordinate image at a time) vs the fast path on "
            f"{fast.W.shape[0]}×{fast.W.shape[1]} etalons: max relative difference of W "
            f"{dev:.1e}, of b {db:.1e}; {check.seconds_paper:.2f} s vs "
            f"{check.seconds_fast:.3f} s (×{check.seconds_paper / check.seconds_fast:.0f})")

    # -- events (kernel thread: quick, then hand work to the worker) -----------------------
    def _click(self, source, x, y):
        result = self.grid_result if source == "grid" else self.pad_result
        layout = self._layouts.get(source)
        hit = None if result is None or layout is None else layout.unit_at(x, y)
        if hit is not None and hit[0] < len(result.x):     # a row whose etalons are done
            self.selected = Selection(source, *hit)

    # -- the drawing pad -----------------------------------------------------------------------
    @property
    def pad(self) -> np.ndarray:
        """The drawing on the pad, (C, H, W) float32 in [0, 1] (the pad's own array)."""
        return self.controls.drawing_pad.image

    def clear_pad(self):
        """Erase the pad; its row is computed again."""
        self.controls.drawing_pad.clear()

