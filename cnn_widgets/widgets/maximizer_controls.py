"""The controls and views of :class:`~.maximizer_panel.MaximizerPanel` (construction only:
no engine work, no state). Each control's value is linked to a trait of the panel."""
from __future__ import annotations

import bqplot as bq
import ipywidgets as W
import numpy as np

from ._base import new_canvas
from .validate import MAX_STEPS

KINDS = ("logit", "probability", "channel", "unit", "layer mean")
MAX_STARTS = 8
# the range of each number's control, which is also its trait's: a value the control cannot
# show is refused (the λ sliders are logarithmic)
RANGES = {"lr": (1e-12, 1e6), "alpha_weight": (1e-6, 10.0), "alpha_exp": (1.0, 10.0),
          "tv_weight": (1e-6, 10.0), "tv_beta": (0.5, 3.0)}


def _slider(p, name: str, description: str, **kw):
    lo, hi = RANGES[name]
    if name.endswith("_weight"):
        return W.FloatLogSlider(value=getattr(p, name), base=10, min=np.log10(lo),
                                max=np.log10(hi), description=description, readout_format=".0e")
    return W.FloatSlider(value=getattr(p, name), min=lo, max=hi, description=description, **kw)


def build_controls(p) -> None:
    """Create the builder row, switches, start and fooling settings and buttons on panel ``p``."""
    e = p.engine
    small, w = W.Layout(width="150px"), (lambda px: W.Layout(width=f"{px}px"))
    modes = [("maximize", "maximize"), ("fool", "fool")] if e.dataset is not None else \
        [("maximize", "maximize")]
    p.mode_buttons = W.ToggleButtons(options=modes, value="maximize")
    p.kind_box = W.Dropdown(options=KINDS, value="logit", description="term", layout=w(200))
    p.layer_box = W.Dropdown(options=e.layer_names, value=e.default_layer, description="layer",
                             layout=w(200))
    classes = [(f"{i}: {c}", i) for i, c in enumerate(e.class_names)]
    p.class_box = W.Dropdown(options=classes, value=0, description="class", layout=w(220))
    p.index_box = W.Text(value="0", description="index", placeholder="3  or  c:y:x",
                         layout=w(170))
    p.weight_box = W.FloatText(value=1.0, description="weight", layout=small)
    p.set_button = W.Button(description="Set", layout=w(60))
    p.add_button = W.Button(description="Add", layout=w(60))
    p.objective_label = W.HTML()
    p.alpha_on = W.Checkbox(description="α-norm", indent=False, layout=w(90))
    p.alpha_weight_slider = _slider(p, "alpha_weight", "λ")
    p.alpha_exp_slider = _slider(p, "alpha_exp", "α", step=0.5)
    p.tv_on = W.Checkbox(description="TV", indent=False, layout=w(90))
    p.tv_weight_slider = _slider(p, "tv_weight", "λ")
    p.tv_beta_slider = _slider(p, "tv_beta", "β", step=0.25)
    p.trick_on = W.Checkbox(description="blur/shift/rotate the gradient", indent=False,
                            layout=w(240))
    p.jitter_on = W.Checkbox(description="jitter the input", indent=False, layout=w(150))
    p.cam_on = W.Checkbox(description="Grad-CAM overlay", indent=False)
    p.start_box = W.Dropdown(options=["noise", "dataset"] if e.dataset is not None else ["noise"],
                             description="start", layout=w(170))
    n = len(e.dataset) if e.dataset is not None else 1
    p.index_start = W.BoundedIntText(min=0, max=n - 1, description="image", layout=small)
    p.n_starts_box = W.BoundedIntText(min=1, max=MAX_STARTS, description="starts", layout=small)
    p.steps_box = W.BoundedIntText(min=1, max=MAX_STEPS, description="steps", layout=small)
    p.lr_box = W.BoundedFloatText(value=p.lr, min=RANGES["lr"][0], max=RANGES["lr"][1],
                                  step=0.01, description="lr", layout=small)
    p.optimizer_box = W.Dropdown(options=["adam", "sgd"], description="optimizer", layout=w(170))
    p.fool_target_box = W.Dropdown(options=classes, value=e.n_classes - 1, description="raise class")
    p.fool_rows_box = W.Text(description="images", placeholder="dataset rows, e.g. 0-3")
    p.fool_row = W.HBox([p.fool_target_box, p.fool_rows_box])
    p.run_button = W.Button(description="Run", icon="play", button_style="primary", layout=w(90))
    p.scan_button = W.Button(description="Top-k + histogram", icon="search", layout=w(170),
                             disabled=e.dataset is None)     # scans need images
    p.index_button = W.Button(description="Build index", icon="database", layout=w(130),
                              disabled=e.dataset is None,
                              tooltip="scan the dataset once; top-k and histograms then read it")
    p.index_label = W.HTML("top-k: full scan")
    for c, cls in ((p.mode_buttons, "cnnw-mode"), (p.kind_box, "cnnw-term-kind"),
                   (p.layer_box, "cnnw-term-layer"), (p.index_box, "cnnw-term-index"),
                   (p.class_box, "cnnw-term-class"), (p.weight_box, "cnnw-term-weight"),
                   (p.set_button, "cnnw-set"), (p.add_button, "cnnw-add"),
                   (p.objective_label, "cnnw-objective"), (p.run_button, "cnnw-run"),
                   (p.scan_button, "cnnw-scan"), (p.cam_on, "cnnw-cam"),
                   (p.start_box, "cnnw-start"), (p.index_button, "cnnw-index-build"),
                   (p.index_label, "cnnw-index-status")):
        c.add_class(cls)
    p.set_button.on_click(lambda _b: p._term_clicked(add=False))
    p.add_button.on_click(lambda _b: p._term_clicked(add=True))
    p.run_button.on_click(lambda _b: p.run())
    p.scan_button.on_click(lambda _b: p.scan())
    p.index_button.on_click(lambda _b: p.build_index())
    p.kind_box.observe(p._kind_changed, names="value")


def _figure(marks, title, axes, width, margin_left):
    return bq.Figure(marks=marks, title=title, axes=axes,
                     layout=W.Layout(width=f"{width}px", height="220px"),
                     fig_margin={"top": 30, "bottom": 35, "left": margin_left, "right": 10})


def build_views(p) -> None:
    """Create the canvases and the three bqplot figures on panel ``p`` and lay it out."""
    e = p.engine
    h, w = e.input_shape[1:]
    p.image_canvas = new_canvas(w * p.k, h * p.k + 16, "cnnw-max-image")
    p.top_canvas = new_canvas(10, 10, "cnnw-max-top")
    p.fool_canvas = new_canvas(10, 10, "cnnw-max-fool")
    sx, sy = bq.LinearScale(), bq.LinearScale()
    p.curve = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": sx, "y": sy})
    p.curve_fig = _figure([p.curve], "objective", [bq.Axis(scale=sx, label="step"),
                                                   bq.Axis(scale=sy, side="left")], 320, 50)
    bx, by = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
    p.bars = bq.Bars(x=list(e.class_names), y=np.zeros(e.n_classes), scales={"x": bx, "y": by})
    p.prob_fig = _figure([p.bars], "class probabilities",
                         [bq.Axis(scale=bx), bq.Axis(scale=by, side="left")], 320, 40)
    hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
    # a hidden placeholder with a non-empty range until the first scan: a one-point domain
    # breaks bqplot's axis format ("invalid format: .undefinedg") and the figure with it
    p.hist_bars = bq.Bars(x=np.arange(2.0), y=np.ones(2), scales={"x": hx, "y": hy},
                          visible=False)
    p.hist_fig = _figure([p.hist_bars], "objective over the dataset",
                         [bq.Axis(scale=hx, label="value", num_ticks=5),
                          bq.Axis(scale=hy, side="left")], 360, 50)
    for fig, cls in ((p.curve_fig, "cnnw-curve"), (p.prob_fig, "cnnw-probs"),
                     (p.hist_fig, "cnnw-hist")):
        fig.add_class(cls)
    p.children = [
        p.mode_buttons,
        W.HBox([p.kind_box, p.class_box, p.layer_box, p.index_box, p.weight_box,
                p.set_button, p.add_button]),
        p.objective_label,
        W.HBox([p.alpha_on, p.alpha_weight_slider, p.alpha_exp_slider]),
        W.HBox([p.tv_on, p.tv_weight_slider, p.tv_beta_slider]),
        W.HBox([p.trick_on, p.jitter_on, p.cam_on]),
        W.HBox([p.start_box, p.index_start, p.n_starts_box, p.steps_box, p.lr_box,
                p.optimizer_box]),
        p.fool_row,
        W.HBox([p.run_button, p.scan_button, p.index_button, p.index_label]),
        p.status_bar, p.error,
        W.HBox([p.image_canvas, p.curve_fig, p.prob_fig]),
        p.fool_canvas,
        W.HBox([p.top_canvas, p.hist_fig]),
    ]
