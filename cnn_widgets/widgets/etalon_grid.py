"""EtalonGrid: the etalon paper's Fig. 11 as a live view.

Rows: inputs (one per class by default); columns: the input, then one etalon W_p(x) per unit,
blue-white-red around zero (red = attention, blue = ignoring), the unit's score under each,
the row's strongest unit framed in red. Click a cell for the enlarged etalon, the votes W ⊙ x
and the decomposition f = <W, x> + b. Draw on the pad and its own row updates while drawing.

State: the traits ``layer``, ``units``, ``indices`` (validated) and ``selected``; one observer
turns a change into a job (grid and pad on the worker, never on the kernel thread) or a redraw.
"""
from __future__ import annotations

import html
import time

import numpy as np
import traitlets as T

from ..engine import Engine
from . import draw
from ._base import JobWidget, drawing, paint_sheet, placeholder
from .etalon_grid_controls import build
from .layout.etalon_grid import (
    DETAIL_GAP,
    DETAIL_SCALE,
    GAP,
    HEADER,
    Caption,
    GridLayout,
    PaperCheck,
    Selection,
    cell_scale,
)
from .units import MAX_ITEMS, default_units, format_units, parse_indices, parse_units
from .validate import InvalidTrait, refused, whole

__all__ = ["EtalonGrid", "Selection", "Caption", "PaperCheck", "GAP", "HEADER"]


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
    The pictures are computed on the engine's worker: ``wait()`` for them in a script.
    """

    layer = T.Unicode()
    units = T.List()                    # resolved unit tuples
    indices = T.List()                  # dataset rows shown
    selected = T.Instance(Selection, allow_none=True)
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"grid": ("layer", "units", "indices"),
                "pad": ("layer", "units", "drawing_pad.version"),
                "paper": ("layer", "units", "indices"), "regions": ()}

    def __init__(self, engine: Engine, *, indices=None, layer: str | None = None, units=None):
        super().__init__(engine)
        self.add_class("cnnw-etalon-grid")
        self._ready = False
        self.k = cell_scale(engine.input_shape[1:])
        self.cell = GridLayout.of(engine.input_shape[1:], 0, 0).cell
        self.grid_result = None             # Etalons of the rows (what the grid shows)
        self.pad_result = None              # Etalons of the pad image
        self.grid_rgba = self.pad_row_rgba = self.detail_rgba = None
        self.captions: list[Caption] = []
        self.region_count = self.paper_check = None
        self._syncing = False
        build(self)

        if indices is None and engine.dataset is not None:
            indices = engine.dataset.first_of_each_class(engine.n_classes).tolist()
        self.layer = layer if layer is not None else engine.default_layer
        self.units = units if units is not None else self._default_units(self.layer)
        self.indices = list(indices or [])
        self._ready = True
        self._sync_controls()
        placeholder(self.grid_canvas, "computing etalons…")
        self._request_grid()
        self._request_pad()
    # -- state: validated traits, one observer ----------------------------------------------
    @T.validate("layer")
    def _valid_layer(self, proposal):
        with refused():
            return self.engine.layer(proposal["value"]).name

    @T.validate("units")
    def _valid_units(self, proposal):
        for u in proposal["value"]:
            for v in u if isinstance(u, (tuple, list)) else (u,):
                if isinstance(v, bool):
                    whole("units", v)          # True is not unit 1
        with refused():
            units = self.engine.resolve_units(self.layer, proposal["value"])
        if len(units) > MAX_ITEMS:
            raise InvalidTrait(f"{len(units)} units asked for; at most {MAX_ITEMS} at once")
        return list(units)

    @T.validate("indices")
    def _valid_indices(self, proposal):
        rows = list(proposal["value"])
        n = len(self.engine.dataset) if self.engine.dataset is not None else 0
        bad = [i for i in rows if isinstance(i, bool) or not isinstance(i, (int, np.integer))
               or not 0 <= i < n][:5]
        if bad:
            raise InvalidTrait(f"input rows {bad} out of range: the dataset has {n} images"
                               + (f" (0..{n - 1})" if n else ""))
        if len(rows) > MAX_ITEMS:
            raise InvalidTrait(f"{len(rows)} input rows asked for; at most {MAX_ITEMS} at once")
        return [int(i) for i in rows]

    @T.validate("selected")
    def _valid_selected(self, proposal):
        sel = proposal["value"]
        if sel is None:
            return sel
        whole("selected.row", sel.row), whole("selected.unit", sel.unit)
        result = self.grid_result if sel.source == "grid" else self.pad_result
        rows = 0 if result is None else len(result.x)
        units = 0 if result is None else len(result.units)
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
        if change["name"] == "layer" and not self._units_fit():
            self.units = self._default_units(self.layer)      # observed again as "units"
            return
        self.selected = None
        self._sync_controls()
        self._request_grid()
        if change["name"] != "indices":
            self._request_pad()

    def _units_fit(self) -> bool:
        try:
            self.engine.resolve_units(self.layer, self.units)
        except (ValueError, LookupError):
            return False
        return True

    # -- controls ------------------------------------------------------------------------------
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
        if not self._syncing and change["new"] != self.layer:
            with self.hold_trait_notifications():
                self.layer, self.units = change["new"], self._default_units(change["new"])

    def _apply_text(self):
        n = len(self.engine.dataset) if self.engine.dataset is not None else 0
        try:
            units = parse_units(self.units_box.value, self.engine.layer(self.layer).n_units)
            indices = parse_indices(self.indices_box.value, n, "input row")
            with self.hold_trait_notifications():
                self.units = units if units is not None else self._default_units(self.layer)
                self.indices = indices
        except (ValueError, TypeError, LookupError, T.TraitError) as exc:
            self.show_error(exc)         # a typo is shown, never raised into the void
            return
        self.show_error(None)

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _request_grid(self):
        layer, units, engine = self.layer, list(self.units), self.engine
        rows = engine.dataset.images[self.indices].numpy() if self.indices else None
        self.run_job("grid", lambda control: None if rows is None else
                     engine.etalons(rows, layer, units, control=control),
                     self._show_grid, label="etalons")

    def _request_pad(self):
        """Recompute the pad's row on the interactive lane; a newer stroke supersedes it."""
        layer, units, engine, image = self.layer, list(self.units), self.engine, self.pad.copy()
        self.run_job("pad", lambda control: engine.etalons(image, layer, units, control=control),
                     self._show_pad, label="pad", quiet=True)

    def count_regions(self):
        """Long job: distinct activation patterns per class over the engine's dataset."""
        engine = self.engine
        self.run_job("regions", lambda control: engine.count_regions(control=control),
                     self._show_regions, label="counting linear regions")

    def check_with_paper(self):
        """Long job: the paper's Algorithm 1 as written (one coordinate image at a time) for
        every row of the grid, compared with the fast path."""
        layer, units, engine = self.layer, list(self.units), self.engine
        rows = engine.dataset.images[self.indices].numpy()

        def work(control):
            start = time.perf_counter()
            fast = engine.etalons(rows, layer, units)
            t_fast = time.perf_counter() - start
            start = time.perf_counter()
            paper = engine.etalons(rows, layer, units, method="paper", one_hot_batch=1,
                                   control=control)
            return PaperCheck(fast, paper, t_fast, time.perf_counter() - start)
        self.run_job("paper", work, self._show_paper_check, label="paper's algorithm")

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_grid(self, result):
        self.grid_result = result
        self._draw_grid()

    def _show_pad(self, result):
        self.pad_result = result
        score = result.out[0]
        best = int(np.argmax(score))
        word = "predicted" if result.layer == self.engine.default_layer else "strongest unit"
        self.pad_readout.value = (f"pad: {word} {self._unit_label(result, best)} "
                                  f"(score {score[best]:.2f})")
        self._draw_pad_row()
        if self.selected is not None and self.selected.source == "pad":
            self._draw_detail()          # the enlarged pad etalon follows the drawing

    def _unit_label(self, result, j: int) -> str:
        """A class name for a logit, else the unit's coordinates (plain text: escape it for
        HTML)."""
        u = result.units[j]
        if result.layer == self.engine.default_layer and len(u) == 1:
            return str(self.engine.class_names[u[0]])
        return ":".join(str(i) for i in u)

    def _sheet(self, result, labels: list[str]):
        """The RGBA sheet of rows for ``result``, the captions drawn on it and the frames of
        each row's strongest unit."""
        cells = [row_cells(result.x[i], result.W[i], self.k) for i in range(len(result.x))]
        sheet, _ = draw.tile(cells, self.cell, GAP, origin=(HEADER, 0))
        grid = GridLayout(self.cell, len(cells), len(result.units))
        captions = [Caption("input", *grid.title_at(0))]
        captions += [Caption(self._unit_label(result, j), *grid.title_at(j + 1))
                     for j in range(grid.units)]
        frames = []
        for i in range(grid.rows):
            captions.append(Caption(labels[i], *grid.caption_at(i, 0)))
            captions += [Caption(f"{result.out[i, j]:.2f}", *grid.caption_at(i, j + 1))
                         for j in range(grid.units)]
            frames.append(grid.frame(i, int(np.argmax(result.out[i]))))
        return sheet, captions, frames

    def _paint(self, canvas, sheet, captions, frames):
        with drawing():
            paint_sheet(canvas, sheet)
            for c in captions:
                canvas.fill_text(c.text, c.x, c.y)
            canvas.stroke_style, canvas.line_width = "#d00", 2
            for frame in frames:
                canvas.stroke_rect(*frame)

    def _draw_grid(self):
        if self.grid_result is None:
            if self._ready and self.engine.dataset is None:
                placeholder(self.grid_canvas, "no dataset rows: draw on the pad")
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
        result = self.grid_result if sel and sel.source == "grid" else self.pad_result
        if sel is None or result is None:
            self.detail_rgba = None
            self.detail_text.value = ""
            placeholder(self.detail_canvas, "Click an etalon for its decomposition.")
            return
        i, j, s = sel.row, sel.unit, DETAIL_SCALE
        panels = [draw.upscale(draw.image(result.x[i]), s),
                  draw.upscale(draw.signed(result.W[i, j]), s),
                  draw.upscale(draw.signed(result.contributions[i, j]), s)]
        sheet, corners = draw.tile([panels], panels[0].shape[:2], (0, DETAIL_GAP),
                                   origin=(HEADER, 0))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(self.detail_canvas, sheet, font="12px sans-serif", resize=False)
            for (_top, left), title in zip(corners[0], ["input x", "etalon W", "votes W ⊙ x"]):
                self.detail_canvas.fill_text(title, left + 2, HEADER - 5)
        linear, b, out = result.linear_part[i, j], result.b[i, j], result.out[i, j]
        flag = "exact" if result.exact else "not exact"
        where = "pad" if sel.source == "pad" else f"row {i}"
        self.detail_text.value = (
            f"<b>unit {html.escape(self._unit_label(result, j))}</b>, {where}<br>"
            f"&lt;W, x&gt; = {linear:.4f}<br>b = {b:.4f}<br>"
            f"f = &lt;W, x&gt; + b = {linear + b:.4f}<br>"
            f"the network gives {out:.4f} "
            f"<span title='{html.escape(result.reason, quote=True)}'>({flag})</span>")

    def _show_regions(self, count):
        self.region_count = count
        rows = "".join(f"<tr><td>{html.escape(str(self.engine.class_names[c]))}</td>"
                       f"<td>{n}</td><td>{k}</td></tr>" for c, (n, k) in count.per_class.items())
        self.report.value = (f"<b>Linear regions</b>: {count.images} images visit {count.total} "
                             f"distinct activation patterns<table><tr><th>class</th><th>images"
                             f"</th><th>patterns</th></tr>{rows}</table>")

    def _show_paper_check(self, check: PaperCheck):
        self.paper_check = check
        fast, paper = check.fast, check.paper
        scale = float(np.abs(paper.W).max()) or 1.0
        dev = float(np.abs(fast.W - paper.W).max()) / scale
        db = float(np.abs(fast.b - paper.b).max())
        self.report.value = (f"<b>Paper's Algorithm 1</b> (one coordinate image at a time) vs the "
                             f"fast path on {fast.W.shape[0]}×{fast.W.shape[1]} etalons: max "
                             f"relative difference of W {dev:.1e}, of b {db:.1e}; "
                             f"{check.seconds_paper:.2f} s vs {check.seconds_fast:.3f} s "
                             f"(×{check.seconds_paper / check.seconds_fast:.0f})")

    # -- events (kernel thread: quick, then hand work to the worker) -----------------------
    def _click(self, source, x, y):
        result = self.grid_result if source == "grid" else self.pad_result
        if result is None:
            return
        hit = GridLayout(self.cell, len(result.x), len(result.units)).unit_at(x, y)
        if hit is not None:
            self.selected = Selection(source, *hit)

    # -- the drawing pad -----------------------------------------------------------------------
    @property
    def pad(self) -> np.ndarray:
        """The drawing on the pad, (C, H, W) float32 in [0, 1] (the pad's own array)."""
        return self.drawing_pad.image

    def clear_pad(self):
        """Erase the pad; its row is computed again."""
        self.drawing_pad.clear()
