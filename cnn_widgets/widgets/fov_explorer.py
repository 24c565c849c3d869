"""FOVExplorer: the probing paper's field of view, live.

The input image with the grid of the chosen layer's positions over it. Hover a position to see
its receptive field (geometry only, nothing computed); click it to select the unit there (the
strongest channel by default, or the one in the channel picker) and get the paper's four
backward reconstructions side by side, cropped to the field: deconvnet, deconvnet with the
forward masks, masks with random weights, and the exact local filter. Below: a bar chart of
the fraction of active features per layer (this image, and the dataset's mean) and the layer's
strongest activation slices. "Best input" runs the paper's Sec. 4 search for the selected unit:
gradient ascent on the image from three random starts (the maximiser engine), a long job with
progress and Stop; it shows what each run added to its start, cropped to the field.
"""
from __future__ import annotations

import html

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine.core.control import NO_CONTROL
from ..engine.probing.activation_stats import activation_slices
from ..engine.probing.receptive_field import field_map
from ..engine.probing.reconstruct import METHODS
from . import draw
from ._base import JobWidget, drawing, new_canvas, paint_sheet, put_rgba, redraw_on_reconnect

PANEL = 120          # px of one reconstruction panel
HEADER = 16          # px above the panels, for titles
SLICE_PX = 56        # about this many px per activation slice
N_SLICES = 8
DATASET_IMAGES = 64  # images the dataset's mean activity is taken over
BEST_STARTS = 3      # random starts of the best-input search (the paper's Fig. 5)
TITLES = {"deconvnet": "deconvnet (eq. 4-5)", "deconvnet_masks": "with masks (eq. 6-7)",
          "random_masks": "random weights", "filter": "exact filter (eq. 8-9)"}


def fit(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an RGBA image so its longer side is ``size``, centred on a
    white (size, size) panel."""
    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    rows = np.minimum((np.arange(nh) / s).astype(int), h - 1)
    cols = np.minimum((np.arange(nw) / s).astype(int), w - 1)
    out = np.empty((size, size, 4), np.uint8)
    out[:] = draw.BACKGROUND
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = img[rows][:, cols]
    return out


class FOVExplorer(JobWidget):
    """Receptive fields and backward reconstructions of one image's units.

    engine: the engine; image: a dataset row (int, default 0) or an image (C, H, W);
    layer: the layer whose units are probed (default: ``engine.default_layer_for("probing")``); best_steps:
    gradient-ascent steps of the best-input search.
    """

    layer = T.Unicode()
    index = T.Int(0)                # dataset row shown (-1: an image given by the caller)

    def __init__(self, engine, image=None, layer: str | None = None, best_steps: int = 128):
        super().__init__(engine)
        self.best_steps = int(best_steps)
        self.best = None
        self.add_class("cnnw-fov")
        c, h, w = engine.input_shape
        self.k = max(1, 280 // max(h, w))
        self.custom = None
        if image is not None and not isinstance(image, (int, np.integer)):
            self.custom = engine.prepare(image)[0].cpu().numpy()
        elif engine.dataset is None:
            raise ValueError("FOVExplorer needs an image: pass image=(C, H, W) array (the engine "
                             "has no dataset)")
        elif not 0 <= int(image or 0) < len(engine.dataset):
            raise IndexError(f"image={image} out of range: the engine's dataset has "
                             f"{len(engine.dataset)} images (0..{len(engine.dataset) - 1})")
        self.view = self.recon = self.dataset_stats = None
        self.position: tuple[int, int] | None = None
        self.hover: tuple[int, int] | None = None
        self.channel = 0
        self.image_rgba = self.recon_rgba = self.slices_rgba = self.best_rgba = None
        self._syncing = False
        self._build()

        self.layer = engine.default_layer_for("probing", layer)
        self.index = -1 if self.custom is not None else int(image or 0)
        self._sync_controls()
        # first picture computed here (a headless notebook keeps it); later work on the worker
        self._show_view(self._compute_view(self.layer, self.x))
        self.observe(self._on_request, names=["layer", "index"])
        if engine.dataset is not None:
            self.run_job("dataset", self._compute_dataset_stats, self._show_dataset_stats,
                         label="dataset activity")

    @property
    def shown_layer(self) -> str:
        """The layer of the picture on screen (``layer`` once its job has finished): grid,
        hover and clicks follow what the user sees."""
        return self.view[0] if self.view is not None else self.layer

    @property
    def x(self) -> np.ndarray:
        """The image shown, (C, H, W)."""
        if self.index < 0:
            return self.custom
        return self.engine.dataset.images[self.index].numpy()

    # -- building ------------------------------------------------------------------------------
    def _build(self):
        e = self.engine
        grid_layers = [i.name for i in e.layers if len(i.output_shape) == 3]
        self.layer_box = W.Dropdown(options=grid_layers, description="layer",
                                    layout=W.Layout(width="220px"))
        n = len(e.dataset) if e.dataset is not None else 1
        self.index_box = W.BoundedIntText(min=0, max=max(n - 1, 0), description="image",
                                          layout=W.Layout(width="160px"),
                                          disabled=e.dataset is None)
        self.channel_box = W.BoundedIntText(min=0, max=0, description="channel",
                                            layout=W.Layout(width="160px"))
        self.info = W.HTML("")
        self.hover_text = W.HTML("")
        self.best_button = W.Button(description="Best input (3 random starts)", icon="search",
                                    layout=W.Layout(width="230px"))
        self.best_button.on_click(lambda _b: self.search_best_input())
        self.best_text = W.HTML("")
        for wdg, cls in ((self.layer_box, "cnnw-layer"), (self.index_box, "cnnw-index"),
                         (self.channel_box, "cnnw-channel"), (self.info, "cnnw-fov-info"),
                         (self.hover_text, "cnnw-hover"), (self.best_button, "cnnw-best"),
                         (self.best_text, "cnnw-best-text")):
            wdg.add_class(cls)
        self.layer_box.observe(lambda ch: self._syncing or setattr(self, "layer", ch["new"]),
                               names="value")
        self.index_box.observe(lambda ch: self._syncing or setattr(self, "index", ch["new"]),
                               names="value")
        self.channel_box.observe(self._on_channel_box, names="value")

        c, h, w = e.input_shape
        self.image_canvas = new_canvas(w * self.k, h * self.k, "cnnw-fov-image", layers=2)
        self.image_canvas.on_mouse_down(self._click)
        self.image_canvas.on_mouse_move(self._move)
        self.image_canvas.on_mouse_out(lambda x, y: self._set_hover(None))
        redraw_on_reconnect(self.image_canvas[0], self._draw_image)
        redraw_on_reconnect(self.image_canvas[1], self._draw_overlay)
        self.recon_canvas = new_canvas(5 * (PANEL + 6), PANEL + HEADER, "cnnw-recon")
        self.slices_canvas = new_canvas(10, 10, "cnnw-slices")
        redraw_on_reconnect(self.recon_canvas, self._draw_recon)
        self.best_canvas = new_canvas(10, 10, "cnnw-best-canvas")
        redraw_on_reconnect(self.slices_canvas, self._draw_slices)
        redraw_on_reconnect(self.best_canvas, self._draw_best)

        xs, ys = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
        self.bars = bq.Bars(x=[], y=[], scales={"x": xs, "y": ys}, colors=["#4a7ab7"],
                            labels=["this image"], display_legend=True)
        self.means = bq.Scatter(x=[], y=[], scales={"x": xs, "y": ys}, colors=["#d04020"],
                                marker="diamond", default_size=40, labels=["dataset mean"],
                                display_legend=True)
        self.chart = bq.Figure(marks=[self.bars, self.means],
                               axes=[bq.Axis(scale=xs, tick_rotate=-45,
                                             tick_style={"font-size": "9px", "text-anchor": "end"}),
                                     bq.Axis(scale=ys, side="left",
                                             label="active features (fraction)")],
                               title="active features per layer",
                               layout=W.Layout(width="640px", height="320px"),
                               fig_margin={"top": 40, "bottom": 95, "left": 60, "right": 10})
        self.chart.add_class("cnnw-active-chart")

        left = W.VBox([self.image_canvas, self.hover_text],
                      layout=W.Layout(flex="0 0 auto", margin="0 12px 0 0"))
        right = W.VBox([self.recon_canvas, self.info, W.HTML("<b>activation slices</b> "
                        "(strongest channels of the layer)"), self.slices_canvas,
                        self.best_text, self.best_canvas])
        self.children = [W.HBox([self.layer_box, self.index_box, self.channel_box,
                                 self.best_button]),
                         self.status_bar, self.error, W.HBox([left, right]), self.chart]

    def _sync_controls(self):
        self._syncing = True
        try:
            self.layer_box.value = self.layer
            if self.index >= 0:
                self.index_box.value = self.index
            self.channel_box.max = self.engine.layer(self.shown_layer).output_shape[0] - 1
            self.channel_box.value = self.channel
        finally:
            self._syncing = False

    # -- computing (worker thread, except the first picture) -----------------------------------
    def _compute_view(self, layer, x, control=NO_CONTROL):
        """The layer's activations, the image's activity per layer, and the reconstructions of
        the layer's strongest unit."""
        slices = activation_slices(self.engine, x, layer, N_SLICES)
        stats = self.engine.activation_stats(x, control=control)
        c, y, xx = slices.strongest_position()
        recon = self.engine.reconstruct(x, (layer, c, y, xx), method="all", control=control)
        return layer, slices, stats, recon

    def _compute_dataset_stats(self, control):
        images = self.engine.dataset.images[:DATASET_IMAGES]
        return self.engine.activation_stats(images, control=control)

    def _on_request(self, _change=None):
        self._sync_controls()
        layer, x = self.layer, self.x
        self.run_job("view", lambda control: self._compute_view(layer, x, control),
                     self._show_view, label="activations and reconstructions")

    def select(self, y: int, x: int, channel: int | None = None):
        """Select the unit at position (y, x) of the layer (default: its strongest channel)
        and compute its four reconstructions on the worker."""
        if self.view is None:
            return
        layer, slices = self.view[0], self.view[1]
        if channel is None:
            channel = slices.strongest_channel(y, x)
        self.position, self.channel = (int(y), int(x)), int(channel)
        self._sync_controls()
        self._draw_overlay()
        img, unit = self.x, (layer, self.channel, int(y), int(x))
        self.run_job("recon", lambda control: self.engine.reconstruct(
            img, unit, method="all", control=control), self._show_recon, label="reconstructions")

    def search_best_input(self):
        """Long job: the image that maximises the selected unit, from three random starts
        (eq. 10), with the maximiser engine; progress and Stop in the status bar."""
        from ..engine.visualization import objectives
        if self.recon is None:
            return
        layer, unit = self.recon.layer, tuple(self.recon.unit)
        objective = objectives.unit(layer, unit)
        steps = self.best_steps
        self.run_job("best", lambda control: (layer, unit, self.engine.maximize(
            objective, steps=steps, n_starts=BEST_STARTS, seed=0, control=control)),
            self._show_best, label="best input")

    def _on_channel_box(self, change):
        if not self._syncing and self.position is not None:
            self.select(*self.position, channel=change["new"])

    # -- showing -------------------------------------------------------------------------------
    def _show_view(self, value):
        layer, slices, stats, recon = value
        self.view = value
        self.position, self.channel = tuple(recon.unit[1:]), int(recon.unit[0])
        self._sync_controls()
        self._draw_image()
        self._draw_slices()
        self.bars.x, self.bars.y = list(stats.layers), stats.fraction[0].tolist()
        self._show_dataset_stats(self.dataset_stats)
        self._show_recon(recon)

    def _show_dataset_stats(self, stats):
        self.dataset_stats = stats
        if stats is not None:
            self.means.x, self.means.y = list(stats.layers), stats.mean.tolist()

    def _show_recon(self, recon):
        self.recon = recon
        self._draw_overlay()
        self._draw_recon()
        f = recon.field
        flag = "exact" if recon.exact else "Jacobian only"
        self.info.value = (
            f"<b>unit</b> {html.escape(recon.layer)} channel {recon.unit[0]} at "
            f"(y={recon.unit[1]}, x={recon.unit[2]}): activation <b>{recon.activation:.4g}</b><br>"
            f"receptive field: rows {f.top}–{f.bottom - 1}, columns {f.left}–{f.right - 1} "
            f"({f.height}×{f.width} px); filter: "
            f"<span title='{html.escape(recon.reason)}'>{flag}</span>")

    def _show_best(self, value):
        self.best = value
        _, _, res = value
        self.best_text.value = (
            f"<b>best input</b> for {html.escape(res.objective)}: {res.trace.shape[0]} steps "
            f"from {BEST_STARTS} random starts, value "
            + ", ".join(f"{a:.3g} → {b:.3g}" for a, b in zip(res.trace[0], res.values))
            + " (what each run added to its start, in the field)")
        self._draw_best()

    def _draw_best(self):
        if self.best is None:
            return
        layer, (c, y, x), res = self.best
        f = field_map(self.engine, layer)
        rows, cols = slice(int(f.top[y]), int(f.bottom[y])), slice(int(f.left[x]), int(f.right[x]))
        panels = [fit(draw.signed((img - start)[:, rows, cols]), PANEL)
                  for img, start in zip(res.images, res.start)]
        sheet, _ = draw.tile([panels], (PANEL, PANEL), (0, 6))
        with drawing():
            paint_sheet(self.best_canvas, sheet)
        self.best_rgba = sheet

    def _grid(self):
        """(rows, cols) of the layer's positions and the canvas px of one grid cell."""
        gh, gw = self.engine.layer(self.shown_layer).output_shape[1:]
        c, h, w = self.engine.input_shape
        return gh, gw, h * self.k / gh, w * self.k / gw

    def _draw_image(self):
        img = draw.upscale(draw.image(self.x), self.k)
        self.image_rgba = img
        gh, gw, ch, cw = self._grid()
        with drawing():
            layer0 = self.image_canvas[0]
            layer0.clear()
            put_rgba(layer0, img)
            if ch >= 4:                          # a grid finer than 4 px would hide the image
                layer0.stroke_style, layer0.line_width = "rgba(255,255,255,0.45)", 1
                for i in range(1, gh):
                    layer0.stroke_line(0, float(i * ch), int(img.shape[1]), float(i * ch))
                for j in range(1, gw):
                    layer0.stroke_line(float(j * cw), 0, float(j * cw), int(img.shape[0]))

    def _box(self, canvas, pos, colour, line, dash=()):
        fm = field_map(self.engine, self.shown_layer)
        y, x = pos
        k = self.k
        top, left = int(fm.top[y]) * k, int(fm.left[x]) * k
        height, width = int(fm.bottom[y] - fm.top[y]) * k, int(fm.right[x] - fm.left[x]) * k
        canvas.stroke_style, canvas.line_width = colour, line
        canvas.set_line_dash(list(dash))
        canvas.stroke_rect(left, top, width, height)
        gh, gw, ch, cw = self._grid()
        canvas.set_line_dash([])
        canvas.fill_style = colour
        canvas.global_alpha = 0.35
        canvas.fill_rect(float(x * cw), float(y * ch), float(cw), float(ch))
        canvas.global_alpha = 1.0

    def _draw_overlay(self):
        top = self.image_canvas[1]
        with drawing():
            top.clear()
            if self.position is not None:
                self._box(top, self.position, "#e02020", 2)
            if self.hover is not None:
                self._box(top, self.hover, "#20c0ff", 1.5, (5, 3))

    def _draw_recon(self):
        r = self.recon
        if r is None:
            return
        rows, cols = r.field.slices
        panels = [fit(draw.image(r.x[:, rows, cols]), PANEL)]
        panels += [fit(draw.signed(r.crop(m)), PANEL) for m in METHODS]
        sheet, corners = draw.tile([panels], (PANEL, PANEL), (0, 6), origin=(HEADER, 0))
        self.recon_rgba = sheet
        with drawing():
            paint_sheet(self.recon_canvas, sheet, resize=False)
            for (_t, left), title in zip(corners[0], ["input (field)"] + [TITLES[m] for m in METHODS]):
                self.recon_canvas.fill_text(title, left + 2, HEADER - 4)

    def _draw_slices(self):
        if self.view is None:
            return
        s = self.view[1]
        k = max(1, SLICE_PX // max(s.maps.shape[1:]))
        # each slice on its own scale (black = 0): one hot pixel must not blank the others
        cells = [[draw.upscale(draw.gray(m, 0.0, float(m.max()) or 1.0), k) for m in s.maps]]
        cell = cells[0][0].shape[:2]
        sheet, corners = draw.tile(cells, cell, (0, 4), origin=(HEADER, 0))
        self.slices_rgba = sheet
        with drawing():
            cv = self.slices_canvas
            paint_sheet(cv, sheet)
            for (_t, left), ch in zip(corners[0], s.channels):
                cv.fill_text(f"c{int(ch)}", left + 2, HEADER - 4)

    # -- events --------------------------------------------------------------------------------
    def position_at(self, px: float, py: float) -> tuple[int, int] | None:
        """The layer position under canvas point (px, py), or None outside the image."""
        gh, gw, ch, cw = self._grid()
        y, x = int(py // ch), int(px // cw)
        return (y, x) if 0 <= y < gh and 0 <= x < gw and px >= 0 and py >= 0 else None

    def _click(self, px, py):
        pos = self.position_at(px, py)
        if pos is not None:
            self.select(*pos)

    def _move(self, px, py):
        self._set_hover(self.position_at(px, py))

    def _set_hover(self, pos):
        if pos == self.hover:
            return
        self.hover = pos
        if pos is None:
            self.hover_text.value = ""
        else:
            f = field_map(self.engine, self.shown_layer)
            y, x = pos
            self.hover_text.value = (f"({y}, {x}): field rows {f.top[y]}–{f.bottom[y] - 1}, "
                                     f"columns {f.left[x]}–{f.right[x] - 1}")
        self._draw_overlay()
