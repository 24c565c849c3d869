"""MaximizerPanel: activation maximisation live (visualization paper, Sec. 2).

Build an objective from terms (class logit or probability, layer mean, channel, unit, each
weighted), switch and weigh the regularisers, pick a start, press Run: the image updates on
the canvas while the objective curve and the class probabilities (bqplot) follow. Grad-CAM can
be laid over the image; "Top-k + histogram" scans the dataset for the objective; the fooling
mode raises another class's logit on dataset images and shows start, end, the difference
heatmap and both Grad-CAMs.

State: the inputs are traits (each linked to its control, validated to what the control can
show); :meth:`_changed` derives what is shown. Every engine call runs as a job on the engine's
worker, never on the kernel thread; its result is shown only while the settings it was asked
with are still the panel's (a run whose settings change is stopped, and the status says why).
"""
from __future__ import annotations

import html
import time
from dataclasses import replace

import ipywidgets as W
import numpy as np
import traitlets as T

from ..engine import Engine, InvalidArgument
from ..engine.visualization import objectives as O
from ..engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from ._base import JobWidget, placeholder, redraw_on_reconnect
from .layout.maximizer_panel import Picture, Scan, curve, softmax, start_rows, zoom
from .maximizer_controls import MAX_STARTS, RANGES, build_controls, build_views
from .maximizer_drawing import paint_fooling, paint_picture, paint_top
from .units import parse_indices
from .validate import MAX_STEPS, Checked, Finite, Whole, in_range, one_of, refused

DRAW_INTERVAL_S = 0.1      # live redraws at most ~10 per second ...
DRAW_BUDGET = 25           # ... and at most 1/25 of the time (slow models: an extra forward)
FOOL_LR = 0.01             # plain SGD with a small step: the picture barely changes (Sec. 2.1)
# trait -> its control (attribute of the panel); W.link keeps the two equal
LINKS = {"mode": "mode_buttons", "steps": "steps_box", "lr": "lr_box",
         "optimizer": "optimizer_box", "start": "start_box", "start_image": "index_start",
         "n_starts": "n_starts_box", "alpha": "alpha_on", "alpha_weight": "alpha_weight_slider",
         "alpha_exp": "alpha_exp_slider", "tv": "tv_on", "tv_weight": "tv_weight_slider",
         "tv_beta": "tv_beta_slider",
         "gradient_trick": "trick_on", "jitter": "jitter_on", "cam_overlay": "cam_on",
         "fool_target": "fool_target_box", "fool_rows": "fool_rows_box"}
# what a picture of the ascent depends on
RUN = ("mode", "objective", "steps", "lr", "optimizer", "start", "start_image", "n_starts",
       "alpha", "alpha_weight", "alpha_exp", "tv", "tv_weight", "tv_beta", "gradient_trick",
       "jitter")


class MaximizerPanel(JobWidget):
    """Activation maximisation, dataset scans and pixel fooling for an engine.

    objective: the objective to start with (default: the logit of class 0); steps, lr,
    optimizer, start ("noise" or "dataset"), n_starts: the ascent's settings; top_k: how many
    dataset images the scan shows.
    """

    objective = Checked()                   # None reaches the validator (and is refused)
    mode = T.Unicode("maximize")            # "maximize" | "fool"
    steps, lr, optimizer = Whole(200), Finite(0.05), T.Unicode("adam")
    start, start_image, n_starts = T.Unicode("noise"), Whole(0), Whole(1)
    top_k = Whole(9)
    alpha, alpha_weight, alpha_exp = T.Bool(False), Finite(1e-3), Finite(6.0)
    tv, tv_weight, tv_beta = T.Bool(False), Finite(1e-2), Finite(2.0)
    gradient_trick, jitter, cam_overlay = T.Bool(False), T.Bool(False), T.Bool(False)
    fool_target, fool_rows = Whole(0), T.Unicode("")
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"start": ("start", "start_image", "n_starts"), "cam": ("picture", "cam_overlay"),
                "run": RUN, "scan": ("objective", "top_k"),
                "fool": ("mode", "fool_target", "fool_rows", "steps", "lr"), "index": ()}

    def __init__(self, engine: Engine, *, objective=None, steps: int = 200, lr: float = 0.05,
                 optimizer: str = "adam", start: str = "noise", n_starts: int = 1,
                 top_k: int = 9):
        super().__init__(engine)
        self.add_class("cnnw-maximizer")
        self.k = zoom(engine.input_shape[1:], 168)            # the optimised images
        self.k_small = zoom(engine.input_shape[1:], 84)       # top-k and fooling cells
        ds = engine.dataset
        self.picture: Picture | None = None
        self.scan_result: Scan | None = None
        self.fooling = None
        self.image_rgba = self.top_rgba = self.fool_rgba = None
        self.objective = objective if objective is not None else O.logit(0)
        self.steps, self.lr, self.optimizer, self.top_k = steps, lr, optimizer, top_k
        self.start = start if ds is not None else "noise"
        self.n_starts = n_starts
        self.fool_target = engine.n_classes - 1
        if ds is not None:
            rows = np.flatnonzero(ds.labels.numpy() == 0)[:4]
            self.fool_rows = ", ".join(str(int(r)) for r in rows)
        self._mode_lr = {"maximize": float(lr), "fool": FOOL_LR}
        build_controls(self)
        build_views(self)
        for name, control in LINKS.items():
            W.link((self, name), (getattr(self, control), "value"))
        redraw_on_reconnect(self.image_canvas, self._draw_image)
        redraw_on_reconnect(self.top_canvas, self._draw_top)
        redraw_on_reconnect(self.fool_canvas, self._draw_fool)
        self.observe(self._changed, names=["objective", "mode", "start", "start_image",
                                           "n_starts", "cam_overlay"])
        self._show_objective()
        self._show_mode()
        self._kind_changed()
        placeholder(self.image_canvas, "computing the start…")
        self._request_start()

    # -- traits: validation and the one observer -----------------------------------------------
    @T.validate("objective")
    def _valid_objective(self, proposal):
        with refused("objective: ", (Exception,)):
            objective = O.as_objective(proposal.value)
            objective.bind(self.engine)
        return objective

    @T.validate("mode")
    def _valid_mode(self, proposal):
        return one_of("mode", proposal.value, ("maximize", "fool") if self.engine.dataset
                      is not None else ("maximize",))

    @T.validate("start")
    def _valid_start(self, proposal):
        return one_of("start", proposal.value, ("noise", "dataset") if self.engine.dataset
                      is not None else ("noise",))

    @T.validate("optimizer")
    def _valid_optimizer(self, proposal):
        return one_of("optimizer", proposal.value, ("adam", "sgd"))

    @T.validate("steps", "n_starts", "top_k", "start_image", "fool_target")
    def _valid_count(self, proposal):
        n = len(self.engine.dataset) if self.engine.dataset is not None else 1
        hi = {"steps": MAX_STEPS, "n_starts": MAX_STARTS, "top_k": 10 ** 6,
              "start_image": n - 1, "fool_target": self.engine.n_classes - 1}
        name = proposal.trait.name
        return in_range(name, proposal.value, 0 if name in ("start_image", "fool_target") else 1,
                        hi[name])

    @T.validate(*RANGES)
    def _valid_real(self, proposal):
        """The control's range: a value its slider or box cannot show is refused."""
        return in_range(proposal.trait.name, proposal.value, *RANGES[proposal.trait.name])

    def _changed(self, change):
        name = change["name"]
        if name == "objective":
            self._show_objective()
        elif name == "mode":
            self._mode_lr[change["old"]] = self.lr     # each mode keeps its own learning rate
            self.lr = self._mode_lr[change["new"]]
            self._show_mode()
        elif name == "cam_overlay":
            self._cam_toggled()
        else:
            self._request_start()

    def _show_mode(self):
        fooling = self.mode == "fool"
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
        if kind in ("logit", "probability"):
            t = (O.logit if kind == "logit" else O.probability)(self.class_box.value)
        elif kind == "channel":
            t = O.channel(layer, int(text or 0))
        elif kind == "unit":
            t = O.unit(layer, tuple(int(v) for v in text.split(":")) if ":" in text
                       else int(text or 0))
        else:
            t = O.layer_mean(layer)
        return float(self.weight_box.value) * t

    def set_objective(self, objective) -> None:
        """Set the objective; a bad layer or index is refused with the engine's own error."""
        objective = O.as_objective(objective)
        objective.bind(self.engine)
        self.objective = objective

    def _term_clicked(self, add: bool):
        try:
            t = self.term()
            self.set_objective(self.objective + t if add else t)
            self.show_error(None)
        except Exception as exc:  # noqa: BLE001 - shown next to the builder
            self.show_error(exc)

    def _show_objective(self):
        text = html.escape(self.objective.description)
        self.objective_label.value = f"<b>objective</b>: <code>{text}</code>"

    def regularizers(self) -> list:
        """The regularisers the switches and sliders describe."""
        return [AlphaNorm(self.alpha_weight, self.alpha_exp, self.alpha),
                TotalVariation(self.tv_weight, self.tv_beta, self.tv),
                GradientTrick(enabled=self.gradient_trick), Jitter(enabled=self.jitter)]

    def _start_kw(self) -> dict:
        if self.start == "dataset":
            return {"start": "dataset",
                    "indices": start_rows(self.start_image, self.n_starts, len(self.engine.dataset))}
        return {"start": "noise", "n_starts": self.n_starts}

    # -- the picture ---------------------------------------------------------------------------
    @property
    def last_step(self):
        """The latest MaximizeStep drawn (None: the start is shown)."""
        return self.picture.step if self.picture is not None else None

    @property
    def cam(self):
        """The GradCam laid over the images shown (None: none)."""
        return self.picture.cam if self.picture is not None else None

    def _picture(self, images, logits, cam: bool, step=None) -> Picture:
        """On the worker: a Picture of ``images`` (the logits computed when None)."""
        if logits is None:
            logits = self.engine.predict(images)
        return Picture(images, softmax(logits), step, self.engine.gradcam(images) if cam else None)

    def _request_start(self):
        kw = self._start_kw()

        def work(control):
            return self._picture(self.engine.start_images(**kw), None, self.cam_overlay)

        self.run_job("start", work, self._show_start, label="start images", quiet=True)

    def _show_start(self, picture: Picture):
        if not self.busy("run"):                        # never over a live run
            if not self.cam_overlay and picture.cam is not None:   # switched off meanwhile
                picture = replace(picture, cam=None)
            self._show_picture(picture)
            if self.cam_overlay and picture.cam is None:    # switched on while it was computed
                self._cam_toggled()

    def _show_picture(self, picture: Picture):
        with self.runner.lock:
            self.picture = picture
            self._draw_image()

    def _draw_image(self):
        if self.picture is not None:
            self.bars.y = self.picture.probs[0]
            self.image_rgba = paint_picture(self.image_canvas, self.picture, self.k,
                                            self.engine.class_names)

    def _cam_toggled(self):
        pic = self.picture
        if pic is None:
            return
        if not self.cam_overlay:
            self._show_picture(replace(pic, cam=None))
            return

        self.run_job("cam", lambda control: self.engine.gradcam(pic.images, control=control),
                     lambda cam: self._show_picture(replace(pic, cam=cam)), label="grad-cam",
                     quiet=True)

    # -- runs ----------------------------------------------------------------------------------
    def run(self):
        """Maximise the objective (or fool, in fooling mode) on the worker thread."""
        if self.mode == "fool":
            return self.run_fooling()
        objective = self.objective
        settings = dict(steps=self.steps, lr=self.lr, optimizer=self.optimizer,
                        regularizers=self.regularizers(), **self._start_kw())
        self.curve_fig.title = "objective"     # fooling retitles the curve

        def work(control):
            next_draw = 0.0

            def wanted(_t):   # in between, the ascent runs as fast as headless
                return time.monotonic() >= next_draw
            for step in self.engine.iterate_maximize(objective, control=control, every=wanted,
                                                     predict=False, **settings):
                began = time.monotonic()
                picture = self._picture(step.images, step.logits, self.cam_overlay, step)
                control.check()      # stopped: the picture on screen stays the last one
                control.partial(picture)
                # drawing (with its class scores) takes at most 1/DRAW_BUDGET of the time
                next_draw = began + max(DRAW_INTERVAL_S, DRAW_BUDGET * (time.monotonic() - began))

        return self.run_job("run", work, lambda _r: None, label="maximize",
                            on_partial=self._show_step)

    def _show_step(self, picture: Picture):
        self._show_picture(picture)
        step = picture.step
        assert step is not None and step.trace is not None      # a live picture's step
        self._set_curve(*curve(step.trace, step.values if step.final else None))

    def _set_curve(self, x: np.ndarray, y: np.ndarray):
        """One line per start; y: (T, N)."""
        with self.curve.hold_sync():
            self.curve.x = x
            self.curve.y = y[:, 0] if y.shape[1] == 1 else y.T

    # -- dataset scan ----------------------------------------------------------------------------
    @property
    def top(self):
        return self.scan_result.top if self.scan_result is not None else None

    @property
    def histogram(self):
        return self.scan_result.histogram if self.scan_result is not None else None

    def scan(self):
        """Top-k dataset images and the histogram of the objective over the whole dataset."""
        objective = self.objective
        k = min(self.top_k, len(self.engine.dataset)) if self.engine.dataset is not None else 1

        def work(control):
            return Scan(*self.engine.top_images_and_histogram(objective, k, 40, control=control))

        return self.run_job("scan", work, self._show_scan, label="scan dataset")

    def build_index(self, batch_size: int | None = None):
        """Long job: the engine's activation index of the dataset (progress, Stop; a stopped
        build resumes from its last chunk); later scans read it."""
        def work(control):
            return self.engine.index(batch_size=batch_size, control=control, progress=False)
        return self.run_job("index", work, self._show_index, label="index dataset")

    def _show_index(self, index):
        self.index_label.value = html.escape(f"index: {index.n} images, {len(index.layers)} "
                                             f"layers")

    def _show_scan(self, result: Scan):
        self.scan_result = h = result
        source = result.top.source
        self.index_label.value = "top-k: full scan" if source == "scan" else \
            html.escape(f"top-k: from the index {source}")
        with self.hist_bars.hold_sync():
            self.hist_bars.x = (h.histogram.edges[:-1] + h.histogram.edges[1:]) / 2
            self.hist_bars.y = h.histogram.counts
            self.hist_bars.visible = True
        self._draw_top()

    def _draw_top(self):
        if self.top is not None:
            self.top_rgba = paint_top(self.top_canvas, self.top, len(self.histogram.values),
                                      self.k_small)

    # -- fooling ----------------------------------------------------------------------------------
    def run_fooling(self):
        """Raise the chosen class's logit on the chosen dataset images (plain SGD, small lr);
        rows that do not parse are shown in the error box."""
        try:
            rows = parse_indices(self.fool_rows, len(self.engine.dataset), "image")
        except ValueError as exc:
            self.show_failure("fooling", InvalidArgument(
                f"images: expected dataset rows such as '0-3, 7'; got {self.fool_rows!r} ({exc})"))
            return None
        target, steps, lr = self.fool_target, self.steps, self.lr

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
        if self.fooling is not None:
            self.fool_rgba = paint_fooling(self.fool_canvas, self.fooling, self.k_small,
                                           self.engine.class_names)
