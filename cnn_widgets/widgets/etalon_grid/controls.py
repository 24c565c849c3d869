"""The controls, canvases and layout of :class:`~cnn_widgets.widgets.etalon_grid.EtalonGrid`:
built here and returned as one frozen :class:`Controls`; nothing is assigned onto the widget
and nothing is wired here (the widget links and wires them)."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
from ipycanvas import Canvas

from ..canvas import new_canvas
from ..pad import DrawingPad
from ..pickers import class_picker
from .geometry import detail_size

PAD_SCALE = 8        # canvas px per input pixel of the drawing pad (small inputs)
PAD_TARGET = 224     # about this many px for the pad


@dataclass(frozen=True)
class Controls:
    """Every widget the grid shows; ``children``: them laid out (the grid's children)."""
    layer_box: W.Dropdown
    units_box: W.Text
    indices_box: W.Text
    class_box: W.Combobox
    regions_button: W.Button
    paper_button: W.Button
    grid_canvas: Canvas
    pad_row_canvas: Canvas
    detail_canvas: Canvas
    detail_text: W.HTML
    drawing_pad: DrawingPad
    pad_readout: W.Label
    report: W.HTML
    children: tuple[W.Widget, ...]


def build(engine, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The grid's controls for ``engine``, laid out around the widget's ``status_bar`` and
    ``error`` box."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    c = dict(
        layer_box=W.Dropdown(options=engine.layer_names, description="layer", layout=wide(200)),
        units_box=W.Text(description="units", layout=wide(260), continuous_update=False,
                         placeholder="0-9  or  c:y:x, …  or  top 5 (Enter)"),
        indices_box=W.Text(description="inputs", layout=wide(300), continuous_update=False,
                           placeholder="dataset rows, e.g. 0, 5, 10-12 (Enter)"),
        class_box=class_picker(engine.class_names, "add class", 320),
        regions_button=W.Button(description="Count linear regions", icon="th", layout=wide(190)),
        paper_button=W.Button(description="Check with the paper's algorithm", icon="check",
                              layout=wide(260)),
        grid_canvas=new_canvas(10, 10, "cnnw-grid"),
        pad_row_canvas=new_canvas(10, 10, "cnnw-pad-row"),
        detail_canvas=new_canvas(*detail_size(engine.input_shape[1:]), "cnnw-detail"),
        detail_text=W.HTML(""),
        drawing_pad=DrawingPad(engine.input_shape,
                               max(1, min(PAD_SCALE, PAD_TARGET // max(engine.input_shape[1:])))),
        pad_readout=W.Label("", layout=W.Layout(width="auto")),
        report=W.HTML(""),
    )
    for name, cls in (("regions_button", "cnnw-regions"), ("paper_button", "cnnw-paper"),
                      ("pad_readout", "cnnw-pad-readout"), ("detail_text", "cnnw-detail-text"),
                      ("report", "cnnw-report"), ("layer_box", "cnnw-layer"),
                      ("units_box", "cnnw-units"), ("indices_box", "cnnw-indices"),
                      ("class_box", "cnnw-class")):
        c[name].add_class(cls)
    right = W.VBox([c["detail_canvas"], c["detail_text"], W.HTML("<b>Draw an input</b>"),
                    c["drawing_pad"], c["pad_readout"], c["report"]],
                   layout=W.Layout(width=f"{c['detail_canvas'].width + 12}px",
                                   margin="0 0 0 12px", flex="0 0 auto"))
    children = (
        W.HBox([c["layer_box"], c["units_box"], c["indices_box"]]),
        W.HBox([c["class_box"], c["regions_button"], c["paper_button"]]),
        status_bar, error,
        W.HBox([W.VBox([c["grid_canvas"], c["pad_row_canvas"]], layout=W.Layout(flex="0 0 auto")),
                right]),
    )
    return Controls(**c, children=children)
