"""MaximizerPanel: activation maximisation live (visualization paper, Sec. 2).

Build an objective from weighted terms (class logit or probability picked by name, layer mean,
channel, unit), switch and weigh the regularisers, pick a start, press Run: the engine hands
the ascent's pictures to the canvas while the objective curve and the class probabilities
(bqplot) follow. Grad-CAM can be laid over them (during a run: of the latest picture it was
computed for; at the end: of the final images). "Top-k + histogram" scans the dataset, the top
images showing from its first batch on; the fooling mode raises another class's logit on
dataset images (start, end, difference, both Grad-CAMs).

The widget contract (CONTRIBUTING.md, "Jobs and widgets"): here the validated traits, the one
observer ``_on_state``, the requests and what a result does; ``controls.py`` builds the
controls, ``paint.py`` makes the RGBA sheets, ``geometry.py`` is the layout math.
"""
from __future__ import annotations

import html
import itertools
from dataclasses import replace

import numpy as np
import traitlets as T

from ...engine import Engine, InvalidArgument
from ...engine.visualization import objectives as O
from ...engine.visualization.maximize import MaximizeStep
from ...engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from .._base import JobWidget
from ..units import parse_indices
from ..validate import MAX_STEPS, Checked, Finite, Whole, in_range, one_of, refused
from .controls import KINDS, MAX_STARTS, RANGES, build, class_of, read_term
from .geometry import CAPTION, GAP, TOP_COLUMNS, Picture, Scan, bars, curve, softmax, start_rows
from .paint import fooling_sheet, picture_sheet, top_sheet

__all__ = ["MaximizerPanel", "Picture", "Scan", "CAPTION", "GAP", "TOP_COLUMNS", "LINKS"]

FOOL_LR = 0.01             # plain SGD with a small step: the picture barely changes (Sec. 2.1)
# trait -> the control (a field of Controls) that shows it and sets it
LINKS = {"mode": "mode_buttons", "term_kind": "kind_box", "steps": "steps_box", "lr": "lr_box",
         "optimizer": "optimizer_box", "start": "start_box", "start_image": "start_image_box",
         "n_starts": "n_starts_box", "alpha": "alpha_on", "alpha_weight": "alpha_weight_slider",
         "alpha_exp": "alpha_exp_slider", "tv": "tv_on", "tv_weight": "tv_weight_slider",
         "tv_beta": "tv_beta_slider", "gradient_trick": "trick_on", "jitter": "jitter_on",
         "cam_overlay": "cam_on", "fool_rows": "fool_rows_box"}
# what a picture of the ascent depends on
RUN = ("mode", "objective", "steps", "lr", "optimizer", "start", "start_image", "n_starts",
       "alpha", "alpha_weight", "alpha_exp", "tv", "tv_weight", "tv_beta", "gradient_trick",
       "jitter")


def first_class(engine: Engine) -> int:
    """The label of the dataset's first image (a class the data has), else class 0."""
    ds = engine.dataset
    label = int(ds.labels[0]) if ds is not None and len(ds) else 0
    return label if 0 <= label < engine.n_classes else 0


class MaximizerPanel(JobWidget):
    """Activation maximisation, dataset scans and pixel fooling for an engine.

    objective: the objective to start with (default: the logit of the first dataset image's
    class); steps, lr, optimizer ("adam", the default, or the paper's "sgd"), start ("noise"
    or "dataset"), n_starts: the ascent's settings; top_k: how many dataset images the scan
    shows. The pictures are computed on the engine's worker: ``wait()`` for them in a script.
    """

    objective = Checked()                   # None reaches the validator (and is refused)
    mode = T.Unicode("maximize")            # "maximize" | "fool"
    term_kind = T.Unicode("logit")          # the kind of term the builder row makes
    steps, lr, optimizer = Whole(200), Finite(0.05), T.Unicode("adam")
    start, start_image, n_starts = T.Unicode("noise"), Whole(0), Whole(1)
    top_k = Whole(9)
    alpha, alpha_weight, alpha_exp = T.Bool(False), Finite(1e-3), Finite(6.0)
    tv, tv_weight, tv_beta = T.Bool(False), Finite(1e-2), Finite(2.0)
    gradient_trick, jitter, cam_overlay = T.Bool(False), T.Bool(False), T.Bool(False)
    fool_target, fool_rows = Whole(0), T.Unicode("")
    # job key -> the state its result answers (shown only while that still holds)
    REQUESTS = {"start": ("start", "start_image", "n_starts"), "cam": ("cam_overlay", "_origin"),
                "run": RUN, "scan": ("objective", "top_k"),
                "fool": ("mode", "fool_target", "fool_rows", "steps", "lr"), "index": ()}

    def __init__(self, engine: Engine, *, objective=None, steps: int = 200, lr: float = 0.05,
                 optimizer: str = "adam", start: str = "noise", n_starts: int = 1,
                 top_k: int = 9):
        super().__init__(engine)
        self.add_class("cnnw-maximizer")
        self._ready = False
        ds = engine.dataset
        self.picture: Picture | None = None          # what the image canvas shows
        self.start_picture: Picture | None = None    # the start images (where a run begins)
        self.scan_result: Scan | None = None
        self.fooling = None
        self.image_rgba = self.top_rgba = self.fool_rgba = None
        self._origins = itertools.count(1)           # one per start and run
        first = first_class(engine)
        self.objective = objective if objective is not None else O.logit(first)
        self.steps, self.lr, self.optimizer, self.top_k = steps, lr, optimizer, top_k
        self.start = start if ds is not None else "noise"
        self.n_starts = n_starts
        self.fool_target = engine.n_classes - 1 if first != engine.n_classes - 1 else 0
        if ds is not None:
            rows = np.flatnonzero(ds.labels.numpy() == first)[:4]
            self.fool_rows = ", ".join(str(int(r)) for r in rows)
        self._mode_lr = {"maximize": float(self.lr), "fool": FOOL_LR}
        self.controls = c = build(engine, self.status_bar, self.error)
        self.children = c.children
        for name, control in LINKS.items():
            self.link(name, getattr(c, control))
        self.link("fool_target", c.fool_target_box, show=lambda i: c.fool_target_box.options[i],
                  take=lambda text: class_of(c.fool_target_box.options, text, "raise class"))
        c.set_button.on_click(lambda _b: self._term_clicked(add=False))
        c.add_button.on_click(lambda _b: self._term_clicked(add=True))
        c.run_button.on_click(lambda _b: self.run())
        c.scan_button.on_click(lambda _b: self.scan())
        c.index_button.on_click(lambda _b: self.build_index())
        self._ready = True
        self._show_objective()
        self._show_rows()
        self.paint(c.image_canvas, "computing the start…")
        self._request_start()

    # -- state: validated traits, one observer ----------------------------------------------
    @T.validate("objective")
    def _valid_objective(self, proposal):
        with refused("objective: ", (Exception,)):
            objective = O.as_objective(proposal.value)
            objective.bind(self.engine)
        return objective

    @T.validate("mode", "start", "optimizer", "term_kind")
    def _valid_choice(self, proposal):
        data = self.engine.dataset is not None
        options = {"mode": ("maximize", "fool") if data else ("maximize",),
                   "start": ("noise", "dataset") if data else ("noise",),
                   "optimizer": ("adam", "sgd"), "term_kind": KINDS}
        return one_of(proposal.trait.name, proposal.value, options[proposal.trait.name])

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

    @T.observe("objective", "mode", "term_kind", "start", "start_image", "n_starts",
               "cam_overlay")
    def _on_state(self, change):
        if not self._ready:
            return
        name = change["name"]
        if name == "objective":
            self._show_objective()
        elif name == "mode":
            self._mode_lr[change["old"]] = self.lr     # each mode keeps its own learning rate
            self.lr = self._mode_lr[change["new"]]
            self._show_rows()
        elif name == "term_kind":
            self._show_rows()
        elif name == "cam_overlay":
            self._cam_toggled()
        else:
            self.start_picture = None
            self._request_start()

    def _show_rows(self):
        """The fooling row in fooling mode; a class picker for a class term, a layer (and an
        index for channels and units) for the others."""
        c, kind, fooling = self.controls, self.term_kind, self.mode == "fool"
        c.fool_row.layout.display = c.fool_canvas.layout.display = "" if fooling else "none"
        c.run_button.description = "Fool" if fooling else "Run"
        by_class = kind in ("logit", "probability")
        c.class_box.layout.display = "" if by_class else "none"
        c.layer_box.layout.display = "none" if by_class else ""
        c.index_box.layout.display = "" if kind in ("channel", "unit") else "none"

    # -- the objective -------------------------------------------------------------------------
    def term(self) -> O.Objective:
        """The term the builder row describes (weighted)."""
        return read_term(self.controls, self.term_kind)

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
        self.controls.objective_label.value = f"<b>objective</b>: <code>{text}</code>"

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
    def last_step(self) -> MaximizeStep | None:
        """The step of the ascent shown (None: the start is shown)."""
        return self.picture.step if self.picture is not None else None

    @property
    def cam(self):
        """The GradCam laid over the images shown (None: none)."""
        return self.picture.cam if self.picture is not None else None

    @property
    def _origin(self) -> int | None:
        """The start or run the picture shown belongs to (what a Grad-CAM request answers)."""
        return self.picture.origin if self.picture is not None else None

    def _request_start(self):
        kw, engine, origin = self._start_kw(), self.engine, next(self._origins)

        def work(control):
            images = engine.start_images(**kw)
            cam = engine.gradcam(images, control=control) if self.cam_overlay else None
            return Picture(images, softmax(engine.predict(images)), cam=cam,
                           cam_for=images if cam is not None else None, origin=origin)

        self.run_job("start", work, self._show_start, label="start images", quiet=True)

    def _show_start(self, picture: Picture):
        if not self.cam_overlay and picture.cam is not None:    # switched off meanwhile
            picture = replace(picture, cam=None, cam_for=None)
        self.start_picture = picture
        if not self.busy("run"):                                 # never over a live run
            self._show_picture(picture)
            if self.cam_overlay and picture.cam is None:        # switched on meanwhile
                self._request_cam()

    def _show_picture(self, picture: Picture):
        with self.runner.lock:
            self.picture = picture
            self._draw_image()

    def _draw_image(self):
        pic, c = self.picture, self.controls
        heats = pic.cam.normalized()[:, 0] if pic.cam is not None else None
        sheet = picture_sheet(pic.images, pic.probs, self.engine.class_names, heats)
        self.image_rgba = sheet.rgba
        self.paint(c.image_canvas, sheet)
        self._show_bars(pic.probs[0])

    def _show_bars(self, probs: np.ndarray):
        labels, heights = bars(probs, self.engine.class_names)
        with self.controls.bars.hold_sync():
            self.controls.bars.x, self.controls.bars.y = labels, heights

    def _cam_toggled(self):
        if self.picture is None:
            return
        if not self.cam_overlay:
            self._show_picture(replace(self.picture, cam=None, cam_for=None))
        elif not self.picture.exact_cam:
            self._request_cam()

    def _request_cam(self):
        """The Grad-CAM of the picture shown, on the interactive lane (between two steps of a
        running ascent)."""
        images, engine = self.picture.images, self.engine
        self.run_job("cam", lambda control: engine.gradcam(images, control=control),
                     lambda cam: self._show_cam(cam, images), label="grad-cam", quiet=True)

    def _show_cam(self, cam, images: np.ndarray):
        """Laid over the picture of its start or run, unless that has its own already."""
        picture = self.picture
        if picture is not None and not picture.exact_cam:
            self._show_picture(replace(picture, cam=cam, cam_for=images))

    # -- runs ----------------------------------------------------------------------------------
    def run(self):
        """Maximise the objective (or fool, in fooling mode) on the worker thread; the engine
        hands the pictures on the way to the canvas."""
        if self.mode == "fool":
            return self.run_fooling()
        objective, engine, origin = self.objective, self.engine, next(self._origins)
        settings = dict(steps=self.steps, lr=self.lr, optimizer=self.optimizer,
                        regularizers=self.regularizers(), **self._start_kw())

        def work(control):
            result = engine.maximize(objective, control=control, **settings)
            cam = engine.gradcam(result.images, control=control) if self.cam_overlay else None
            return result, cam

        c = self.controls
        with self.runner.lock:          # the start and an empty curve at once, then the ascent
            c.curve_fig.title = "objective"
            self._set_curve(np.zeros(0), np.zeros((0, 1)))
            if self.start_picture is not None:
                self._show_picture(replace(self.start_picture, origin=origin))
            return self.run_job("run", work, lambda result: self._show_result(result, origin),
                                label="maximize",
                                on_partial=lambda step: self._show_step(step, origin))

    def _show_step(self, step: MaximizeStep, origin: int, cam=None):
        """A picture of the ascent (a live one, or the final one with its own Grad-CAM)."""
        last = self.picture
        if cam is None and self.cam_overlay and last is not None and last.origin == origin:
            cam, cam_for = last.cam, last.cam_for     # the latest Grad-CAM until its own comes
        else:
            cam_for = step.images if cam is not None else None
        self._show_picture(Picture(step.images, step.probabilities, step, cam, cam_for, origin))
        assert step.trace is not None                  # every step the engine hands on has it
        self._set_curve(*curve(step.trace, step.values if step.final else None))
        shown = self.picture
        if self.cam_overlay and shown is not None and not shown.exact_cam and not self.busy("cam"):
            self._request_cam()

    def _show_result(self, result, origin: int):
        r, cam = result
        steps = len(r.trace)
        step = MaximizeStep(steps, steps, r.values, r.images, r.logits, r.trace, r.penalty_trace)
        self._show_step(step, origin, cam if self.cam_overlay else None)

    def _set_curve(self, x: np.ndarray, y: np.ndarray):
        """One line per start; y: (T, N)."""
        line = self.controls.curve
        with line.hold_sync():
            line.x = x
            line.y = y[:, 0] if y.shape[1] == 1 else y.T

    # -- dataset scan ----------------------------------------------------------------------------
    @property
    def top(self):
        return self.scan_result.top if self.scan_result is not None else None

    @property
    def histogram(self):
        return self.scan_result.histogram if self.scan_result is not None else None

    def scan(self):
        """Top-k dataset images and the histogram of the objective over the whole dataset; the
        top images of the batches scanned so far show as they come."""
        objective, engine, c = self.objective, self.engine, self.controls
        k = min(self.top_k, len(engine.dataset)) if engine.dataset is not None else 1
        with self.runner.lock:          # nothing of an earlier scan lands after this
            self.scan_result = self.top_rgba = None
            self.paint(c.top_canvas, "")
            return self.run_job(
                "scan", lambda control: engine.top_images_and_histogram(objective, k, 40,
                                                                        control=control),
                self._show_scan, label="scan dataset", on_partial=self._show_scan)

    def build_index(self, batch_size: int | None = None):
        """Long job: the engine's activation index of the dataset (progress, Stop; a stopped
        build resumes from its last chunk); later scans read it."""
        engine = self.engine
        return self.run_job("index", lambda control: engine.index(
            batch_size=batch_size, control=control, progress=False), self._show_index,
            label="index dataset")

    def _show_index(self, index):
        self.controls.index_label.value = html.escape(
            f"index: {index.n} images, {len(index.layers)} layers")

    def _show_scan(self, result):
        """(TopImages, Histogram) of the images scanned so far, or of all of them."""
        self.scan_result = h = Scan(*result)
        c, source = self.controls, h.top.source
        c.index_label.value = "top-k: full scan" if source == "scan" else \
            html.escape(f"top-k: from the index {source}")
        with c.hist_bars.hold_sync():
            c.hist_bars.x = (h.histogram.edges[:-1] + h.histogram.edges[1:]) / 2
            c.hist_bars.y = h.histogram.counts
            c.hist_bars.visible = True
        sheet = top_sheet(h.top, len(self.engine.dataset))
        self.top_rgba = sheet.rgba
        self.paint(c.top_canvas, sheet)

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
        target, steps, lr, engine = self.fool_target, self.steps, self.lr, self.engine

        def work(control):
            return engine.fool(target, indices=rows, steps=steps, lr=lr,
                               every=max(1, steps // 50), control=control)

        return self.run_job("fool", work, self._show_fooling, label="fooling")

    def _show_fooling(self, f):
        self.fooling, c = f, self.controls
        self._set_curve(f.steps, f.probabilities[:, :, f.classes[1]])
        c.curve_fig.title = f"p({self.engine.class_names[f.classes[1]]}) while fooling"
        self._show_bars(f.probabilities[-1, 0])
        sheet = fooling_sheet(f, self.engine.class_names)
        self.fool_rgba = sheet.rgba
        self.paint(c.fool_canvas, sheet)
