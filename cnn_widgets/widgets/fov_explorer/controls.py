"""The controls, canvases, chart and layout of
:class:`~cnn_widgets.widgets.fov_explorer.FOVExplorer`: built here and returned as one frozen
:class:`Controls`; nothing is assigned onto the widget and nothing is wired here (the widget
links and wires them)."""
from __future__ import annotations

from dataclasses import dataclass

import bqplot as bq
import ipywidgets as W
from ipycanvas import Canvas

from ..canvas import new_canvas
from .geometry import HEADER, SLICE_GAP, SLICE_PX, recon_size


@dataclass(frozen=True)
class Controls:
    """Every widget the explorer shows; ``children``: them laid out (the explorer's
    children). ``bars``: this image's active features per layer, ``means``: the dataset's."""
    layer_box: W.Dropdown
    row_box: W.BoundedIntText
    channel_box: W.BoundedIntText
    best_button: W.Button
    info: W.HTML
    hover_text: W.HTML
    best_text: W.HTML
    image_canvas: Canvas
    recon_canvas: Canvas
    slices_canvas: Canvas
    best_canvas: Canvas
    bars: bq.Bars
    means: bq.Scatter
    chart: bq.Figure
    children: tuple[W.Widget, ...]


def build(engine, layers: list[str], channels: int, image_px: tuple[int, int], slices: int,
          best_label: str, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The explorer's controls for ``engine``: the layers to probe, the first layer's
    ``channels``, the image canvas of ``image_px`` = (width, height), room for ``slices``
    activation slices, the best-input button's tooltip; laid out around the widget's
    ``status_bar`` and ``error`` box."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    rows = len(engine.dataset) if engine.dataset is not None else 1
    c = dict(
        layer_box=W.Dropdown(options=layers, description="layer", layout=wide(220)),
        row_box=W.BoundedIntText(min=0, max=max(rows - 1, 0), description="image",
                                 layout=wide(160), disabled=engine.dataset is None),
        channel_box=W.BoundedIntText(min=0, max=max(channels - 1, 0), description="channel",
                                     layout=wide(160)),
        best_button=W.Button(description="Best input (3 random starts)", icon="search",
                             tooltip=best_label, layout=wide(230)),
        info=W.HTML(""), hover_text=W.HTML(""), best_text=W.HTML(""),
        image_canvas=new_canvas(*image_px, "cnnw-fov-image"),
        recon_canvas=new_canvas(*recon_size(), "cnnw-recon"),
        slices_canvas=new_canvas(slices * (SLICE_PX + SLICE_GAP), SLICE_PX + HEADER,
                                 "cnnw-slices"),
        best_canvas=new_canvas(10, 10, "cnnw-best-canvas"),
    )
    for name, cls in (("layer_box", "cnnw-layer"), ("row_box", "cnnw-index"),
                      ("channel_box", "cnnw-channel"), ("info", "cnnw-fov-info"),
                      ("hover_text", "cnnw-hover"), ("best_button", "cnnw-best"),
                      ("best_text", "cnnw-best-text")):
        c[name].add_class(cls)
    chart = _chart()
    left = W.VBox([c["image_canvas"], c["hover_text"]],
                  layout=W.Layout(flex="0 0 auto", margin="0 12px 0 0"))
    right = W.VBox([c["recon_canvas"], c["info"],
                    W.HTML("<b>activation slices</b> (strongest channels of the layer)"),
                    c["slices_canvas"], c["best_text"], c["best_canvas"]])
    children = (W.HBox([c["layer_box"], c["row_box"], c["channel_box"], c["best_button"]]),
                status_bar, error, W.HBox([left, right]), chart["chart"])
    return Controls(**c, **chart, children=children)


def _chart() -> dict:
    """The active-features bar chart: this image's bars, the dataset's means."""
    xs, ys = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
    # bqplot's axes fail on marks without data ("invalid format: .undefinedg"): a hidden
    # placeholder point until the first statistics arrive
    bars = bq.Bars(x=[""], y=[0.0], scales={"x": xs, "y": ys}, colors=["#4a7ab7"],
                   labels=["this image"], display_legend=True, visible=False)
    means = bq.Scatter(x=[""], y=[0.0], scales={"x": xs, "y": ys}, colors=["#d04020"],
                       marker="diamond", default_size=40, labels=["dataset mean"],
                       display_legend=True, visible=False)
    chart = bq.Figure(marks=[bars, means],
                      axes=[bq.Axis(scale=xs, tick_rotate=-45,
                                    tick_style={"font-size": "9px", "text-anchor": "end"}),
                            bq.Axis(scale=ys, side="left", label="active features (fraction)")],
                      title="active features per layer",
                      layout=W.Layout(width="640px", height="320px"),
                      fig_margin={"top": 40, "bottom": 95, "left": 60, "right": 10})
    chart.add_class("cnnw-active-chart")
    return {"bars": bars, "means": means, "chart": chart}
