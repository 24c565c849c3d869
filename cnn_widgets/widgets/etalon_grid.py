"""EtalonGrid: the etalon paper's Fig. 11 as a live view.

Rows: inputs (one per class by default); columns: the input, then one etalon W_p(x) per unit,
blue-white-red around zero (red = attention, blue = ignoring), the unit's score under each,
the row's strongest unit framed in red. Click a cell for the enlarged etalon, the votes W ⊙ x
and the decomposition f = <W, x> + b. Draw on the pad and its own row updates while drawing.
"""
from __future__ import annotations

import html
import time

import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine.core.control import NO_CONTROL
from . import draw
from ._base import JobWidget, drawing, new_canvas, paint_sheet, placeholder, redraw_on_reconnect
from .pad import DrawingPad
from .units import default_units, format_units, parse_indices, parse_units

HEADER = 18          # px above the first row, for column titles
GAP = (16, 6)        # px below (score line) and right of each cell
DETAIL_SCALE = 3
PAD_SCALE = 8


def cell_scale(input_hw: tuple[int, int]) -> int:
    return max(1, 56 // max(input_hw))


def row_cells(x: np.ndarray, W_row: np.ndarray, k: int) -> list[np.ndarray]:
    """One grid row: the input then each unit's etalon, on a per-row symmetric scale so the
    units of one input compare. x: (C, H, W); W_row: (P, C, H, W)."""
    maps = [draw.channel_sum(w) for w in W_row]
    vmax = max(float(np.abs(m).max()) for m in maps) if maps else 1.0
    return [draw.upscale(draw.image(x), k)] + [draw.upscale(draw.diverging(m, vmax), k)
                                                 for m in maps]


class EtalonGrid(JobWidget):
    """Live etalon grid for an :class:`~cnn_widgets.Engine`.

    engine: the engine (its dataset gives the rows); indices: dataset rows to show (default:
    the first image of each class); layer, units: which units' etalons (default: the logits).
    """

    layer = T.Unicode()
    units = T.List()                    # resolved unit tuples
    indices = T.List()                  # dataset rows shown
    selected = T.Tuple(allow_none=True, default_value=None)   # ("grid"|"pad", row, column)

    def __init__(self, engine, *, indices=None, layer: str | None = None, units=None):
        super().__init__(engine)
        self.add_class("cnnw-etalon-grid")
        self.k = cell_scale(engine.input_shape[1:])
        self.cell = (engine.input_shape[1] * self.k, engine.input_shape[2] * self.k)
        self.grid_result = None             # Etalons of the rows (what the grid shows)
        self.pad_result = None              # Etalons of the pad image
        self.grid_rgba = self.pad_row_rgba = self.detail_rgba = None
        self.captions: list[tuple[str, int, int]] = []
        self.region_count = self.paper_check = None
        self._syncing = False
        self._build_controls()
        self._build_canvases()

        if indices is None and engine.dataset is not None:
            indices = engine.dataset.first_of_each_class(engine.n_classes).tolist()
        self.layer = engine.layer(layer).name
        self.units = list(engine.resolve_units(self.layer, units if units is not None
                                               else self._default_units(self.layer)))
        self.indices = list(indices or [])
        self._sync_controls()
        # The first picture is computed here, so the widget shows it as soon as it renders
        # (and a headless notebook saves it); later changes go through the worker thread.
        self._show_grid(self._compute_grid())
        self._show_pad(self._compute_pad())
        self.observe(self._on_request, names=["layer", "units", "indices"])
        self.observe(lambda _c: self._draw_detail(), names=["selected"])

        right = W.VBox([self.detail_canvas, self.detail_text, W.HTML("<b>Draw a digit</b>"),
                        self.drawing_pad, self.pad_readout, self.report],
                       layout=W.Layout(width=f"{self.detail_canvas.width + 12}px",
                                       margin="0 0 0 12px", flex="0 0 auto"))
        self.children = [
            W.HBox([self.layer_box, self.units_box, self.indices_box, self.apply_button]),
            W.HBox([self.regions_button, self.paper_button]),
            self.status_bar, self.error,
            W.HBox([W.VBox([self.grid_canvas, self.pad_canvas_row],
                           layout=W.Layout(flex="0 0 auto")), right]),
        ]

    # -- controls ------------------------------------------------------------------------------
    def _build_controls(self):
        e = self.engine
        self.layer_box = W.Dropdown(options=e.layer_names, description="layer",
                                    layout=W.Layout(width="200px"))
        self.units_box = W.Text(description="units", layout=W.Layout(width="260px"),
                                placeholder="0-9  or  c:y:x, …")
        self.indices_box = W.Text(description="inputs", layout=W.Layout(width="300px"),
                                  placeholder="dataset rows, e.g. 0, 5, 10-12")
        self.apply_button = W.Button(description="Show", layout=W.Layout(width="70px"))
        self.regions_button = W.Button(description="Count linear regions", icon="th",
                                       layout=W.Layout(width="190px"))
        self.paper_button = W.Button(description="Check with the paper's algorithm",
                                     icon="check", layout=W.Layout(width="260px"))
        self.pad_readout = W.Label("", layout=W.Layout(width="auto"))
        self.detail_text = W.HTML("")
        self.report = W.HTML("")
        for w, cls in ((self.regions_button, "cnnw-regions"), (self.paper_button, "cnnw-paper"),
                       (self.pad_readout, "cnnw-pad-readout"),
                       (self.detail_text, "cnnw-detail-text"), (self.report, "cnnw-report"),
                       (self.layer_box, "cnnw-layer"), (self.units_box, "cnnw-units"),
                       (self.indices_box, "cnnw-indices"), (self.apply_button, "cnnw-apply")):
            w.add_class(cls)
        self.layer_box.observe(self._on_layer_box, names="value")
        self.apply_button.on_click(lambda _b: self._apply_text())
        for box in (self.units_box, self.indices_box):   # Enter or leaving the box applies it
            box.continuous_update = False
            box.observe(lambda _c: self._syncing or self._apply_text(), names="value")
        self.regions_button.on_click(lambda _b: self.count_regions())
        self.paper_button.on_click(lambda _b: self.check_with_paper())

    def _default_units(self, layer):
        return default_units(self.engine.layer(layer).output_shape)

    def _sync_controls(self):
        self._syncing = True
        try:
            self.layer_box.value = self.layer
            self.units_box.value = format_units(self.units)
            self.indices_box.value = ", ".join(str(i) for i in self.indices)
        finally:
            self._syncing = False

    def _on_layer_box(self, change):
        if change["new"] != self.layer:
            units = self.engine.resolve_units(change["new"], self._default_units(change["new"]))
            with self.hold_trait_notifications():
                self.layer, self.units = change["new"], list(units)
            self._sync_controls()

    def _apply_text(self):
        try:
            units = self.engine.resolve_units(self.layer, parse_units(self.units_box.value))
            indices = parse_indices(self.indices_box.value)
            n = len(self.engine.dataset) if self.engine.dataset is not None else 0
            bad = [i for i in indices if not 0 <= i < n]
            if bad:
                raise IndexError(f"input rows {bad} out of range: the dataset has {n} images "
                                 f"(0..{n - 1})")
        except Exception as exc:  # noqa: BLE001 - a typo is shown, never raised into the void
            self.error.value = f"<span style='color:#a00'>{type(exc).__name__}: {exc}</span>"
            return
        self.error.value = ""
        with self.hold_trait_notifications():
            self.units, self.indices = list(units), indices

    # -- canvases ------------------------------------------------------------------------------
    def _build_canvases(self):
        h, w = self.engine.input_shape[1:]
        self.grid_canvas = new_canvas(10, 10, "cnnw-grid")
        self.detail_canvas = new_canvas(3 * (w * DETAIL_SCALE + 8), h * DETAIL_SCALE + HEADER,
                                        "cnnw-detail")
        self.drawing_pad = DrawingPad(self.engine.input_shape, PAD_SCALE)
        self.drawing_pad.on_change(lambda _kind: self._request_pad())
        self.pad_canvas, self.clear_button = self.drawing_pad.canvas, self.drawing_pad.clear_button
        self.pad_canvas_row = new_canvas(10, 10, "cnnw-pad-row")
        self.grid_canvas.on_mouse_down(lambda x, y: self._click(self.grid_canvas, x, y))
        self.pad_canvas_row.on_mouse_down(lambda x, y: self._click(self.pad_canvas_row, x, y))
        redraw_on_reconnect(self.grid_canvas, self._draw_grid)
        redraw_on_reconnect(self.pad_canvas_row, self._draw_pad_row)
        redraw_on_reconnect(self.detail_canvas, self._draw_detail)

    # -- computing (on the worker thread, except the first picture) -----------------------------
    def _rows(self) -> np.ndarray:
        return self.engine.dataset.images[self.indices].numpy()

    def _compute_grid(self, control=NO_CONTROL):
        if not self.indices:
            return None
        return self.engine.etalons(self._rows(), self.layer, self.units, control=control)

    def _compute_pad(self, control=NO_CONTROL):
        return self.engine.etalons(self.pad.copy(), self.layer, self.units, control=control)

    def _on_request(self, _change=None):
        self.selected = None
        self._sync_controls()
        self.run_job("grid", self._compute_grid, self._show_grid, label="etalons")
        self._request_pad()

    def _request_pad(self):
        """Recompute the pad's row on the worker; a newer stroke supersedes this one."""
        self.run_job("pad", self._compute_pad, self._show_pad, label="pad", quiet=True)

    def count_regions(self):
        """Long job: distinct activation patterns per class over the engine's dataset."""
        self.run_job("regions", lambda control: self.engine.count_regions(control=control),
                     self._show_regions, label="counting linear regions")

    def check_with_paper(self):
        """Long job: the paper's Algorithm 1 as written (one coordinate image at a time) for
        every row of the grid, compared with the fast path."""
        layer, units = self.layer, self.units

        def work(control):
            rows = self._rows()
            start = time.perf_counter()
            fast = self.engine.etalons(rows, layer, units)
            t_fast = time.perf_counter() - start
            start = time.perf_counter()
            paper = self.engine.etalons(rows, layer, units, method="paper",
                                        one_hot_batch=1, control=control)
            t_paper = time.perf_counter() - start
            return fast, paper, t_fast, t_paper
        self.run_job("paper", work, self._show_paper_check, label="paper's algorithm")

    # -- showing (pure functions of state) ---------------------------------------------------
    def _show_grid(self, result):
        self.grid_result = result
        self._draw_grid()

    def _show_pad(self, result):
        self.pad_result = result
        score = result.out[0]
        best = int(np.argmax(score))
        word = "predicted" if self.layer == self.engine.default_layer else "strongest unit"
        self.pad_readout.value = f"pad: {word} {self._unit_label(best)} (score {score[best]:.2f})"
        self._draw_pad_row()

    def _unit_label(self, j: int) -> str:
        u = self.units[j] if j < len(self.units) else ()
        if self.layer == self.engine.default_layer and len(u) == 1:
            return self.engine.class_names[u[0]]
        return ":".join(str(i) for i in u)

    def _sheet(self, result, labels: list[str]):
        """The RGBA sheet of rows for ``result`` plus the captions drawn on it."""
        cells = [row_cells(result.x[i], result.W[i], self.k) for i in range(len(result.x))]
        sheet, corners = draw.tile(cells, self.cell, GAP, origin=(HEADER, 0))
        captions = [("input", 2, HEADER - 5)]
        captions += [(self._unit_label(j), corners[0][j + 1][1] + 2, HEADER - 5)
                     for j in range(len(self.units))] if corners else []
        frames = []
        for i, row in enumerate(corners):
            top = row[0][0] + self.cell[0] + 12
            captions.append((labels[i], row[0][1] + 2, top))
            best = int(np.argmax(result.out[i]))
            for j in range(len(self.units)):
                captions.append((f"{result.out[i, j]:.2f}", row[j + 1][1] + 2, top))
            frames.append(row[best + 1])
        return sheet, captions, frames

    def _paint(self, canvas, sheet, captions, frames):
        with drawing():
            paint_sheet(canvas, sheet)
            for text, x, y in captions:
                canvas.fill_text(text, x, y)
            canvas.stroke_style, canvas.line_width = "#d00", 2
            for top, left in frames:
                canvas.stroke_rect(left - 1, top - 1, self.cell[1] + 2, self.cell[0] + 2)

    def _draw_grid(self):
        if self.grid_result is None:
            with drawing():
                self.grid_canvas.clear()
                self.grid_canvas.fill_text("no dataset rows: draw on the pad", 4, 14)
            return
        labels = [f"label {self.engine.class_names[int(self.engine.dataset.labels[i])]}"
                  for i in self.indices]
        sheet, self.captions, frames = self._sheet(self.grid_result, labels)
        self.grid_rgba = sheet
        self._paint(self.grid_canvas, sheet, self.captions, frames)

    def _draw_pad_row(self):
        if self.pad_result is None:
            return
        sheet, captions, frames = self._sheet(self.pad_result, ["pad"])
        self.pad_row_rgba = sheet
        self._paint(self.pad_canvas_row, sheet, captions, frames)

    def _draw_detail(self):
        sel = self.selected
        result = self.grid_result if sel and sel[0] == "grid" else self.pad_result
        if sel is None or result is None:
            self.detail_rgba = None
            self.detail_text.value = ""
            placeholder(self.detail_canvas, "Click an etalon for its decomposition.")
            return
        _, i, j = sel
        s = DETAIL_SCALE
        panels = [draw.upscale(draw.image(result.x[i]), s),
                  draw.upscale(draw.signed(result.W[i, j]), s),
                  draw.upscale(draw.signed(result.contributions[i, j]), s)]
        sheet, corners = draw.tile([panels], panels[0].shape[:2], (0, 8), origin=(HEADER, 0))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(self.detail_canvas, sheet, font="12px sans-serif", resize=False)
            for (_top, left), title in zip(corners[0], ["input x", "etalon W", "votes W ⊙ x"]):
                self.detail_canvas.fill_text(title, left + 2, HEADER - 5)
        linear, b, out = result.linear_part[i, j], result.b[i, j], result.out[i, j]
        flag = "exact" if result.exact else "not exact"
        self.detail_text.value = (
            f"<b>unit {self._unit_label(j)}</b>, {'pad' if sel[0] == 'pad' else f'row {i}'}<br>"
            f"&lt;W, x&gt; = {linear:.4f}<br>b = {b:.4f}<br>"
            f"f = &lt;W, x&gt; + b = {linear + b:.4f}<br>"
            f"the network gives {out:.4f} <span title='{html.escape(result.reason)}'>({flag})</span>")

    def _show_regions(self, count):
        self.region_count = count
        rows = "".join(f"<tr><td>{self.engine.class_names[c]}</td><td>{n}</td><td>{k}</td></tr>"
                       for c, (n, k) in count.per_class.items())
        self.report.value = (f"<b>Linear regions</b>: {count.images} images visit {count.total} "
                             f"distinct activation patterns<table><tr><th>class</th><th>images"
                             f"</th><th>patterns</th></tr>{rows}</table>")

    def _show_paper_check(self, value):
        fast, paper, t_fast, t_paper = value
        self.paper_check = value
        scale = float(np.abs(paper.W).max()) or 1.0
        dev = float(np.abs(fast.W - paper.W).max()) / scale
        db = float(np.abs(fast.b - paper.b).max())
        self.report.value = (f"<b>Paper's Algorithm 1</b> (one coordinate image at a time) vs the "
                             f"fast path on {fast.W.shape[0]}×{fast.W.shape[1]} etalons: max "
                             f"relative difference of W {dev:.1e}, of b {db:.1e}; "
                             f"{t_paper:.2f} s vs {t_fast:.3f} s (×{t_paper / t_fast:.0f})")

    # -- events (kernel thread: quick, then hand work to the worker) -----------------------
    def _click(self, canvas, x, y):
        result = self.grid_result if canvas is self.grid_canvas else self.pad_result
        if result is None:
            return
        hit = draw.cell_at(x, y, self.cell, GAP, (HEADER, 0), (len(result.x), len(self.units) + 1))
        if hit is not None and hit[1] >= 1:
            self.selected = ("grid" if canvas is self.grid_canvas else "pad", hit[0], hit[1] - 1)

    # -- the drawing pad -----------------------------------------------------------------------
    @property
    def pad(self) -> np.ndarray:
        """The drawing on the pad, (C, H, W) float32 in [0, 1] (the pad's own array)."""
        return self.drawing_pad.image

    def clear_pad(self):
        """Erase the pad; its row is computed again."""
        self.drawing_pad.clear()
