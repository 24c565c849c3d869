"""The controls, canvases and layout of :class:`~.etalon_grid.EtalonGrid` (construction
only: no engine work, no state). The grid's handlers are wired here."""
from __future__ import annotations

import ipywidgets as W

from ._base import new_canvas, redraw_on_reconnect
from .layout.etalon_grid import detail_size
from .pad import DrawingPad

PAD_SCALE = 8        # canvas px per input pixel of the drawing pad


def build(g) -> None:
    """Create the controls and canvases of grid ``g``, wire them and lay ``g`` out."""
    _controls(g)
    _canvases(g)
    right = W.VBox([g.detail_canvas, g.detail_text, W.HTML("<b>Draw a digit</b>"),
                    g.drawing_pad, g.pad_readout, g.report],
                   layout=W.Layout(width=f"{g.detail_canvas.width + 12}px",
                                   margin="0 0 0 12px", flex="0 0 auto"))
    g.children = [
        W.HBox([g.layer_box, g.units_box, g.indices_box, g.apply_button]),
        W.HBox([g.regions_button, g.paper_button]),
        g.status_bar, g.error,
        W.HBox([W.VBox([g.grid_canvas, g.pad_canvas_row], layout=W.Layout(flex="0 0 auto")),
                right]),
    ]


def _controls(g) -> None:
    g.layer_box = W.Dropdown(options=g.engine.layer_names, description="layer",
                             layout=W.Layout(width="200px"))
    g.units_box = W.Text(description="units", layout=W.Layout(width="260px"),
                         placeholder="0-9  or  c:y:x, …")
    g.indices_box = W.Text(description="inputs", layout=W.Layout(width="300px"),
                           placeholder="dataset rows, e.g. 0, 5, 10-12")
    g.apply_button = W.Button(description="Show", layout=W.Layout(width="70px"))
    g.regions_button = W.Button(description="Count linear regions", icon="th",
                                layout=W.Layout(width="190px"))
    g.paper_button = W.Button(description="Check with the paper's algorithm", icon="check",
                              layout=W.Layout(width="260px"))
    g.pad_readout = W.Label("", layout=W.Layout(width="auto"))
    g.detail_text = W.HTML("")
    g.report = W.HTML("")
    for w, cls in ((g.regions_button, "cnnw-regions"), (g.paper_button, "cnnw-paper"),
                   (g.pad_readout, "cnnw-pad-readout"), (g.detail_text, "cnnw-detail-text"),
                   (g.report, "cnnw-report"), (g.layer_box, "cnnw-layer"),
                   (g.units_box, "cnnw-units"), (g.indices_box, "cnnw-indices"),
                   (g.apply_button, "cnnw-apply")):
        w.add_class(cls)
    g.layer_box.observe(g._on_layer_box, names="value")
    g.apply_button.on_click(lambda _b: g._apply_text())
    for box in (g.units_box, g.indices_box):   # Enter or leaving the box applies it
        box.continuous_update = False
        box.observe(lambda _c: g._syncing or g._apply_text(), names="value")
    g.regions_button.on_click(lambda _b: g.count_regions())
    g.paper_button.on_click(lambda _b: g.check_with_paper())


def _canvases(g) -> None:
    g.grid_canvas = new_canvas(10, 10, "cnnw-grid")
    g.detail_canvas = new_canvas(*detail_size(g.engine.input_shape[1:]), "cnnw-detail")
    g.drawing_pad = DrawingPad(g.engine.input_shape, PAD_SCALE)
    g.drawing_pad.on_change(lambda _kind: g._request_pad())
    g.pad_canvas, g.clear_button = g.drawing_pad.canvas, g.drawing_pad.clear_button
    g.pad_canvas_row = new_canvas(10, 10, "cnnw-pad-row")
    g.grid_canvas.on_mouse_down(lambda x, y: g._click("grid", x, y))
    g.pad_canvas_row.on_mouse_down(lambda x, y: g._click("pad", x, y))
    redraw_on_reconnect(g.grid_canvas, g._draw_grid)
    redraw_on_reconnect(g.pad_canvas_row, g._draw_pad_row)
    redraw_on_reconnect(g.detail_canvas, g._draw_detail)
