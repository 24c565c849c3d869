"""FOVExplorer: the probing paper's field of view, live.

The input image with the grid of the chosen layer's positions over it. Hover a position to see
its receptive field (geometry only, nothing computed); click it to select the unit there (the
strongest channel by default, or the one in the channel picker) and get the paper's four
backward reconstructions side by side, cropped to the field: deconvnet, deconvnet with the
forward masks, masks with random weights, and the exact local filter. Below: a bar chart of
the fraction of active features per layer (this image, and the dataset's mean) and the layer's
strongest activation slices. "Best input" runs the paper's Sec. 4 search for the selected unit:
gradient ascent on the image from three random starts (the maximiser engine), a long job with
progress, live pictures and Stop; it shows what each run added to its start, cropped to the
field.

State: the traits ``layer``, ``index``, ``unit`` and ``best_steps`` (validated); one observer
turns a change into a job on the worker (never an engine call on the kernel thread) or a
redraw. A result is shown only while the state it was computed for is still the explorer's.
"""
from __future__ import annotations

import html
import time

import numpy as np
import traitlets as T

from ..engine import Engine, InvalidArgument
from . import draw
from ._base import JobWidget, drawing, paint_sheet, placeholder, put_rgba
from .fov_explorer_controls import build
from .layout.fov_explorer import HEADER, PANEL, BestInput, PositionGrid, View, field_box, image_scale
from .validate import MAX_STEPS, InvalidTrait, Whole, in_range, whole

SLICE_PX = 56        # about this many px per activation slice
N_SLICES = 8
DATASET_IMAGES = 64  # images the dataset's mean activity is taken over
BEST_STARTS = 3      # random starts of the best-input search (the paper's Fig. 5)
BEST_DRAW_INTERVAL_S = 0.25   # live best-input pictures at most this often
# the four methods of engine.reconstruct(method="all"), in the paper's order, and their titles
TITLES = {"deconvnet": "deconvnet (eq. 4-5)", "deconvnet_masks": "with masks (eq. 6-7)",
          "random_masks": "random weights", "filter": "exact filter (eq. 8-9)"}


class FOVExplorer(JobWidget):
    """Receptive fields and backward reconstructions of one image's units.

    engine: the engine; image: a dataset row (int, default 0) or an image (C, H, W);
    layer: the layer whose units are probed (default: ``engine.default_layer_for("probing")``);
    best_steps: gradient-ascent steps of the best-input search. The pictures are computed on
    the engine's worker: ``wait()`` for them in a script.
    """

    layer = T.Unicode()
    index = Whole(0)                # dataset row shown (-1: an image given by the caller)
    unit = T.Tuple(allow_none=True, default_value=None)   # (channel, y, x) selected
    best_steps = Whole(128)         # gradient-ascent steps of the best-input search
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"view": ("layer", "index"), "recon": ("shown_layer", "index", "unit"),
                "best": ("shown_layer", "unit", "best_steps"), "dataset": ()}

    def __init__(self, engine: Engine, image=None, layer: str | None = None, best_steps: int = 128):
        super().__init__(engine)
        self._ready = False
        self.best_steps = best_steps
        self.add_class("cnnw-fov")
        self.k = image_scale(engine.input_shape[1:])
        self.custom: np.ndarray | None = None
        if image is not None and not isinstance(image, (int, np.integer)):
            self.custom = engine.prepare(image)[0].cpu().numpy()
        elif engine.dataset is None:
            raise InvalidArgument("FOVExplorer needs an image: pass image=(C, H, W) array (the "
                                  "engine has no dataset)")
        self.view: View | None = None
        self.recon = self.dataset_stats = None
        self.best: BestInput | None = None
        self.hover: tuple[int, int] | None = None
        self.image_rgba = self.recon_rgba = self.slices_rgba = self.best_rgba = None
        self._syncing = False
        build(self)

        self.layer = engine.default_layer_for("probing", layer)
        self.index = -1 if self.custom is not None else int(image or 0)
        self._ready = True
        self._sync_controls()
        placeholder(self.recon_canvas, "computing activations and reconstructions…")
        self._request_view()
        if engine.dataset is not None:
            images = engine.dataset.images[:DATASET_IMAGES]
            self.run_job("dataset", lambda control: engine.activation_stats(images,
                                                                              control=control),
                         self._show_dataset_stats, label="dataset activity")

    # -- state: validated traits, one observer ----------------------------------------------
    @property
    def grid_layers(self) -> list[str]:
        """The layers with a (C, H, W) output: those with positions to probe."""
        return [i.name for i in self.engine.layers if len(i.output_shape) == 3]

    @T.validate("layer")
    def _valid_layer(self, proposal):
        if proposal["value"] not in self.grid_layers:
            raise InvalidTrait(f"layer {proposal['value']!r} has no (C, H, W) output to probe; "
                               f"expected one of {', '.join(self.grid_layers)}")
        return proposal["value"]

    @T.validate("index")
    def _valid_index(self, proposal):
        i, n = proposal["value"], len(self.engine.dataset) if self.engine.dataset else 0
        if (i == -1 and self.custom is not None) or 0 <= i < n:
            return i
        rows = f"0..{n - 1}" if n else "none"
        own = ", or -1 for the image given" if self.custom is not None else ""
        raise InvalidTrait(f"index={i} out of range: the engine's dataset has {n} images "
                           f"({rows}){own}")

    @T.validate("best_steps")
    def _valid_best_steps(self, proposal):
        return in_range("best_steps", proposal["value"], 1, MAX_STEPS)

    @T.validate("unit")
    def _valid_unit(self, proposal):
        u = proposal["value"]
        if u is None:
            return u
        c, gh, gw = self.engine.layer(self.shown_layer).output_shape
        if len(u) != 3:
            raise InvalidTrait(f"unit must be (channel, y, x); got {u!r}")
        u = tuple(whole("unit", v) for v in u)
        if not (0 <= u[0] < c and 0 <= u[1] < gh and 0 <= u[2] < gw):
            raise InvalidTrait(f"unit={proposal['value']} out of range for layer "
                               f"{self.shown_layer!r}: expected (channel, y, x) with "
                               f"0 <= channel < {c}, 0 <= y < {gh}, 0 <= x < {gw}")
        return u

    @T.observe("layer", "index", "unit")
    def _on_state(self, change):
        if not self._ready:
            return
        if change["name"] != "unit":
            self._sync_controls()
            self._request_view()
        elif self.unit is not None and (self.recon is None or tuple(self.recon.unit) != self.unit
                                        or self.recon.layer != self.shown_layer):
            self._sync_controls()
            self._draw_overlay()
            self._request_recon()

    @property
    def shown_layer(self) -> str:
        """The layer of the picture on screen (``layer`` once its job has finished): grid,
        hover and clicks follow what the user sees."""
        return self.view.layer if self.view is not None else self.layer

    @property
    def position(self) -> tuple[int, int] | None:
        """(y, x) of the selected unit."""
        return None if self.unit is None else tuple(self.unit[1:])

    @property
    def channel(self) -> int:
        """Channel of the selected unit."""
        return 0 if self.unit is None else self.unit[0]

    @property
    def x(self) -> np.ndarray:
        """The image shown, (C, H, W)."""
        if self.index < 0:
            assert self.custom is not None      # index -1 means the image given
            return self.custom
        return self.engine.dataset.images[self.index].numpy()

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

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _request_view(self):
        layer, x, engine = self.layer, self.x, self.engine

        def work(control):
            slices = engine.activation_slices(x, layer, N_SLICES)
            stats = engine.activation_stats(x, control=control)
            c, y, xx = slices.strongest_position()
            recon = engine.reconstruct(x, (layer, c, y, xx), method="all", control=control)
            return View(layer, slices, stats, recon, engine.field_map(layer))
        self.run_job("view", work, self._show_view, label="activations and reconstructions")

    def _request_recon(self):
        img, unit, engine = self.x, (self.shown_layer, *self.unit), self.engine
        self.run_job("recon", lambda control: engine.reconstruct(img, unit, method="all",
                                                                 control=control),
                     self._show_recon, label="reconstructions", lane="interactive")

    def select(self, y: int, x: int, channel: int | None = None):
        """Select the unit at position (y, x) of the layer (default: its strongest channel)
        and compute its four reconstructions on the worker."""
        if self.view is None:
            return
        if channel is None:
            channel = self.view.slices.strongest_channel(y, x)
        self.unit = (int(channel), int(y), int(x))

    def search_best_input(self):
        """Long job: the image that maximises the selected unit, from three random starts
        (eq. 10), with the maximiser engine; progress, live pictures and Stop. The model is
        given back between the pictures, so clicks get in meanwhile."""
        if self.recon is None:
            return
        layer, unit, steps, engine = self.recon.layer, tuple(self.recon.unit), self.best_steps, \
            self.engine

        def work(control):
            fields = engine.field_map(layer)
            due = {"next": 0.0}
            start = best = None
            for s in engine.iterate_maximize((layer, unit), steps=steps, n_starts=BEST_STARTS,
                                             seed=0, predict=False, control=control,
                                             every=lambda t: t == 0 or time.monotonic() >= due["next"]):
                start = s.images if start is None else start      # step 0: the starts
                best = BestInput(layer, unit, s.images, start, s.values, s.trace, fields,
                                 s.step, s.total)
                if s.step < s.total:
                    control.partial(best)
                    due["next"] = time.monotonic() + BEST_DRAW_INTERVAL_S
            return best
        self.run_job("best", work, self._show_best, label="best input",
                     on_partial=self._show_best)

    def _on_channel_box(self, change):
        if not self._syncing and self.position is not None:
            self.select(*self.position, channel=change["new"])

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_view(self, view: View):
        self.view, self.recon = view, None
        with self.bars.hold_sync():           # x and y in one message: bqplot needs both
            self.bars.x, self.bars.y = list(view.stats.layers), view.stats.fraction[0].tolist()
            self.bars.visible = True
        self._show_dataset_stats(self.dataset_stats)
        self._draw_image()
        self._draw_slices()
        self._show_recon(view.recon)

    def _show_dataset_stats(self, stats):
        self.dataset_stats = stats
        if stats is not None:
            with self.means.hold_sync():
                self.means.x, self.means.y = list(stats.layers), stats.mean.tolist()
                self.means.labels = ["dataset mean" + (" (index)" if stats.source != "scan" else "")]
                self.means.visible = True

    def _show_recon(self, recon):
        self.recon = recon
        self.unit = tuple(int(v) for v in recon.unit)        # already shown: no new job
        self._sync_controls()
        self._draw_overlay()
        self._draw_recon()
        f = recon.field
        flag = "exact" if recon.exact else "Jacobian only"
        self.info.value = (
            f"<b>unit</b> {html.escape(recon.layer)} channel {recon.unit[0]} at "
            f"(y={recon.unit[1]}, x={recon.unit[2]}): activation <b>{recon.activation:.4g}</b><br>"
            f"receptive field: rows {f.top}–{f.bottom - 1}, columns {f.left}–{f.right - 1} "
            f"({f.height}×{f.width} px); filter: "
            f"<span title='{html.escape(recon.reason, quote=True)}'>{flag}</span>")

    def _show_best(self, best: BestInput):
        self.best = best
        c, y, x = best.unit
        runs = ", ".join(f"{a:.3g} → {b:.3g}" for a, b in zip(best.trace[0], best.values)) \
            if len(best.trace) else ""
        self.best_text.value = (
            f"<b>best input</b> for {html.escape(best.layer)} channel {c} at (y={y}, x={x}): "
            f"{best.step} of {best.total} steps from {BEST_STARTS} random starts, value {runs} "
            "(what each run added to its start, in the field)")
        self._draw_best()

    def _draw_best(self):
        b = self.best
        if b is None:
            return
        _, y, x = b.unit
        f = b.fields
        rows, cols = slice(int(f.top[y]), int(f.bottom[y])), slice(int(f.left[x]), int(f.right[x]))
        sheet, _ = draw.panel_row([draw.signed((img - start)[:, rows, cols])
                                   for img, start in zip(b.images, b.start)], PANEL)
        with drawing():
            paint_sheet(self.best_canvas, sheet)
        self.best_rgba = sheet

    def _grid(self) -> PositionGrid:
        """The positions of the layer on screen over the image canvas."""
        gh, gw = self.engine.layer(self.shown_layer).output_shape[1:]
        h, w = self.engine.input_shape[1:]
        return PositionGrid(gh, gw, (h * self.k, w * self.k))

    def _draw_image(self):
        img = draw.upscale(draw.image(self.x), self.k)
        self.image_rgba = img
        with drawing():
            layer0 = self.image_canvas[0]
            layer0.clear()
            put_rgba(layer0, img)
            layer0.stroke_style, layer0.line_width = "rgba(255,255,255,0.45)", 1
            for line in self._grid().lines():
                layer0.stroke_line(*line)

    def _box(self, canvas, pos, colour, line, dash=()):
        f, (y, x) = self.view.fields, pos
        canvas.stroke_style, canvas.line_width = colour, line
        canvas.set_line_dash(list(dash))
        canvas.stroke_rect(*field_box(int(f.top[y]), int(f.bottom[y]), int(f.left[x]),
                                      int(f.right[x]), self.k))
        canvas.set_line_dash([])
        canvas.fill_style = colour
        canvas.global_alpha = 0.35
        canvas.fill_rect(*self._grid().cell_box(y, x))
        canvas.global_alpha = 1.0

    def _draw_overlay(self):
        top = self.image_canvas[1]
        with drawing():
            top.clear()
            if self.view is None:
                return
            if self.position is not None:
                self._box(top, self.position, "#e02020", 2)
            if self.hover is not None:
                self._box(top, self.hover, "#20c0ff", 1.5, (5, 3))

    def _draw_recon(self):
        r = self.recon
        if r is None:
            return
        rows, cols = r.field.slices
        methods = [m for m in TITLES if m in r.images]
        sheet, corners = draw.panel_row([draw.image(r.x[:, rows, cols])]
                                        + [draw.signed(r.crop(m)) for m in methods],
                                        PANEL, header=HEADER)
        self.recon_rgba = sheet
        with drawing():
            paint_sheet(self.recon_canvas, sheet, resize=False)
            for (_t, left), title in zip(corners[0], ["input (field)"] + [TITLES[m] for m in methods]):
                self.recon_canvas.fill_text(title, left + 2, HEADER - 4)

    def _draw_slices(self):
        if self.view is None:
            return
        s = self.view.slices
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

    # -- events (kernel thread: geometry only) ------------------------------------------------
    def position_at(self, px: float, py: float) -> tuple[int, int] | None:
        """The layer position under canvas point (px, py), or None outside the image."""
        return self._grid().position_at(px, py)

    def _click(self, px, py):
        pos = self.position_at(px, py)
        if pos is not None:
            self.select(*pos)

    def _move(self, px, py):
        self._set_hover(self.position_at(px, py))

    def _set_hover(self, pos):
        if pos == self.hover or self.view is None:
            return
        self.hover = pos
        if pos is None:
            self.hover_text.value = ""
        else:
            f, (y, x) = self.view.fields, pos
            self.hover_text.value = (f"({y}, {x}): field rows {f.top[y]}–{f.bottom[y] - 1}, "
                                     f"columns {f.left[x]}–{f.right[x] - 1}")
        self._draw_overlay()
