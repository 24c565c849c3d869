"""MaximizerPanel: activation maximisation live (visualization paper, Sec. 2).

Build an objective from terms (class logit or probability, layer mean, channel, unit, each
weighted), switch and weigh the regularisers, pick a start, press Run: the image updates on
the canvas while the objective curve and the class probabilities (bqplot) follow. Grad-CAM can
be laid over the image; "Top-k + histogram" scans the dataset for the objective; the fooling
mode raises another class's logit on dataset images and shows start, end, the difference
heatmap and both Grad-CAMs.
"""
from __future__ import annotations

import html
import time

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine.visualization import objectives as O
from ..engine.visualization.maximize import softmax, start_images
from ..engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from ..engine.visualization.scan import histogram_from_values, objective_values, top_from_values
from . import draw
from ._base import JobWidget, drawing, new_canvas, paint_sheet, redraw_on_reconnect
from .units import parse_indices

DRAW_INTERVAL_S = 0.1      # live redraws at most ~10 per second ...
DRAW_BUDGET = 25           # ... and at most 1/25 of the time (slow models: an extra forward)
GAP = 6
CAPTION = 16
TOP_COLUMNS = 5
FOOL_LR = 0.01             # plain SGD with a small step: the picture barely changes (Sec. 2.1)
KINDS = ("logit", "probability", "channel", "unit", "layer mean")


def heat_overlay(img: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Blend an RGBA image with red where ``heat`` (H, W) in [0, 1] is high."""
    a = np.clip(heat, 0, 1)[..., None] * strength
    rgb = img[..., :3].astype(np.float64) * (1 - a) + np.array([230.0, 30.0, 30.0]) * a
    return draw.rgba(rgb)


def _scale(hw, size: int) -> int:
    return max(1, size // max(hw))


def shown(img: np.ndarray) -> np.ndarray:
    """RGBA of an input image (C, H, W): as it is when it lies in [0, 1], else stretched from
    its own min..max (optimised images leave the data range)."""
    lo, hi = float(img.min()), float(img.max())
    if lo >= 0.0 and hi <= 1.0:
        return draw.image(img)
    return draw.image((img - lo) / max(hi - lo, 1e-12))


class MaximizerPanel(JobWidget):
    """Activation maximisation, dataset scans and pixel fooling for an engine.

    objective: the objective to start with (default: the logit of class 0); steps, lr,
    optimizer, start ("noise" or "dataset"), n_starts: the ascent's settings; top_k: how many
    dataset images the scan shows.
    """

    mode = T.Unicode("maximize")      # "maximize" | "fool"

    def __init__(self, engine, *, objective=None, steps: int = 200, lr: float = 0.05,
                 optimizer: str = "adam", start: str = "noise", n_starts: int = 1,
                 top_k: int = 9):
        super().__init__(engine)
        self.add_class("cnnw-maximizer")
        self.k = _scale(engine.input_shape[1:], 168)          # the optimised images
        self.k_small = _scale(engine.input_shape[1:], 84)     # top-k and fooling cells
        self.objective = O.as_objective(objective if objective is not None else O.logit(0))
        self.objective.bind(engine)
        self.top_k = int(top_k)
        self.last_step = None           # the latest MaximizeStep drawn
        self.cam = None                 # GradCam of the images shown (overlay)
        self.top = self.histogram = self.fooling = None
        self.image_rgba = self.top_rgba = self.fool_rgba = None
        self._build_controls(steps, lr, optimizer, start, n_starts)
        self._build_views()
        self._show_objective()
        self._show_start()
        self.children = [
            self.mode_buttons,
            W.HBox([self.kind_box, self.class_box, self.layer_box, self.index_box, self.weight_box,
                    self.set_button, self.add_button]),
            self.objective_label,
            W.HBox([self.alpha_on, self.alpha_weight, self.alpha_exp]),
            W.HBox([self.tv_on, self.tv_weight, self.tv_beta]),
            W.HBox([self.trick_on, self.jitter_on, self.cam_on]),
            W.HBox([self.start_box, self.index_start, self.n_starts_box, self.steps_box,
                    self.lr_box, self.optimizer_box]),
            self.fool_row,
            W.HBox([self.run_button, self.scan_button]),
            self.status_bar, self.error,
            W.HBox([self.image_canvas, self.curve_fig, self.prob_fig]),
            self.fool_canvas,
            W.HBox([self.top_canvas, self.hist_fig]),
        ]
        self._mode_lr = {"maximize": float(lr), "fool": FOOL_LR}
        self.observe(self._on_mode, names="mode")
        self._on_mode()
        self._kind_changed()

    # -- controls ------------------------------------------------------------------------------
    def _build_controls(self, steps, lr, optimizer, start, n_starts):
        e = self.engine
        small = W.Layout(width="150px")
        self.mode_buttons = W.ToggleButtons(options=[("maximize", "maximize"), ("fool", "fool")],
                                            value="maximize")
        W.link((self.mode_buttons, "value"), (self, "mode"))
        self.kind_box = W.Dropdown(options=KINDS, value="logit", description="term",
                                   layout=W.Layout(width="200px"))
        self.layer_box = W.Dropdown(options=e.layer_names, value=e.default_layer,
                                    description="layer", layout=W.Layout(width="200px"))
        self.class_box = W.Dropdown(options=[(f"{i}: {c}", i) for i, c in enumerate(e.class_names)],
                                    value=0, description="class", layout=W.Layout(width="220px"))
        self.index_box = W.Text(value="0", description="index", placeholder="3  or  c:y:x",
                                layout=W.Layout(width="170px"))
        self.weight_box = W.FloatText(value=1.0, description="weight", layout=small)
        self.set_button = W.Button(description="Set", layout=W.Layout(width="60px"))
        self.add_button = W.Button(description="Add", layout=W.Layout(width="60px"))
        self.objective_label = W.HTML()
        self.alpha_on = W.Checkbox(value=False, description="α-norm", indent=False,
                                   layout=W.Layout(width="90px"))
        self.alpha_weight = W.FloatLogSlider(value=1e-3, base=10, min=-6, max=1,
                                             description="λ", readout_format=".0e")
        self.alpha_exp = W.FloatSlider(value=6.0, min=1.0, max=10.0, step=0.5, description="α")
        self.tv_on = W.Checkbox(value=False, description="TV", indent=False,
                                layout=W.Layout(width="90px"))
        self.tv_weight = W.FloatLogSlider(value=1e-2, base=10, min=-6, max=1, description="λ",
                                          readout_format=".0e")
        self.tv_beta = W.FloatSlider(value=2.0, min=0.5, max=3.0, step=0.25, description="β")
        self.trick_on = W.Checkbox(value=False, description="blur/shift/rotate the gradient",
                                   indent=False, layout=W.Layout(width="240px"))
        self.jitter_on = W.Checkbox(value=False, description="jitter the input", indent=False,
                                    layout=W.Layout(width="150px"))
        self.cam_on = W.Checkbox(value=False, description="Grad-CAM overlay", indent=False)
        self.start_box = W.Dropdown(options=["noise", "dataset"],
                                    value=start if e.dataset is not None else "noise",
                                    description="start", layout=W.Layout(width="170px"))
        n = len(e.dataset) if e.dataset is not None else 1
        self.index_start = W.BoundedIntText(value=0, min=0, max=n - 1, description="image",
                                            layout=small)
        self.n_starts_box = W.BoundedIntText(value=n_starts, min=1, max=8, description="starts",
                                             layout=small)
        self.steps_box = W.BoundedIntText(value=steps, min=1, max=100000, description="steps",
                                          layout=small)
        self.lr_box = W.FloatText(value=lr, description="lr", layout=small)
        self.optimizer_box = W.Dropdown(options=["adam", "sgd"], value=optimizer,
                                        description="optimizer", layout=W.Layout(width="170px"))
        self.fool_target = W.Dropdown(options=[(f"{i}: {c}", i) for i, c in
                                               enumerate(e.class_names)],
                                      value=e.n_classes - 1, description="raise class")
        self.fool_rows = W.Text(value=self._default_fool_rows(), description="images",
                                placeholder="dataset rows, e.g. 0-3")
        self.fool_row = W.HBox([self.fool_target, self.fool_rows])
        self.run_button = W.Button(description="Run", icon="play", button_style="primary",
                                   layout=W.Layout(width="90px"))
        self.scan_button = W.Button(description="Top-k + histogram", icon="search",
                                    layout=W.Layout(width="170px"))
        for w, cls in ((self.mode_buttons, "cnnw-mode"), (self.kind_box, "cnnw-term-kind"),
                       (self.layer_box, "cnnw-term-layer"), (self.index_box, "cnnw-term-index"),
                       (self.class_box, "cnnw-term-class"),
                       (self.weight_box, "cnnw-term-weight"), (self.set_button, "cnnw-set"),
                       (self.add_button, "cnnw-add"), (self.objective_label, "cnnw-objective"),
                       (self.run_button, "cnnw-run"), (self.scan_button, "cnnw-scan"),
                       (self.cam_on, "cnnw-cam"), (self.start_box, "cnnw-start")):
            w.add_class(cls)
        self.set_button.on_click(lambda _b: self._term_clicked(add=False))
        self.add_button.on_click(lambda _b: self._term_clicked(add=True))
        self.run_button.on_click(lambda _b: self.run())
        self.scan_button.on_click(lambda _b: self.scan())
        if e.dataset is None:           # scans, dataset starts and fooling need images
            self.scan_button.disabled = True
            self.start_box.options = ["noise"]
            self.mode_buttons.options = [("maximize", "maximize")]
        self.cam_on.observe(lambda _c: self._cam_toggled(), names="value")
        self.kind_box.observe(self._kind_changed, names="value")
        for box in (self.start_box, self.index_start, self.n_starts_box):
            box.observe(lambda _c: self._show_start(), names="value")

    def _default_fool_rows(self) -> str:
        ds = self.engine.dataset
        if ds is None:
            return ""
        rows = np.flatnonzero(ds.labels.numpy() == 0)[:4]
        return ", ".join(str(int(r)) for r in rows)

    def _build_views(self):
        h, w = self.engine.input_shape[1:]
        self.image_canvas = new_canvas(w * self.k, h * self.k + CAPTION, "cnnw-max-image")
        self.top_canvas = new_canvas(10, 10, "cnnw-max-top")
        self.fool_canvas = new_canvas(10, 10, "cnnw-max-fool")
        sx, sy = bq.LinearScale(), bq.LinearScale()
        self.curve = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": sx, "y": sy})
        self.curve_fig = bq.Figure(marks=[self.curve], title="objective",
                                   axes=[bq.Axis(scale=sx, label="step"),
                                         bq.Axis(scale=sy, side="left")],
                                   layout=W.Layout(width="320px", height="220px"),
                                   fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 10})
        bx, by = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
        self.bars = bq.Bars(x=list(self.engine.class_names),
                            y=np.zeros(self.engine.n_classes), scales={"x": bx, "y": by})
        self.prob_fig = bq.Figure(marks=[self.bars], title="class probabilities",
                                  axes=[bq.Axis(scale=bx), bq.Axis(scale=by, side="left")],
                                  layout=W.Layout(width="320px", height="220px"),
                                  fig_margin={"top": 30, "bottom": 35, "left": 40, "right": 10})
        hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
        self.hist_bars = bq.Bars(x=np.zeros(1), y=np.zeros(1), scales={"x": hx, "y": hy})
        self.hist_fig = bq.Figure(marks=[self.hist_bars], title="objective over the dataset",
                                  axes=[bq.Axis(scale=hx, label="value", num_ticks=5),
                                        bq.Axis(scale=hy, side="left")],
                                  layout=W.Layout(width="360px", height="220px"),
                                  fig_margin={"top": 30, "bottom": 35, "left": 50, "right": 10})
        for fig, cls in ((self.curve_fig, "cnnw-curve"), (self.prob_fig, "cnnw-probs"),
                         (self.hist_fig, "cnnw-hist")):
            fig.add_class(cls)
        redraw_on_reconnect(self.image_canvas, self._draw_image)
        redraw_on_reconnect(self.top_canvas, self._draw_top)
        redraw_on_reconnect(self.fool_canvas, self._draw_fool)

    def _on_mode(self, change=None):
        fooling = self.mode == "fool"
        if change is not None:      # each mode keeps its own learning rate (fooling: small)
            self._mode_lr[change["old"]] = self.lr_box.value
            self.lr_box.value = self._mode_lr[change["new"]]
        self.fool_row.layout.display = "" if fooling else "none"
        self.fool_canvas.layout.display = "" if fooling else "none"
        self.run_button.description = "Fool" if fooling else "Run"

    def _kind_changed(self, _change=None):
        """Classes pick from a dropdown; channels and units take an index on a layer."""
        kind = self.kind_box.value
        by_class = kind in ("logit", "probability")
        self.class_box.layout.display = "" if by_class else "none"
        self.layer_box.layout.display = "none" if by_class else ""
        self.index_box.layout.display = "" if kind in ("channel", "unit") else "none"

    # -- the objective -------------------------------------------------------------------------
    def term(self) -> O.Objective:
        """The term the builder row describes (weighted)."""
        kind, layer, text = self.kind_box.value, self.layer_box.value, self.index_box.value.strip()
        if kind == "logit":
            t = O.logit(self.class_box.value)
        elif kind == "probability":
            t = O.probability(self.class_box.value)
        elif kind == "channel":
            t = O.channel(layer, int(text or 0))
        elif kind == "unit":
            t = O.unit(layer, tuple(int(v) for v in text.split(":")) if ":" in text
                       else int(text or 0))
        else:
            t = O.layer_mean(layer)
        return float(self.weight_box.value) * t

    def set_objective(self, objective) -> None:
        objective = O.as_objective(objective)
        objective.bind(self.engine)            # a bad layer or index is refused here
        self.objective = objective
        self._show_objective()

    def _term_clicked(self, add: bool):
        try:
            t = self.term()
            self.set_objective(self.objective + t if add else t)
            self.error.value = ""
        except Exception as exc:   # noqa: BLE001 - shown next to the builder
            self.error.value = (f"<span style='color:#a00'>{html.escape(type(exc).__name__)}: "
                                f"{html.escape(str(exc))}</span>")

    def _show_objective(self):
        text = html.escape(self.objective.description)
        self.objective_label.value = f"<b>objective</b>: <code>{text}</code>"

    def regularizers(self) -> list:
        """The regularisers the switches and sliders describe."""
        return [AlphaNorm(self.alpha_weight.value, self.alpha_exp.value, self.alpha_on.value),
                TotalVariation(self.tv_weight.value, self.tv_beta.value, self.tv_on.value),
                GradientTrick(enabled=self.trick_on.value), Jitter(enabled=self.jitter_on.value)]

    def _start_kw(self) -> dict:
        n = int(self.n_starts_box.value)
        if self.start_box.value == "dataset":
            size = len(self.engine.dataset)
            first = int(self.index_start.value)
            return {"start": "dataset", "indices": [(first + i) % size for i in range(n)]}
        return {"start": "noise", "n_starts": n}

    # -- runs ----------------------------------------------------------------------------------
    def run(self):
        """Maximise the objective (or fool, in fooling mode) on the worker thread."""
        if self.mode == "fool":
            return self.run_fooling()
        objective, regs, start = self.objective, self.regularizers(), self._start_kw()
        settings = dict(steps=int(self.steps_box.value), lr=float(self.lr_box.value),
                        optimizer=self.optimizer_box.value, regularizers=regs, **start)
        cam = self.cam_on.value
        self.curve_fig.title = "objective"     # fooling retitles the curve

        def work(control):
            self.cam = None
            clock = {"next": 0.0}
            step = None
            # ask for a step to draw when the clock says so: in between, the ascent runs as
            # fast as headless (no copies, no class scores)
            wanted = lambda _t: time.monotonic() >= clock["next"]       # noqa: E731
            for step in self.engine.iterate_maximize(objective, control=control, every=wanted,
                                                     predict=False, **settings):
                began = time.monotonic()
                probs = softmax(step.logits if step.logits is not None
                                else self.engine.predict(step.images))
                extra = self.engine.gradcam(step.images) if cam else None
                with self.runner.lock:
                    control.check()      # stopped or superseded: never paint over a newer run
                    self._show_step(step, probs, extra)
                # drawing (with its class scores) takes at most 1/DRAW_BUDGET of the time
                clock["next"] = began + max(DRAW_INTERVAL_S,
                                            DRAW_BUDGET * (time.monotonic() - began))
            return step

        return self.run_job("run", work, lambda _s: None, label="maximize")

    def _show_step(self, step, probs, cam=None):
        self.last_step, self.cam = step, cam
        self._draw_image(probs)
        trace = np.concatenate([step.trace, step.values[None]]) if step.final else step.trace
        self._set_curve(np.arange(len(trace)), trace)

    def _set_curve(self, x: np.ndarray, y: np.ndarray):
        """One line per start; y: (T, N). bqplot squeezes arrays, so keep them >= 2 long."""
        if len(x) < 2:
            x, y = np.zeros(0), np.zeros((0, 1))
        with self.curve.hold_sync():
            self.curve.x = x
            self.curve.y = y[:, 0] if y.shape[1] == 1 else y.T

    def _show_start(self):
        try:
            x = start_images(self.engine, **self._start_kw()).cpu().numpy()
        except Exception:   # noqa: BLE001 - no dataset or an index out of range: keep the picture
            return
        probs = softmax(self.engine.predict(x))
        with self.runner.lock:          # a running ascent draws under the same lock
            self.last_step, self.cam = None, None
            self._start_images = x
            self._draw_image(probs)

    def _images(self) -> np.ndarray:
        return self.last_step.images if self.last_step is not None else self._start_images

    def _draw_image(self, probs: np.ndarray | None = None):
        if probs is not None:
            self._probs = probs
            self.bars.y = probs[0]
        imgs, k = self._images(), self.k
        heats = self.cam.normalized()[:, 0] if self.cam is not None else None
        cells = []
        for i, img in enumerate(imgs):
            cell = draw.upscale(shown(img), k)
            if heats is not None:
                cell = heat_overlay(cell, draw.upscale(heats[i][..., None], k)[..., 0])
            cells.append(cell)
        sheet, corners = draw.tile([cells], cells[0].shape[:2], (CAPTION, GAP))
        self.image_rgba = sheet
        names = self.engine.class_names
        with drawing():
            paint_sheet(self.image_canvas, sheet)
            for (top, left), p in zip(corners[0], self._probs):
                c = int(np.argmax(p))
                self.image_canvas.fill_text(f"{names[c]} {p[c]:.0%}", left,
                                            top + cells[0].shape[0] + 12)

    def _cam_toggled(self):
        if not self.cam_on.value:
            self.cam = None
            self._draw_image()
            return
        images = self._images()
        self.run_job("cam", lambda control: self.engine.gradcam(images, control=control),
                     self._show_cam, label="grad-cam", quiet=True)

    def _show_cam(self, cam):
        self.cam = cam
        self._draw_image()

    # -- dataset scan ----------------------------------------------------------------------------
    def scan(self):
        """Top-k dataset images and the histogram of the objective over the whole dataset."""
        objective = self.objective
        k = min(self.top_k, len(self.engine.dataset)) if self.engine.dataset is not None else 1

        def work(control):
            values = objective_values(self.engine, objective, control=control)
            return (top_from_values(values, self.engine.dataset, k, objective.description),
                    histogram_from_values(values, 40, objective.description))

        return self.run_job("scan", work, self._show_scan, label="scan dataset")

    def _show_scan(self, result):
        self.top, self.histogram = result
        h = self.histogram
        with self.hist_bars.hold_sync():
            self.hist_bars.x = (h.edges[:-1] + h.edges[1:]) / 2
            self.hist_bars.y = h.counts
        self._draw_top()

    def _draw_top(self):
        if self.top is None:
            return
        cells = [draw.upscale(draw.image(img), self.k_small) for img in self.top.images]
        rows = [cells[i:i + TOP_COLUMNS] for i in range(0, len(cells), TOP_COLUMNS)]
        sheet, corners = draw.tile(rows, cells[0].shape[:2], (CAPTION, GAP), (CAPTION, 0))
        self.top_rgba = sheet
        with drawing():
            paint_sheet(self.top_canvas, sheet)
            self.top_canvas.fill_text(f"top {len(cells)} of {len(self.histogram.values)} "
                                      f"for {self.top.objective}", 2, 12)
            flat = [c for row in corners for c in row]
            for (top, left), v, i in zip(flat, self.top.values, self.top.indices):
                self.top_canvas.fill_text(f"#{i}: {v:.3g}", left, top + cells[0].shape[0] + 12)

    # -- fooling ----------------------------------------------------------------------------------
    def run_fooling(self):
        """Raise the chosen class's logit on the chosen dataset images (plain SGD, small lr)."""
        rows = parse_indices(self.fool_rows.value)
        target = int(self.fool_target.value)
        steps, lr = int(self.steps_box.value), float(self.lr_box.value)

        def work(control):
            return self.engine.fool(target, indices=rows, steps=steps, lr=lr,
                                    every=max(1, steps // 50), control=control)

        return self.run_job("fool", work, self._show_fooling, label="fooling")

    def _show_fooling(self, f):
        self.fooling = f
        self._set_curve(f.steps, f.probabilities[:, :, f.classes[1]])
        self.curve_fig.title = f"p({self.engine.class_names[f.classes[1]]}) while fooling"
        self.bars.y = f.probabilities[-1, 0]
        self._draw_fool()

    def _draw_fool(self):
        f = self.fooling
        if f is None:
            return
        k = self.k_small
        dmax = float(f.diff.max()) or 1.0
        rows = []
        for i in range(len(f.start)):
            start, end = (draw.upscale(shown(img[i]), k) for img in (f.start, f.end))
            cams = [heat_overlay(base, draw.upscale(c[..., None], k)[..., 0])
                    for base, cam in ((start, f.cam_start), (end, f.cam_end))
                    for c in _unit_max(cam[i])]
            rows.append([start, end, draw.upscale(draw.gray(f.diff[i], 0, dmax), k), *cams])
        sheet, corners = draw.tile(rows, rows[0][0].shape[:2], (CAPTION, GAP), (CAPTION, 0))
        self.fool_rgba = sheet
        s, t = (self.engine.class_names[c] for c in f.classes)
        titles = ["start", "end", "difference", f"CAM start {s}", f"CAM start {t}",
                  f"CAM end {s}", f"CAM end {t}"]
        with drawing():
            paint_sheet(self.fool_canvas, sheet)
            for (_top, left), title in zip(corners[0], titles):
                self.fool_canvas.fill_text(title, left, 12)
            p0, p1 = f.probabilities[0], f.probabilities[-1]
            for i, row in enumerate(corners):
                top, left = row[1]
                self.fool_canvas.fill_text(
                    f"{s} {p0[i, f.classes[0]]:.0%} → {t} {p1[i, f.classes[1]]:.0%}",
                    row[0][1], top + rows[0][0].shape[0] + 12)


def _unit_max(maps: np.ndarray) -> np.ndarray:
    """(P, H, W) non-negative maps on one shared [0, 1] scale (so the two classes compare)."""
    top = float(maps.max())
    return maps / top if top > 0 else maps
