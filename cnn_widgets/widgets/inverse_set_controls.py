"""The controls, histograms, canvases and layout of
:class:`~.inverse_set_gallery.InverseSetGallery` (construction only: no engine work, no
state). The gallery's handlers are wired here."""
from __future__ import annotations

import bqplot as bq
import ipywidgets as W
import numpy as np

from ._base import new_canvas, redraw_on_reconnect
from .layout.inverse_set_gallery import COLS, DETAIL_SCALE, GAP, MAX_K, MAX_N


def build(g) -> None:
    """Create the controls, histograms and canvases of gallery ``g``, wire them and lay ``g``
    out."""
    _controls(g)
    _histograms(g)
    g.gallery_canvas = new_canvas(COLS * (g.cell[1] + GAP[1]), 10, "cnnw-gallery")
    h, w = g.engine.input_shape[1:]
    g.detail_canvas = new_canvas(4 * (w * DETAIL_SCALE + 8), h * DETAIL_SCALE + 18,
                                 "cnnw-detail")
    g.gallery_canvas.on_mouse_down(g._click)
    redraw_on_reconnect(g.gallery_canvas, g._draw_gallery)
    redraw_on_reconnect(g.detail_canvas, g._paint_detail)
    g.children = [
        W.HBox([g.layer_box, g.unit_box, g.add_button, g.remove_button]),
        g.constraints_html,
        W.HBox([W.VBox([g.data_fig, g.range_slider]), g.sample_fig]),
        W.HBox([g.K_box, g.n_box, g.run_button]),
        g.status_bar, g.error, g.summary,
        W.HBox([g.gallery_canvas, W.VBox([g.detail_canvas, g.detail_text],
                                         layout=W.Layout(margin="0 0 0 12px"))]),
    ]


def _controls(g) -> None:
    g.layer_box = W.Dropdown(options=g.engine.layer_names, description="layer",
                             layout=W.Layout(width="190px"))
    g.unit_box = W.Text(description="unit", continuous_update=False,
                        placeholder="3  or  c:y:x", layout=W.Layout(width="170px"))
    g.range_slider = W.FloatRangeSlider(description="range", readout_format=".2f",
                                        continuous_update=False, layout=W.Layout(width="440px"))
    g.add_button = W.Button(description="Add unit", icon="plus",
                            tooltip="intersection: add another unit with its own range",
                            layout=W.Layout(width="100px"))
    g.remove_button = W.Button(description="Remove", icon="minus", layout=W.Layout(width="90px"))
    short = {"description_width": "20px"}
    g.K_box = W.BoundedIntText(description="K", min=1, max=MAX_K, style=short,
                               layout=W.Layout(width="100px"))
    g.n_box = W.BoundedIntText(description="n", min=1, max=MAX_N, style=short,
                               layout=W.Layout(width="120px"))
    g.run_button = W.Button(description="Run", icon="play", button_style="primary",
                            layout=W.Layout(width="80px"))
    g.constraints_html, g.summary, g.detail_text = W.HTML(), W.HTML(), W.HTML()
    for w, cls in ((g.layer_box, "cnnw-layer"), (g.unit_box, "cnnw-unit"),
                   (g.range_slider, "cnnw-range"), (g.add_button, "cnnw-add-unit"),
                   (g.remove_button, "cnnw-remove-unit"), (g.K_box, "cnnw-K"),
                   (g.n_box, "cnnw-n"), (g.run_button, "cnnw-run"),
                   (g.constraints_html, "cnnw-constraints"), (g.summary, "cnnw-summary"),
                   (g.detail_text, "cnnw-detail-text")):
        w.add_class(cls)
    g.layer_box.observe(g._on_picker, names="value")
    g.unit_box.observe(g._on_picker, names="value")
    g.range_slider.observe(g._on_range, names="value")
    g.add_button.on_click(lambda _b: g.add_unit())
    g.remove_button.on_click(lambda _b: g.remove_unit())
    g.run_button.on_click(lambda _b: g.run())


def _histogram(marks: list, x: bq.Scale, y: bq.Scale, title: str, width: int,
               x_ticks: int) -> bq.Figure:
    return bq.Figure(marks=marks, title=title,
                     axes=[bq.Axis(scale=x, num_ticks=x_ticks),
                           bq.Axis(scale=y, side="left", num_ticks=3)],
                     layout=W.Layout(width=f"{width}px", height="200px"),
                     fig_margin=dict(top=30, bottom=25, left=40, right=10))


def _histograms(g) -> None:
    """The unit's values on the dataset with the range's lines, and the samples' values."""
    hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
    # hidden with a non-empty range until the dataset values arrive: drawn from a one-point
    # domain, bqplot's axis fails ("invalid format: .undefinedg") and the bars never show
    g.data_bars = bq.Bars(x=np.arange(2.0), y=np.ones(2), scales={"x": hx, "y": hy},
                          colors=["#9ab"], padding=0.05, visible=False)
    g.range_lines = bq.Lines(x=np.zeros((2, 2)), y=np.zeros((2, 2)), scales={"x": hx, "y": hy},
                             colors=["#d00"], stroke_width=2)
    g.data_fig = _histogram([g.data_bars, g.range_lines], hx, hy,
                            "the unit on the dataset (red: range)", 460, 6)
    sx, sy = bq.LinearScale(), bq.LinearScale(min=0.0, max=1.0)
    g.sample_y = sy       # its max is set with the counts: from all zeros bqplot never rescales
    g.sample_bars = bq.Bars(x=np.arange(2.0), y=np.zeros(2), scales={"x": sx, "y": sy},
                            colors=["#c63"], padding=0.05, visible=False)   # as data_bars
    g.sample_fig = _histogram([g.sample_bars], sx, sy, "samples inside the range", 360, 5)
    for fig, cls in ((g.data_fig, "cnnw-data-hist"), (g.sample_fig, "cnnw-sample-hist")):
        fig.add_class(cls)
