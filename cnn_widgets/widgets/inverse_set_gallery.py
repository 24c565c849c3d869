"""InverseSetGallery: the inverse-set paper (Hada & Carreira-Perpiñán) as a live view.

Pick a unit and an activation range over its histogram on the dataset (add more units for an
intersection), choose K and n, Run: seeds then sampling on the worker thread, the gallery fills
as samples arrive, each labelled with its activation(s); a histogram of the samples'
activations inside the range; click a sample to enlarge it next to its etalons.
"""
from __future__ import annotations

import threading
import time

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets as T

from . import draw
from ._base import (
    JobWidget,
    drawing,
    new_canvas,
    paint_sheet,
    placeholder,
    put_rgba,
    redraw_on_reconnect,
    resize_canvas,
)
from .units import default_units, format_units, parse_units

COLS = 10               # samples per gallery row
MAX_SHOWN = 50          # samples drawn (evenly picked from all collected)
GAP = (16, 6)           # px below (label) and right of each cell
DETAIL_SCALE = 4
LIVE_INTERVAL_S = 0.25  # gallery redraws while samples arrive


def _unit_text(unit) -> str:
    return format_units([tuple(unit)])


class InverseSetGallery(JobWidget):
    """Live inverse-set sampler for an :class:`~cnn_widgets.Engine`.

    generator: G (codes -> images, with ``code_dim``), e.g. ``zoo.digits_generator()``; None
    samples in pixel space. encoder: E for diversity (default: the model's conv layers).
    layer, unit: the first unit (default: the logits, unit 0); range: its (z1, z2) (default:
    the 70th-90th percentile of its values on the dataset); K, n: seeds and samples.
    """

    constraints = T.List()      # [(layer, unit tuple, z1, z2)]; the picker edits the last one
    selected = T.Int(allow_none=True, default_value=None)   # index into the samples

    def __init__(self, engine, generator=None, *, encoder=None, layer: str | None = None,
                 unit=0, range=None, K: int = 10, n: int = 100):
        super().__init__(engine)
        self.add_class("cnnw-inverse-set")
        self.generator, self.encoder = generator, encoder
        self.k = max(1, 56 // max(engine.input_shape[1:]))
        self.cell = (engine.input_shape[1] * self.k, engine.input_shape[2] * self.k)
        self.result = None
        self.images = np.zeros((0, *engine.input_shape), np.float32)
        self.activations = np.zeros((0, 0))
        self.shown: list[int] = []          # sample index of each drawn cell
        self.gallery_rgba = self.detail_rgba = None
        self.labels: list[str] = []
        self.dataset_values = None
        self._live_lock = threading.Lock()
        self._generation = 0
        self._last_live = 0.0
        self._syncing = False
        self._detail = None                 # (sample, image, etalons) shown enlarged
        self._build()

        self.constraints = [self._constraint(layer, unit, range)]
        self.K_box.value, self.n_box.value = int(K), int(n)
        self._load_picker()
        self.observe(lambda _c: self._after_constraints(), names=["constraints"])
        self.observe(lambda _c: self._request_detail(), names=["selected"])
        self._after_constraints()
        self._draw_gallery()
        self._draw_detail(None)

    # -- building ----------------------------------------------------------------------------
    def _build(self):
        e = self.engine
        self.layer_box = W.Dropdown(options=e.layer_names, description="layer",
                                    layout=W.Layout(width="190px"))
        self.unit_box = W.Text(description="unit", continuous_update=False,
                               placeholder="3  or  c:y:x", layout=W.Layout(width="170px"))
        self.range_slider = W.FloatRangeSlider(description="range", readout_format=".2f",
                                               continuous_update=False,
                                               layout=W.Layout(width="440px"))
        self.add_button = W.Button(description="Add unit", icon="plus",
                                   tooltip="intersection: add another unit with its own range",
                                   layout=W.Layout(width="100px"))
        self.remove_button = W.Button(description="Remove", icon="minus",
                                      layout=W.Layout(width="90px"))
        short = {"description_width": "20px"}
        self.K_box = W.BoundedIntText(description="K", min=1, max=1000, style=short,
                                      layout=W.Layout(width="100px"))
        self.n_box = W.BoundedIntText(description="n", min=1, max=100000, style=short,
                                      layout=W.Layout(width="120px"))
        self.run_button = W.Button(description="Run", icon="play", button_style="primary",
                                   layout=W.Layout(width="80px"))
        self.constraints_html, self.summary, self.detail_text = W.HTML(), W.HTML(), W.HTML()
        for w, cls in ((self.layer_box, "cnnw-layer"), (self.unit_box, "cnnw-unit"),
                       (self.range_slider, "cnnw-range"), (self.add_button, "cnnw-add-unit"),
                       (self.remove_button, "cnnw-remove-unit"), (self.K_box, "cnnw-K"),
                       (self.n_box, "cnnw-n"), (self.run_button, "cnnw-run"),
                       (self.constraints_html, "cnnw-constraints"),
                       (self.summary, "cnnw-summary"), (self.detail_text, "cnnw-detail-text")):
            w.add_class(cls)
        self.layer_box.observe(self._on_picker, names="value")
        self.unit_box.observe(self._on_picker, names="value")
        self.range_slider.observe(self._on_range, names="value")
        self.add_button.on_click(lambda _b: self.add_unit())
        self.remove_button.on_click(lambda _b: self.remove_unit())
        self.run_button.on_click(lambda _b: self.run())

        hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
        self.data_bars = bq.Bars(x=np.zeros(1), y=np.zeros(1), scales={"x": hx, "y": hy},
                                 colors=["#9ab"], padding=0.05)
        self.range_lines = bq.Lines(x=np.zeros((2, 2)), y=np.zeros((2, 2)),
                                    scales={"x": hx, "y": hy}, colors=["#d00"], stroke_width=2)
        self.data_fig = bq.Figure(marks=[self.data_bars, self.range_lines],
                                  title="the unit on the dataset (red: range)",
                                  axes=[bq.Axis(scale=hx, num_ticks=6),
                                        bq.Axis(scale=hy, side="left", num_ticks=3)],
                                  layout=W.Layout(width="460px", height="200px"),
                                  fig_margin=dict(top=30, bottom=25, left=40, right=10))
        sx, sy = bq.LinearScale(), bq.LinearScale(min=0.0, max=1.0)
        self.sample_y = sy       # its max is set with the counts: from all zeros bqplot never rescales
        self.sample_bars = bq.Bars(x=np.zeros(1), y=np.zeros(1), scales={"x": sx, "y": sy},
                                   colors=["#c63"], padding=0.05)
        self.sample_fig = bq.Figure(marks=[self.sample_bars], title="samples inside the range",
                                    axes=[bq.Axis(scale=sx, num_ticks=5),
                                          bq.Axis(scale=sy, side="left", num_ticks=3)],
                                    layout=W.Layout(width="360px", height="200px"),
                                    fig_margin=dict(top=30, bottom=25, left=40, right=10))
        for fig, cls in ((self.data_fig, "cnnw-data-hist"), (self.sample_fig, "cnnw-sample-hist")):
            fig.add_class(cls)

        self.gallery_canvas = new_canvas(COLS * (self.cell[1] + GAP[1]), 10, "cnnw-gallery")
        h, w = self.engine.input_shape[1:]
        self.detail_canvas = new_canvas(4 * (w * DETAIL_SCALE + 8), h * DETAIL_SCALE + 18,
                                        "cnnw-detail")
        self.gallery_canvas.on_mouse_down(self._click)
        redraw_on_reconnect(self.gallery_canvas, self._draw_gallery)
        redraw_on_reconnect(self.detail_canvas, self._paint_detail)

        self.children = [
            W.HBox([self.layer_box, self.unit_box, self.add_button, self.remove_button]),
            self.constraints_html,
            W.HBox([W.VBox([self.data_fig, self.range_slider]), self.sample_fig]),
            W.HBox([self.K_box, self.n_box, self.run_button]),
            self.status_bar, self.error, self.summary,
            W.HBox([self.gallery_canvas,
                    W.VBox([self.detail_canvas, self.detail_text],
                           layout=W.Layout(margin="0 0 0 12px"))]),
        ]

    # -- the unit picker and the constraints ----------------------------------------------------
    def _values(self, layer, unit) -> np.ndarray:
        """The unit's value on every dataset image (empty without a dataset)."""
        if self.engine.dataset is None:
            return np.zeros(0)
        return self.engine.activation_histogram((layer, unit)).values

    def _default_range(self, layer, unit):
        """The 70th-90th percentile of the unit on the dataset."""
        values = self._values(layer, unit)
        if not len(values):
            raise ValueError("the engine has no dataset to place a default range: pass "
                             "range=(z1, z2)")
        return tuple(np.percentile(values, [70, 90]))

    def _load_picker(self):
        """Show the last constraint in the picker."""
        layer, unit, lo, hi = self.constraints[-1]
        values = self._values(layer, unit)
        self.dataset_values = values
        vmin, vmax = (float(values.min()), float(values.max())) if len(values) else (lo, hi)
        pad = 0.25 * max(vmax - vmin, hi - lo, 1e-3)
        lo_lim, hi_lim = min(vmin, lo) - pad, max(vmax, hi) + pad
        self._syncing = True
        try:
            self.layer_box.value, self.unit_box.value = layer, _unit_text(unit)
            s = self.range_slider
            s.min, s.max = -1e30, 1e30           # widen first: min/max validate against value
            s.value = (lo, hi)
            s.min, s.max, s.step = lo_lim, hi_lim, (hi_lim - lo_lim) / 400
        finally:
            self._syncing = False
        if len(values):
            counts, edges = np.histogram(values, bins=40, range=(lo_lim, hi_lim))
            with self.data_bars.hold_sync():
                self.data_bars.x, self.data_bars.y = (edges[:-1] + edges[1:]) / 2, counts
        self._draw_range_lines()

    def _draw_range_lines(self):
        _, _, lo, hi = self.constraints[-1]
        top = float(max(self.data_bars.y.max(), 1))
        self.range_lines.x = np.array([[lo, lo], [hi, hi]])
        self.range_lines.y = np.array([[0, top], [0, top]])

    def _on_picker(self, change):
        if self._syncing:
            return
        try:
            layer = self.engine.layer(self.layer_box.value).name
            if change["owner"] is self.layer_box:    # a new layer: its first channel, centred
                units = default_units(self.engine.layer(layer).output_shape)
            else:
                units = parse_units(self.unit_box.value) or [0]
            (unit,) = self.engine.resolve_units(layer, units[:1])
        except Exception as exc:  # noqa: BLE001 - a typo is shown, never raised into the void
            self.error.value = f"<span style='color:#a00'>{type(exc).__name__}: {exc}</span>"
            return
        self.error.value = ""
        lo, hi = self._default_range(layer, unit) if self.engine.dataset is not None \
            else self.constraints[-1][2:]
        self.constraints = self.constraints[:-1] + [(layer, unit, float(lo), float(hi))]
        self._load_picker()

    def _on_range(self, change):
        if self._syncing:
            return
        layer, unit, _, _ = self.constraints[-1]
        lo, hi = change["new"]
        self.constraints = self.constraints[:-1] + [(layer, unit, float(lo), float(hi))]
        self._draw_range_lines()

    def add_unit(self, layer: str | None = None, unit=0, range=None):
        """Add a unit to the intersection (default: a copy of the picker's); the picker then
        edits it."""
        new = self.constraints[-1] if layer is None else self._constraint(layer, unit, range)
        self.constraints = self.constraints + [new]
        self._load_picker()

    def _constraint(self, layer, unit, range):
        """(layer, unit tuple, z1, z2) for a layer name (None: the logits), a unit (an index
        or a tuple) and a range (None: the default range)."""
        layer = self.engine.layer(layer).name
        (u,) = self.engine.resolve_units(layer, [unit] if isinstance(unit, (int, np.integer))
                                         else [tuple(unit)])
        lo, hi = range if range is not None else self._default_range(layer, u)
        return (layer, u, float(lo), float(hi))

    def remove_unit(self):
        if len(self.constraints) > 1:
            self.constraints = self.constraints[:-1]
            self._load_picker()

    def _after_constraints(self):
        rows = "".join(f"<li>{layer} unit {_unit_text(u)}: [{lo:.2f}, {hi:.2f}]</li>"
                       for layer, u, lo, hi in self.constraints)
        word = "intersection of" if len(self.constraints) > 1 else "inverse set of"
        self.constraints_html.value = f"<b>{word}</b><ul style='margin:0'>{rows}</ul>"

    # -- running (the worker thread) --------------------------------------------------------------
    def run(self):
        """Sample the inverse set of the constraints on the worker thread."""
        units = [(layer, u) for layer, u, _, _ in self.constraints]
        ranges = [(lo, hi) for _, _, lo, hi in self.constraints]
        K, n = int(self.K_box.value), int(self.n_box.value)
        with self._live_lock:
            self._generation += 1
            gen = self._generation
            self.images = np.zeros((0, *self.engine.input_shape), np.float32)
            self.activations = np.zeros((0, len(units)))
        self.result, self.selected, self.summary.value = None, None, ""
        self._draw_gallery()

        def work(control):
            return self.engine.inverse_set(units, ranges, generator=self.generator,
                                           encoder=self.encoder, K=min(K, n), n=n,
                                           control=control,
                                           on_samples=lambda im, a: self._arrived(gen, im, a))
        self.run_job("run", work, self._show_result, label="inverse set")

    def _arrived(self, gen, images, acts):
        with self._live_lock:
            if gen != self._generation:
                return
            self.images = np.concatenate([self.images, images])
            self.activations = np.concatenate([self.activations, acts])
        now = time.monotonic()
        if now - self._last_live >= LIVE_INTERVAL_S:
            self._last_live = now
            self._draw_gallery()

    def _show_result(self, res):
        with self._live_lock:
            self.result, self.images, self.activations = res, res.images, res.activations
        self.summary.value = (
            f"{res.n} samples, all inside their range(s); gradient steps: {res.steps_seeds} for "
            f"the {res.K} seeds, {res.steps_sampling} for the other {res.n - res.K}; diversity "
            f"(mean distance in E's space) {res.diversity:.2f}" + (f"<br>{res.report}"
                                                                    if res.report else ""))
        self._draw_gallery()

    # -- drawing -------------------------------------------------------------------------------
    def _draw_gallery(self):
        with self._live_lock:
            images, acts = self.images, self.activations
        m = len(images)
        self.shown = sorted(set(np.linspace(0, m - 1, min(m, MAX_SHOWN)).round().astype(int)
                                .tolist())) if m else []
        self.labels = [" / ".join(f"{v:.2f}" for v in acts[i]) for i in self.shown]
        cells = [[draw.upscale(draw.image(images[i]), self.k) for i in self.shown[r:r + COLS]]
                 for r in range(0, len(self.shown), COLS)]
        sheet, corners = draw.tile(cells, self.cell, GAP)
        self.gallery_rgba = sheet
        flat = [c for row in corners for c in row]
        with drawing():
            c = self.gallery_canvas
            resize_canvas(c, c.width, max(sheet.shape[0], 40))
            c.clear()
            if m:
                put_rgba(c, sheet)
            c.fill_style, c.font = "#222", "10px sans-serif"
            for (top, left), text in zip(flat, self.labels):
                c.fill_text(text, left + 1, top + self.cell[0] + 11)
            if not m:
                c.fill_text("Run to sample the inverse set.", 4, 20)
        self._draw_sample_hist(acts)

    def _draw_sample_hist(self, acts):
        _, _, lo, hi = self.constraints[-1]
        p = len(self.constraints) - 1
        values = acts[:, p] if acts.ndim == 2 and acts.shape[1] > p else np.zeros(0)
        counts, edges = np.histogram(values, bins=20, range=(lo, hi))
        with self.sample_bars.hold_sync():
            self.sample_bars.x, self.sample_bars.y = (edges[:-1] + edges[1:]) / 2, counts
        self.sample_y.max = float(max(counts.max(), 1))

    def _click(self, x, y):
        hit = draw.cell_at(x, y, self.cell, GAP, (0, 0), (-(-len(self.shown) // COLS), COLS))
        if hit is not None and hit[0] * COLS + hit[1] < len(self.shown):
            self.selected = self.shown[hit[0] * COLS + hit[1]]

    def _request_detail(self):
        i = self.selected
        if i is None or i >= len(self.images):
            self._draw_detail(None)
            return
        x, constraints = self.images[i].copy(), list(self.constraints)

        def work(control):
            return i, x, [self.engine.etalons(x, layer, [u], control=control)
                          for layer, u, _, _ in constraints[:3]]
        self.run_job("detail", work, self._draw_detail, label="etalon", quiet=True)

    def _draw_detail(self, value):
        self._detail = value
        self._paint_detail()

    def _paint_detail(self):
        value, c = self._detail, self.detail_canvas
        if value is None:
            self.detail_rgba, self.detail_text.value = None, ""
            placeholder(c, "Click a sample to enlarge it with its etalon.")
            return
        i, x, ets = value
        s = DETAIL_SCALE
        panels = [draw.upscale(draw.image(x), s)]
        panels += [draw.upscale(draw.signed(et.W[0, 0]), s) for et in ets]
        sheet, corners = draw.tile([panels], panels[0].shape[:2], (0, 8), origin=(18, 0))
        self.detail_rgba = sheet
        with drawing():
            paint_sheet(c, sheet, font="12px sans-serif", resize=False)
            titles = [f"sample {i}"] + [f"etalon {et.layer}:{_unit_text(et.units[0])}" for et in ets]
            for (_top, left), title in zip(corners[0], titles):
                c.fill_text(title, left + 2, 13)
        rows = "".join(f"<br>{et.layer} unit {_unit_text(et.units[0])}: f = {et.out[0, 0]:.3f} "
                       f"(range [{lo:.2f}, {hi:.2f}]; etalon {'exact' if et.exact else 'Jacobian'})"
                       for et, (_, _, lo, hi) in zip(ets, self.constraints))
        self.detail_text.value = f"<b>sample {i}</b>{rows}"
