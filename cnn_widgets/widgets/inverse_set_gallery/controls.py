"""The controls, histograms, canvases and layout of
:class:`~cnn_widgets.widgets.inverse_set_gallery.InverseSetGallery`: built here and returned as
one frozen :class:`Controls`; nothing is assigned onto the widget and nothing is wired here
(the widget links and wires them)."""
from __future__ import annotations

from dataclasses import dataclass

import bqplot as bq
import ipywidgets as W
import numpy as np
from ipycanvas import Canvas

from ..canvas import new_canvas
from ..pickers import class_picker
from .geometry import MAX_K, MAX_N, detail_size, gallery_width


@dataclass(frozen=True)
class Controls:
    """Every widget the gallery shows; ``children``: them laid out (the gallery's children).
    ``data_bars``/``range_lines``: the picker's unit on the dataset and the range over it;
    ``sample_bars`` (on ``sample_scale``): the samples' values inside the range."""
    layer_box: W.Dropdown
    unit_box: W.Text
    class_box: W.Combobox
    range_slider: W.FloatRangeSlider
    add_button: W.Button
    remove_button: W.Button
    K_box: W.BoundedIntText
    n_box: W.BoundedIntText
    run_button: W.Button
    constraints_html: W.HTML
    summary: W.HTML
    detail_text: W.HTML
    gallery_canvas: Canvas
    detail_canvas: Canvas
    data_bars: bq.Bars
    range_lines: bq.Lines
    data_fig: bq.Figure
    sample_bars: bq.Bars
    sample_scale: bq.LinearScale
    sample_fig: bq.Figure
    children: tuple[W.Widget, ...]


def build(engine, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The gallery's controls for ``engine``, laid out around the widget's ``status_bar`` and
    ``error`` box."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    short = {"description_width": "20px"}
    c = dict(
        layer_box=W.Dropdown(options=engine.layer_names, description="layer", layout=wide(190)),
        unit_box=W.Text(description="unit", continuous_update=False,
                        placeholder="3  or  c:y:x (Enter)", layout=wide(170)),
        class_box=class_picker(engine.class_names, "class", 300),
        range_slider=W.FloatRangeSlider(description="range", readout_format=".2f",
                                        continuous_update=False, layout=wide(440)),
        add_button=W.Button(description="Add unit", icon="plus", layout=wide(100),
                            tooltip="intersection: add another unit with its own range"),
        remove_button=W.Button(description="Remove", icon="minus", layout=wide(90)),
        K_box=W.BoundedIntText(description="K", min=1, max=MAX_K, style=short, layout=wide(100)),
        n_box=W.BoundedIntText(description="n", min=1, max=MAX_N, style=short, layout=wide(120)),
        run_button=W.Button(description="Run", icon="play", button_style="primary",
                            layout=wide(80)),
        constraints_html=W.HTML(), summary=W.HTML(), detail_text=W.HTML(),
        gallery_canvas=new_canvas(gallery_width(), 60, "cnnw-gallery"),
        detail_canvas=new_canvas(*detail_size(), "cnnw-detail"),
    )
    for name, cls in (("layer_box", "layer"), ("unit_box", "unit"), ("class_box", "class"),
                      ("range_slider", "range"), ("add_button", "add-unit"),
                      ("remove_button", "remove-unit"), ("K_box", "K"), ("n_box", "n"),
                      ("run_button", "run"), ("constraints_html", "constraints"),
                      ("summary", "summary"), ("detail_text", "detail-text")):
        c[name].add_class(f"cnnw-{cls}")
    c |= _histograms()
    children = (
        W.HBox([c["layer_box"], c["unit_box"], c["class_box"], c["add_button"],
                c["remove_button"]]),
        c["constraints_html"],
        W.HBox([W.VBox([c["data_fig"], c["range_slider"]]), c["sample_fig"]]),
        W.HBox([c["K_box"], c["n_box"], c["run_button"]]),
        status_bar, error, c["summary"],
        W.HBox([c["gallery_canvas"], W.VBox([c["detail_canvas"], c["detail_text"]],
                                            layout=W.Layout(margin="0 0 0 12px"))]),
    )
    return Controls(**c, children=children)


def _histogram(marks: list, x: bq.Scale, y: bq.Scale, title: str, width: int,
               x_ticks: int) -> bq.Figure:
    return bq.Figure(marks=marks, title=title,
                     axes=[bq.Axis(scale=x, num_ticks=x_ticks),
                           bq.Axis(scale=y, side="left", num_ticks=3)],
                     layout=W.Layout(width=f"{width}px", height="200px"),
                     fig_margin=dict(top=30, bottom=25, left=40, right=10))


def _histograms() -> dict:
    """The unit's values on the dataset with the range's lines, and the samples' values."""
    hx, hy = bq.LinearScale(), bq.LinearScale(min=0.0)
    # hidden with a two-point placeholder until the dataset values arrive: drawn from a
    # one-point domain, bqplot's axis fails ("invalid format: .undefinedg") and the bars
    # never show
    data_bars = bq.Bars(x=np.arange(2.0), y=np.ones(2), scales={"x": hx, "y": hy},
                        colors=["#9ab"], padding=0.05, visible=False)
    range_lines = bq.Lines(x=np.zeros((2, 2)), y=np.zeros((2, 2)), scales={"x": hx, "y": hy},
                           colors=["#d00"], stroke_width=2)
    data_fig = _histogram([data_bars, range_lines], hx, hy,
                          "the unit on the dataset (red: range)", 460, 6)
    # the samples' y scale gets its max with the counts: from all zeros bqplot never rescales
    sx, sy = bq.LinearScale(), bq.LinearScale(min=0.0, max=1.0)
    sample_bars = bq.Bars(x=np.arange(2.0), y=np.zeros(2), scales={"x": sx, "y": sy},
                          colors=["#c63"], padding=0.05, visible=False)   # as data_bars
    sample_fig = _histogram([sample_bars], sx, sy, "samples inside the range", 360, 5)
    data_fig.add_class("cnnw-data-hist")
    sample_fig.add_class("cnnw-sample-hist")
    return dict(data_bars=data_bars, range_lines=range_lines, data_fig=data_fig,
                sample_bars=sample_bars, sample_scale=sy, sample_fig=sample_fig)
