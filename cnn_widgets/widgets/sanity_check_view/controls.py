"""The controls, canvases, curves and layout of
:class:`~cnn_widgets.widgets.sanity_check_view.SanityCheckView`: built here and returned as one
frozen :class:`Controls`; nothing is assigned onto the widget and nothing is wired here (the
widget links and wires them)."""
from __future__ import annotations

from dataclasses import dataclass

import bqplot as bq
import ipywidgets as W
import numpy as np
from ipycanvas import Canvas

from ..canvas import new_canvas
from .geometry import detail_size

#: method -> its name in the widget (deconvnet_masks is guided backpropagation)
LABELS = {"etalon": "etalon", "deconvnet": "deconvnet", "deconvnet_masks": "guided backprop",
          "random_masks": "masks, rand. w", "filter": "filter", "gradient": "gradient",
          "gradcam": "Grad-CAM"}
MODES = {"cascade": "cascading", "independent": "independent", "data": "data: other model"}
METRIC_LABELS = {"rank_abs": "rank |·|", "rank": "rank", "ssim": "SSIM"}
COLOURS = {"etalon": "#8c564b", "deconvnet": "#ff7f0e", "deconvnet_masks": "#2ca02c",
           "random_masks": "#9467bd", "filter": "#7f7f7f", "gradient": "#1f77b4",
           "gradcam": "#d62728"}


@dataclass(frozen=True)
class Controls:
    """Every widget the view shows; ``children``: them laid out (the view's children)."""
    indices_box: W.Text
    shown_box: W.Dropdown
    method_buttons: dict[str, W.ToggleButton]
    mode_box: W.ToggleButtons
    metric_box: W.ToggleButtons
    run_button: W.Button
    explain: W.HTML
    grid_canvas: Canvas
    detail_canvas: Canvas
    detail_text: W.HTML
    curves: dict[str, bq.Lines]          # method -> its similarity curve
    x_axis: bq.Axis
    y_axis: bq.Axis
    curves_fig: bq.Figure
    children: tuple[W.Widget, ...]


def build(engine, methods, modes, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The view's controls for ``engine``: a toggle per method of ``methods``, the ``modes``
    offered, laid out around the widget's ``status_bar`` and ``error`` box."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    sx, sy = bq.LinearScale(min=0.0, max=1.0), bq.LinearScale(min=-1.0, max=1.0)
    # fixed domains: a figure whose marks have no data yet keeps working axes
    curves = {m: bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": sx, "y": sy},
                          colors=[COLOURS[m]], labels=[LABELS[m]], marker="circle",
                          marker_size=24, display_legend=False, visible=False)
              for m in methods}
    x_axis = bq.Axis(scale=sx, label="re-initialised", tick_values=np.arange(2.0))
    y_axis = bq.Axis(scale=sy, side="left", label="similarity", tick_format=".1f")
    c = dict(
        indices_box=W.Text(description="images", layout=wide(260), continuous_update=False,
                           placeholder="dataset rows, e.g. 0, 5, 10-12 (Enter)"),
        shown_box=W.Dropdown(description="show", layout=wide(220)),
        method_buttons={m: W.ToggleButton(description=LABELS[m], layout=wide(134))
                        for m in methods},
        mode_box=W.ToggleButtons(options=[(MODES[m], m) for m in modes],
                                 style={"button_width": "150px"}),
        metric_box=W.ToggleButtons(options=[(v, k) for k, v in METRIC_LABELS.items()],
                                   style={"button_width": "70px"}),
        run_button=W.Button(description="Run again", icon="refresh", layout=wide(110)),
        explain=W.HTML(""),
        grid_canvas=new_canvas(10, 10, "cnnw-grid"),
        detail_canvas=new_canvas(*detail_size(engine.input_shape[1:]), "cnnw-detail"),
        detail_text=W.HTML(""),
        curves=curves, x_axis=x_axis, y_axis=y_axis,
        curves_fig=bq.Figure(marks=list(curves.values()), axes=[x_axis, y_axis],
                             title="mean similarity to the original maps",
                             legend_location="bottom-left",
                             layout=W.Layout(width="480px", height="300px",
                                             margin="0 0 0 12px"),
                             fig_margin={"top": 30, "bottom": 50, "left": 50, "right": 30}),
    )
    for name, cls in (("indices_box", "cnnw-images"), ("shown_box", "cnnw-shown"),
                      ("mode_box", "cnnw-mode"), ("metric_box", "cnnw-metric"),
                      ("run_button", "cnnw-run"), ("explain", "cnnw-explain"),
                      ("detail_text", "cnnw-detail-text"), ("curves_fig", "cnnw-curves")):
        c[name].add_class(cls)
    for m, button in c["method_buttons"].items():
        button.add_class("cnnw-method")
        button.add_class(f"cnnw-method-{m}")
    children = (
        W.HBox([c["mode_box"], c["metric_box"]]),
        W.HBox(list(c["method_buttons"].values()), layout=W.Layout(flex_flow="row wrap")),
        W.HBox([c["indices_box"], c["shown_box"], c["run_button"]]),
        status_bar, error, c["explain"],
        W.Box([c["grid_canvas"], c["curves_fig"]],
              layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
        W.HBox([c["detail_canvas"], c["detail_text"]],
               layout=W.Layout(align_items="flex-start")),
    )
    return Controls(**c, children=children)
