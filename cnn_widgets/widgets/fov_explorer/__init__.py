"""FOVExplorer: the probing paper's field of view, live.

The input image with the grid of the chosen layer's positions over it, shown at once. Hover a
position to see its receptive field (geometry only, nothing computed); click it to select the
unit there (the strongest channel by default, or the one in the channel picker) and get the
paper's four backward reconstructions side by side, cropped to the field: deconvnet, deconvnet
with the forward masks, masks with random weights, and the exact local filter. Below: the
layer's strongest activation slices and a bar chart of the fraction of active features per
layer (this image, and the dataset's mean, which fills in as its images are done). "Best
input" runs the paper's Sec. 4 search for the selected unit: plain gradient ascent (SGD) on
the image from three random starts, a long job with progress, live pictures and Stop; it
shows what each run added to its start, cropped to the field.

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): this module holds the state (the
validated traits ``layer``, ``row``, ``unit``, ``best_steps``), the one observer
``_on_state``, the requests and what a result does; ``controls.py`` builds the controls,
``paint.py`` turns results into RGBA sheets, ``geometry.py`` is the layout math.
"""
from __future__ import annotations

import html
import warnings

import numpy as np
import traitlets as T

from ...engine import Engine, InvalidArgument
from .._base import JobWidget
from ..validate import MAX_STEPS, InvalidTrait, Whole, in_range, refused, whole
from .controls import build
from .geometry import HEADER, PANEL, BestInput, PositionGrid, image_scale
from .paint import TITLES, best_sheet, image_sheet, recon_sheet, slices_sheet

__all__ = ["FOVExplorer", "BestInput", "HEADER", "PANEL", "TITLES"]

N_SLICES = 8
DATASET_IMAGES = 64  # images the dataset's mean activity is taken over
BEST_STARTS = 3      # random starts of the best-input search (the paper's Fig. 5)
# the paper's Sec. 4 search is plain gradient ascent; lr 0.01 moves the digits VGG's units
# from about 3 to about 100 in 100 steps (notebook 03, Fig. 5)
BEST_OPTIMIZER, BEST_LR = "sgd", 0.01
BEST_LABEL = (f"the paper's Sec. 4 search: plain gradient ascent ({BEST_OPTIMIZER.upper()}, "
              f"lr {BEST_LR}) on the image from {BEST_STARTS} random starts")


class FOVExplorer(JobWidget):
    """Receptive fields and backward reconstructions of one image's units.

    engine: the engine; image: a dataset row (int, default 0) or an image (C, H, W);
    layer: the layer whose units are probed (default: ``engine.default_layer_for("probing")``);
    best_steps: gradient-ascent steps of the best-input search. The image and the grid show at
    once; the pictures are computed on the engine's worker: ``wait()`` for them in a script.
    """

    layer = T.Unicode()
    row = Whole(0)                  # dataset row shown (-1: an image given by the caller)
    unit = T.Tuple(allow_none=True, default_value=None)   # (channel, y, x) selected
    best_steps = Whole(128)         # gradient-ascent steps of the best-input search
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"slices": ("layer", "row"), "stats": ("row",),
                "recon": ("layer", "row", "unit"), "best": ("layer", "unit", "best_steps"),
                "dataset": ()}

    def __init__(self, engine: Engine, image=None, layer: str | None = None, best_steps: int = 128):
        super().__init__(engine)
        self._ready = False
        self.add_class("cnnw-fov")
        self.best_steps = best_steps
        self.custom: np.ndarray | None = None
        if image is not None and not isinstance(image, (int, np.integer)):
            self.custom = engine.prepare(image)[0].cpu().numpy()
        elif engine.dataset is None:
            raise InvalidArgument("FOVExplorer needs an image: pass image=(C, H, W) array (the "
                                  "engine has no dataset)")
        self.k = image_scale(engine.input_shape[1:])
        self.fields = None                  # the layer's FieldMap (geometry, no model run)
        self.slices = self.recon = self.stats = self.dataset_stats = None
        self.best: BestInput | None = None
        self.hover: tuple[int, int] | None = None
        self.layer = engine.default_layer_for("probing", layer)
        self.row = -1 if self.custom is not None else int(image or 0)
        h, w = engine.input_shape[1:]
        self.controls = c = build(engine, self.grid_layers, self._channels(),
                                  (w * self.k, h * self.k), N_SLICES, BEST_LABEL,
                                  self.status_bar, self.error)
        self.children = c.children
        self.link("layer", c.layer_box)
        self.link("row", c.row_box, show=lambda row: max(row, 0))
        self.link("unit", c.channel_box, show=lambda unit: 0 if unit is None else unit[0],
                  take=self._with_channel)
        c.best_button.on_click(lambda _b: self.search_best_input())
        c.image_canvas.on_mouse_down(self._click)
        c.image_canvas.on_mouse_move(self._move)
        c.image_canvas.on_mouse_out(lambda x, y: self._set_hover(None))
        self._ready = True
        self._request_view(stats=True)
        if engine.dataset is not None:
            self._request_dataset()

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
        with refused():
            self.engine.field_map(proposal["value"])      # geometry: refused if it has none
        return proposal["value"]

    @T.validate("row")
    def _valid_row(self, proposal):
        i, n = proposal["value"], len(self.engine.dataset) if self.engine.dataset else 0
        if (i == -1 and self.custom is not None) or 0 <= i < n:
            return i
        rows = f"0..{n - 1}" if n else "none"
        own = ", or -1 for the image given" if self.custom is not None else ""
        raise InvalidTrait(f"row={i} out of range: the engine's dataset has {n} images "
                           f"({rows}){own}")

    @T.validate("best_steps")
    def _valid_best_steps(self, proposal):
        return in_range("best_steps", proposal["value"], 1, MAX_STEPS)

    @T.validate("unit")
    def _valid_unit(self, proposal):
        u = proposal["value"]
        if u is None:
            return u
        c, gh, gw = self.engine.layer(self.layer).output_shape
        if len(u) != 3:
            raise InvalidTrait(f"unit must be (channel, y, x); got {u!r}")
        u = tuple(whole("unit", v) for v in u)
        if not (0 <= u[0] < c and 0 <= u[1] < gh and 0 <= u[2] < gw):
            raise InvalidTrait(f"unit={proposal['value']} out of range for layer "
                               f"{self.layer!r}: expected (channel, y, x) with "
                               f"0 <= channel < {c}, 0 <= y < {gh}, 0 <= x < {gw}")
        return u

    @T.observe("layer", "row", "unit")
    def _on_state(self, change):
        if not self._ready:
            return
        if change["name"] != "unit":
            self._request_view(stats=change["name"] == "row")
            return
        self._draw_image()                   # the selected field at once
        if self.unit is not None:
            self._request_recon()

    @property
    def index(self) -> int:
        """Deprecated alias of :attr:`row` (the dataset row shown); goes in the next release."""
        warnings.warn(_INDEX_DEPRECATED, DeprecationWarning, stacklevel=2)
        return self.row

    @index.setter
    def index(self, value) -> None:
        warnings.warn(_INDEX_DEPRECATED, DeprecationWarning, stacklevel=2)
        self.row = value

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
        if self.row < 0:
            assert self.custom is not None      # row -1 means the image given
            return self.custom
        return self.engine.dataset.images[self.row].numpy()

    def _channels(self) -> int:
        return self.engine.layer(self.layer).output_shape[0]

    def _with_channel(self, channel) -> tuple[int, int, int]:
        """The channel picker: the selected position's unit in ``channel``."""
        if self.unit is None:
            raise InvalidTrait("no position selected yet: click one on the image first")
        return (channel, *self.unit[1:])

    # -- requests: every engine call runs on the worker ---------------------------------------
    def _request_view(self, stats: bool):
        """A new layer or image: the image and the grid at once (and the layer's receptive
        fields, geometry only); its activation slices, then the reconstructions of its
        strongest unit, on the worker; with ``stats``, this image's active features too."""
        engine, layer, x, c = self.engine, self.layer, self.x, self.controls
        with self.runner.lock:       # nothing of the last request lands between here and submit
            self.fields = engine.field_map(layer)
            self.slices = self.recon = self.hover = None
            c.info.value = c.hover_text.value = ""
            self.unit = None        # type: ignore[assignment]  # allow_none (traitlets' types miss it)
            c.channel_box.max = self._channels() - 1
            self._draw_image()
            self.paint(c.recon_canvas, "computing the reconstructions of the strongest unit…")
            self.paint(c.slices_canvas, "computing the activations…")
            self.run_job("slices", lambda control: _checked(
                             engine.activation_slices(x, layer, N_SLICES), control),
                         self._show_slices, label="activations")
            if stats:
                self.stats = None
                self.run_job("stats", lambda control: engine.activation_stats(x, control=control),
                             self._show_stats, label="active features")

    def _request_recon(self):
        img, unit, engine = self.x, (self.layer, *self.unit), self.engine
        self.run_job("recon", lambda control: engine.reconstruct(img, unit, method="all",
                                                                 control=control),
                     self._show_recon, label="reconstructions", lane="interactive")

    def _request_dataset(self):
        """The dataset's mean activity, shown as its images are done."""
        engine, images = self.engine, self.engine.dataset.images[:DATASET_IMAGES]
        self.run_job("dataset", lambda control: engine.activation_stats(images, control=control),
                     self._show_dataset_stats, label="dataset activity",
                     on_partial=self._show_dataset_stats)

    def select(self, y: int, x: int, channel: int | None = None):
        """Select the unit at position (y, x) of the layer (default: its strongest channel,
        known once the layer's activations are) and compute its four reconstructions on the
        worker."""
        if channel is None:
            if self.slices is None:
                return
            channel = self.slices.strongest_channel(y, x)
        self.unit = (int(channel), int(y), int(x))

    def search_best_input(self):
        """Long job: the images that maximise the selected unit, from three random starts
        (eq. 10), by plain gradient ascent (:data:`BEST_OPTIMIZER`, :data:`BEST_LR`);
        progress, live pictures and Stop. The model is given back between the steps, so
        clicks get in meanwhile."""
        if self.unit is None:
            self.show_error("no unit selected: click a position on the image first")
            return
        layer, unit, steps, engine = self.layer, self.unit, self.best_steps, self.engine
        field = engine.receptive_field(layer, *unit[1:])
        start = engine.start_images("noise", BEST_STARTS, seed=0)

        def record(r, step: int) -> BestInput:
            """A MaximizeStep (live) or the MaximizeResult (``step`` = steps) as shown."""
            return BestInput(layer, unit, r.images, start, r.values, r.trace, field, step,
                             steps, BEST_OPTIMIZER, BEST_LR)
        self.run_job("best", lambda control: record(engine.maximize(
                         (layer, unit), steps=steps, start=start, lr=BEST_LR,
                         optimizer=BEST_OPTIMIZER, predict=False, control=control), steps),
                     self._show_best, label="best input",
                     on_partial=lambda s: self._show_best(record(s, s.step)))

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the pictures are done: the reconstructions that the activations ask
        for (a job their result starts) too."""
        return super().wait(timeout) and super().wait(timeout)

    # -- showing (worker thread, under the runner's lock; no engine calls) --------------------
    def _show_slices(self, slices):
        self.slices = slices
        self.paint(self.controls.slices_canvas, slices_sheet(slices))
        if self.unit is None:                        # none chosen meanwhile: the strongest
            self.unit = slices.strongest_position()  # observed: its reconstructions are asked

    def _show_stats(self, stats):
        self.stats = stats
        bars = self.controls.bars
        with bars.hold_sync():           # x and y in one message: bqplot needs both
            bars.x, bars.y = list(stats.layers), stats.fraction[0].tolist()
            bars.visible = True

    def _show_dataset_stats(self, stats):
        """The dataset's mean so far (a partial) or over all its images (the result)."""
        self.dataset_stats = stats
        means = self.controls.means
        with means.hold_sync():
            means.x, means.y = list(stats.layers), stats.mean.tolist()
            means.labels = ["dataset mean" + (" (index)" if stats.source != "scan" else "")]
            means.visible = True

    def _show_recon(self, recon):
        self.recon = recon
        self.paint(self.controls.recon_canvas, recon_sheet(recon))
        f = recon.field
        flag = "exact" if recon.exact else "Jacobian only"
        self.controls.info.value = (
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
        self.controls.best_text.value = (
            f"<b>best input</b> for {html.escape(best.layer)} channel {c} at (y={y}, x={x}): "
            f"{best.step} of {best.total} steps of plain gradient ascent "
            f"({best.optimizer.upper()}, lr {best.lr:g}) from {BEST_STARTS} random starts, "
            f"value {runs} (what each run added to its start, in the field)")
        self.paint(self.controls.best_canvas, best_sheet(best))

    def _grid(self) -> PositionGrid:
        """The positions of the layer over the image canvas."""
        gh, gw = self.engine.layer(self.layer).output_shape[1:]
        h, w = self.engine.input_shape[1:]
        return PositionGrid(gh, gw, (h * self.k, w * self.k))

    def _draw_image(self):
        with self.runner.lock:           # the kernel's hover and the worker's results alike
            self.paint(self.controls.image_canvas, image_sheet(
                self.x, self.k, self._grid(), self.fields, self.position, self.hover))

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
        if pos == self.hover:
            return
        self.hover = pos
        if pos is None:
            self.controls.hover_text.value = ""
        else:
            f, (y, x) = self.fields, pos
            self.controls.hover_text.value = (f"({y}, {x}): field rows {f.top[y]}–{f.bottom[y] - 1}, "
                                              f"columns {f.left[x]}–{f.right[x] - 1}")
        self._draw_image()


def _checked(result, control):
    """``result``, unless Stop was pressed meanwhile: a stopped job starts nothing after it
    (the slices would ask for the reconstructions)."""
    control.check()
    return result


_INDEX_DEPRECATED = ("FOVExplorer.index is deprecated and goes in the next release: use "
                     "FOVExplorer.row (the dataset row shown)")
