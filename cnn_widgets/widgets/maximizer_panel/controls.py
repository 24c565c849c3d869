"""The controls, canvases, charts and layout of
:class:`~cnn_widgets.widgets.maximizer_panel.MaximizerPanel`: built here and returned as one
frozen :class:`Controls`; nothing is assigned onto the panel and nothing is wired here (the
panel links each control to its trait and wires the buttons)."""
from __future__ import annotations

from dataclasses import dataclass

import bqplot as bq
import ipywidgets as W
import numpy as np
from ipycanvas import Canvas

from ...engine import InvalidArgument
from ...engine.visualization import objectives as O
from ..canvas import new_canvas
from ..pickers import class_picker
from ..validate import MAX_STEPS
from .geometry import bars, picture_size

KINDS = ("logit", "probability", "channel", "unit", "layer mean")
MAX_STARTS = 8
# the range of each number's control, which is also its trait's: a value the control cannot
# show is refused (the λ sliders are logarithmic)
RANGES = {"lr": (1e-12, 1e6), "alpha_weight": (1e-6, 10.0), "alpha_exp": (1.0, 10.0),
          "tv_weight": (1e-6, 10.0), "tv_beta": (0.5, 3.0)}
# the optimiser is picked where its name says which one the paper uses
OPTIMIZERS = (("Adam (not the paper's)", "adam"), ("SGD (the paper's)", "sgd"))


@dataclass(frozen=True)
class Controls:
    """Every widget the panel shows; ``children``: them laid out (the panel's children)."""
    mode_buttons: W.ToggleButtons
    kind_box: W.Dropdown
    class_box: W.Combobox
    layer_box: W.Dropdown
    index_box: W.Text
    weight_box: W.FloatText
    set_button: W.Button
    add_button: W.Button
    objective_label: W.HTML
    alpha_on: W.Checkbox
    alpha_weight_slider: W.FloatLogSlider
    alpha_exp_slider: W.FloatSlider
    tv_on: W.Checkbox
    tv_weight_slider: W.FloatLogSlider
    tv_beta_slider: W.FloatSlider
    trick_on: W.Checkbox
    jitter_on: W.Checkbox
    cam_on: W.Checkbox
    start_box: W.Dropdown
    start_image_box: W.BoundedIntText
    n_starts_box: W.BoundedIntText
    steps_box: W.BoundedIntText
    lr_box: W.BoundedFloatText
    optimizer_box: W.Dropdown
    fool_target_box: W.Combobox
    fool_rows_box: W.Text
    fool_row: W.HBox
    run_button: W.Button
    scan_button: W.Button
    index_button: W.Button
    index_label: W.HTML
    image_canvas: Canvas
    top_canvas: Canvas
    fool_canvas: Canvas
    curve: bq.Lines
    curve_fig: bq.Figure
    bars: bq.Bars
    prob_fig: bq.Figure
    hist_bars: bq.Bars
    hist_fig: bq.Figure
    children: tuple[W.Widget, ...]


def class_of(options, text: str, what: str) -> int:
    """The class of a picker's option ("index: name"); anything else is refused."""
    if text not in options:
        raise InvalidArgument(f"{what}: no class {text!r}: pick one of the names offered")
    return list(options).index(text)


def read_term(c: Controls, kind: str) -> O.Objective:
    """The weighted term of ``kind`` the builder row of ``c`` describes (the engine checks the
    layer and index when it is set)."""
    layer, text = c.layer_box.value, c.index_box.value.strip()
    if kind in ("logit", "probability"):
        t = (O.logit if kind == "logit" else O.probability)(
            class_of(c.class_box.options, c.class_box.value, "class"))
    elif kind == "channel":
        t = O.channel(layer, int(text or 0))
    elif kind == "unit":
        t = O.unit(layer, tuple(int(v) for v in text.split(":")) if ":" in text
                   else int(text or 0))
    else:
        t = O.layer_mean(layer)
    return float(c.weight_box.value) * t


def _slider(name: str, description: str, **kw):
    lo, hi = RANGES[name]
    if name.endswith("_weight"):
        return W.FloatLogSlider(value=lo, base=10, min=np.log10(lo), max=np.log10(hi),
                                description=description, readout_format=".0e")
    return W.FloatSlider(value=lo, min=lo, max=hi, description=description, **kw)


def _figure(marks, title, axes, width, margin_left):
    return bq.Figure(marks=marks, title=title, axes=axes,
                     layout=W.Layout(width=f"{width}px", height="220px"),
                     fig_margin={"top": 30, "bottom": 35, "left": margin_left, "right": 10})


def _charts(engine) -> dict:
    """The objective curve, the class probabilities and the dataset histogram (bqplot)."""
    sx, sy = bq.LinearScale(), bq.LinearScale()
    curve = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": sx, "y": sy})
    bx, by = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
    labels, heights = bars(np.zeros(engine.n_classes), engine.class_names)
    probs = bq.Bars(x=labels, y=heights, scales={"x": bx, "y": by})
    hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
    # a hidden placeholder with a non-empty range until the first scan: a one-point domain
    # breaks bqplot's axis format ("invalid format: .undefinedg") and the figure with it
    hist = bq.Bars(x=np.arange(2.0), y=np.ones(2), scales={"x": hx, "y": hy}, visible=False)
    c = dict(
        curve=curve, bars=probs, hist_bars=hist,
        curve_fig=_figure([curve], "objective", [bq.Axis(scale=sx, label="step"),
                                                 bq.Axis(scale=sy, side="left")], 320, 50),
        prob_fig=_figure([probs], "class probabilities",
                         [bq.Axis(scale=bx), bq.Axis(scale=by, side="left")], 320, 40),
        hist_fig=_figure([hist], "objective over the dataset",
                         [bq.Axis(scale=hx, label="value", num_ticks=5),
                          bq.Axis(scale=hy, side="left")], 360, 50))
    for name, cls in (("curve_fig", "cnnw-curve"), ("prob_fig", "cnnw-probs"),
                      ("hist_fig", "cnnw-hist")):
        c[name].add_class(cls)
    return c


def build(engine, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The panel's controls for ``engine``, laid out around the widget's ``status_bar`` and
    ``error`` box (values are the traits' to show: the panel links them)."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    small, short = wide(150), {"description_width": "45px"}     # the start row fits 960 px
    data = engine.dataset is not None
    c = dict(
        mode_buttons=W.ToggleButtons(options=[("maximize", "maximize")]
                                     + ([("fool", "fool")] if data else []), value="maximize"),
        kind_box=W.Dropdown(options=KINDS, value="logit", description="term", layout=wide(200)),
        class_box=class_picker(engine.class_names, "class", 260, pick=0),
        layer_box=W.Dropdown(options=engine.layer_names, value=engine.default_layer,
                             description="layer", layout=wide(200)),
        index_box=W.Text(value="0", description="index", placeholder="3  or  c:y:x",
                         layout=wide(170)),
        weight_box=W.FloatText(value=1.0, description="weight", layout=small),
        set_button=W.Button(description="Set", layout=wide(60)),
        add_button=W.Button(description="Add", layout=wide(60)),
        objective_label=W.HTML(),
        alpha_on=W.Checkbox(description="α-norm", indent=False, layout=wide(90)),
        alpha_weight_slider=_slider("alpha_weight", "λ"),
        alpha_exp_slider=_slider("alpha_exp", "α", step=0.5),
        tv_on=W.Checkbox(description="TV", indent=False, layout=wide(90)),
        tv_weight_slider=_slider("tv_weight", "λ"),
        tv_beta_slider=_slider("tv_beta", "β", step=0.25),
        trick_on=W.Checkbox(description="blur/shift/rotate the gradient", indent=False,
                            layout=wide(240)),
        jitter_on=W.Checkbox(description="jitter the input", indent=False, layout=wide(150)),
        cam_on=W.Checkbox(description="Grad-CAM overlay", indent=False),
        start_box=W.Dropdown(options=["noise", "dataset"] if data else ["noise"],
                             description="start", layout=wide(150), style=short),
        start_image_box=W.BoundedIntText(min=0, max=len(engine.dataset) - 1 if data else 0,
                                         description="image", layout=wide(120), style=short),
        n_starts_box=W.BoundedIntText(min=1, max=MAX_STARTS, description="starts",
                                      layout=wide(100), style=short),
        steps_box=W.BoundedIntText(min=1, max=MAX_STEPS, description="steps", layout=wide(130),
                                   style=short),
        lr_box=W.BoundedFloatText(min=RANGES["lr"][0], max=RANGES["lr"][1], step=0.01,
                                  description="lr", layout=wide(120), style=short),
        optimizer_box=W.Dropdown(options=OPTIMIZERS, value="adam", description="optimizer",
                                 layout=wide(270), style={"description_width": "65px"}),
        fool_target_box=class_picker(engine.class_names, "raise class", 300, pick=-1,
                                     placeholder="type to search"),
        fool_rows_box=W.Text(description="images", placeholder="dataset rows, e.g. 0-3"),
        run_button=W.Button(description="Run", icon="play", button_style="primary",
                            layout=wide(90)),
        scan_button=W.Button(description="Top-k + histogram", icon="search", layout=wide(170),
                             disabled=not data),      # scans need images
        index_button=W.Button(description="Build index", icon="database", layout=wide(130),
                              disabled=not data,
                              tooltip="scan the dataset once; top-k and histograms then read it"),
        index_label=W.HTML("top-k: full scan"),
        image_canvas=new_canvas(*picture_size(engine.input_shape[1:]), "cnnw-max-image"),
        top_canvas=new_canvas(10, 10, "cnnw-max-top"),
        fool_canvas=new_canvas(10, 10, "cnnw-max-fool"),
        **_charts(engine),
    )
    for name, cls in (("mode_buttons", "cnnw-mode"), ("kind_box", "cnnw-term-kind"),
                      ("layer_box", "cnnw-term-layer"), ("index_box", "cnnw-term-index"),
                      ("class_box", "cnnw-term-class"), ("weight_box", "cnnw-term-weight"),
                      ("set_button", "cnnw-set"), ("add_button", "cnnw-add"),
                      ("objective_label", "cnnw-objective"), ("run_button", "cnnw-run"),
                      ("scan_button", "cnnw-scan"), ("cam_on", "cnnw-cam"),
                      ("start_box", "cnnw-start"), ("optimizer_box", "cnnw-optimizer"),
                      ("fool_target_box", "cnnw-fool-target"),
                      ("index_button", "cnnw-index-build"), ("index_label", "cnnw-index-status")):
        c[name].add_class(cls)
    c["fool_row"] = W.HBox([c["fool_target_box"], c["fool_rows_box"]])
    children = (
        c["mode_buttons"],
        W.HBox([c["kind_box"], c["class_box"], c["layer_box"], c["index_box"], c["weight_box"],
                c["set_button"], c["add_button"]]),
        c["objective_label"],
        W.HBox([c["alpha_on"], c["alpha_weight_slider"], c["alpha_exp_slider"]]),
        W.HBox([c["tv_on"], c["tv_weight_slider"], c["tv_beta_slider"]]),
        W.HBox([c["trick_on"], c["jitter_on"], c["cam_on"]]),
        W.HBox([c["start_box"], c["start_image_box"], c["n_starts_box"], c["steps_box"],
                c["lr_box"], c["optimizer_box"]]),
        c["fool_row"],
        W.HBox([c["run_button"], c["scan_button"], c["index_button"], c["index_label"]]),
        status_bar, error,
        W.HBox([c["image_canvas"], c["curve_fig"], c["prob_fig"]]),
        c["fool_canvas"],
        W.HBox([c["top_canvas"], c["hist_fig"]]),
    )
    return Controls(**c, children=children)
