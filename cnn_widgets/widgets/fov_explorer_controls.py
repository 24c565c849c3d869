"""The controls, canvases, chart and layout of :class:`~.fov_explorer.FOVExplorer`
(construction only: no engine work, no state). The explorer's handlers are wired here."""
from __future__ import annotations

import bqplot as bq
import ipywidgets as W

from ._base import new_canvas, redraw_on_reconnect
from .layout.fov_explorer import HEADER, PANEL


def build(v) -> None:
    """Create the controls, canvases and chart of explorer ``v``, wire them and lay ``v`` out."""
    _controls(v)
    _canvases(v)
    v.chart = _chart(v)
    left = W.VBox([v.image_canvas, v.hover_text],
                  layout=W.Layout(flex="0 0 auto", margin="0 12px 0 0"))
    right = W.VBox([v.recon_canvas, v.info, W.HTML("<b>activation slices</b> "
                    "(strongest channels of the layer)"), v.slices_canvas,
                    v.best_text, v.best_canvas])
    v.children = [W.HBox([v.layer_box, v.index_box, v.channel_box, v.best_button]),
                  v.status_bar, v.error, W.HBox([left, right]), v.chart]


def _controls(v) -> None:
    e = v.engine
    v.layer_box = W.Dropdown(options=v.grid_layers, description="layer",
                             layout=W.Layout(width="220px"))
    n = len(e.dataset) if e.dataset is not None else 1
    v.index_box = W.BoundedIntText(min=0, max=max(n - 1, 0), description="image",
                                   layout=W.Layout(width="160px"), disabled=e.dataset is None)
    v.channel_box = W.BoundedIntText(min=0, max=0, description="channel",
                                     layout=W.Layout(width="160px"))
    v.info = W.HTML("")
    v.hover_text = W.HTML("")
    v.best_button = W.Button(description="Best input (3 random starts)", icon="search",
                             layout=W.Layout(width="230px"))
    v.best_button.on_click(lambda _b: v.search_best_input())
    v.best_text = W.HTML("")
    for wdg, cls in ((v.layer_box, "cnnw-layer"), (v.index_box, "cnnw-index"),
                     (v.channel_box, "cnnw-channel"), (v.info, "cnnw-fov-info"),
                     (v.hover_text, "cnnw-hover"), (v.best_button, "cnnw-best"),
                     (v.best_text, "cnnw-best-text")):
        wdg.add_class(cls)
    # (type: ignore: `or` as a guard, the value unused)
    v.layer_box.observe(lambda ch: v._syncing or setattr(v, "layer", ch["new"]),  # type: ignore[func-returns-value]
                        names="value")
    v.index_box.observe(lambda ch: v._syncing or setattr(v, "index", ch["new"]),  # type: ignore[func-returns-value]
                        names="value")
    v.channel_box.observe(v._on_channel_box, names="value")


def _canvases(v) -> None:
    _c, h, w = v.engine.input_shape
    v.image_canvas = new_canvas(w * v.k, h * v.k, "cnnw-fov-image", layers=2)
    v.image_canvas.on_mouse_down(v._click)
    v.image_canvas.on_mouse_move(v._move)
    v.image_canvas.on_mouse_out(lambda x, y: v._set_hover(None))
    redraw_on_reconnect(v.image_canvas[0], v._draw_image)
    redraw_on_reconnect(v.image_canvas[1], v._draw_overlay)
    v.recon_canvas = new_canvas(5 * (PANEL + 6), PANEL + HEADER, "cnnw-recon")
    v.slices_canvas = new_canvas(10, 10, "cnnw-slices")
    v.best_canvas = new_canvas(10, 10, "cnnw-best-canvas")
    redraw_on_reconnect(v.recon_canvas, v._draw_recon)
    redraw_on_reconnect(v.slices_canvas, v._draw_slices)
    redraw_on_reconnect(v.best_canvas, v._draw_best)


def _chart(v) -> bq.Figure:
    """The active-features bar chart: this image's bars (``v.bars``), the dataset's means
    (``v.means``)."""
    xs, ys = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=1.0)
    # bqplot's axes fail on marks without data ("invalid format: .undefinedg"): a hidden
    # placeholder point until the first statistics arrive
    v.bars = bq.Bars(x=[""], y=[0.0], scales={"x": xs, "y": ys}, colors=["#4a7ab7"],
                     labels=["this image"], display_legend=True, visible=False)
    v.means = bq.Scatter(x=[""], y=[0.0], scales={"x": xs, "y": ys}, colors=["#d04020"],
                         marker="diamond", default_size=40, labels=["dataset mean"],
                         display_legend=True, visible=False)
    chart = bq.Figure(marks=[v.bars, v.means],
                      axes=[bq.Axis(scale=xs, tick_rotate=-45,
                                    tick_style={"font-size": "9px", "text-anchor": "end"}),
                            bq.Axis(scale=ys, side="left", label="active features (fraction)")],
                      title="active features per layer",
                      layout=W.Layout(width="640px", height="320px"),
                      fig_margin={"top": 40, "bottom": 95, "left": 60, "right": 10})
    chart.add_class("cnnw-active-chart")
    return chart
