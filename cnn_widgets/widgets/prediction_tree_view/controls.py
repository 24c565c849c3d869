"""The controls, canvases and layout of
:class:`~cnn_widgets.widgets.prediction_tree_view.PredictionTreeView`: built here and returned
as one frozen :class:`Controls`; nothing is assigned onto the widget and nothing is wired here
(the widget links and wires them)."""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
from ipycanvas import Canvas

from ..canvas import new_canvas
from ..pad import DrawingPad
from ..pickers import class_picker
from .geometry import CAT_SIZE, TREE_SIZE

PAD_PX = 112                   # about this many px for the drawing pad


@dataclass(frozen=True)
class Controls:
    category_box: W.Combobox
    layer_box: W.Dropdown
    noise_box: W.Checkbox
    image_box: W.BoundedIntText
    up_button: W.Button
    top_button: W.Button
    breadcrumb: W.HTML
    hover: W.Label
    path_text: W.HTML
    detail_text: W.HTML
    cat_canvas: Canvas
    tree_canvas: Canvas
    detail_canvas: Canvas
    drawing_pad: DrawingPad
    children: tuple[W.Widget, ...]


def build(engine, status_bar: W.Widget, error: W.Widget) -> Controls:
    """The view's controls for ``engine`` (with a dataset), laid out around the widget's
    ``status_bar`` and ``error`` box."""
    wide = (lambda px: W.Layout(width=f"{px}px"))
    spatial = [i.name for i in engine.layers if len(i.output_shape) == 3]
    c = dict(
        category_box=class_picker(engine.class_names, "category", 280),
        layer_box=W.Dropdown(options=spatial, description="layer", layout=wide(190)),
        noise_box=W.Checkbox(description="noise as a category", indent=False, layout=wide(170)),
        image_box=W.BoundedIntText(min=0, max=len(engine.dataset) - 1, description="image",
                                   layout=wide(150)),
        up_button=W.Button(description="zoom out", icon="search-minus", layout=wide(100)),
        top_button=W.Button(description="whole", icon="sitemap", layout=wide(90)),
        breadcrumb=W.HTML("", layout=W.Layout(width=f"{CAT_SIZE[1] - 200}px")),
        hover=W.Label(""),
        path_text=W.HTML(""),
        detail_text=W.HTML("Click a node of the prediction tree."),
        cat_canvas=new_canvas(CAT_SIZE[1], CAT_SIZE[0], "cnnw-categories"),
        tree_canvas=new_canvas(TREE_SIZE[1], TREE_SIZE[0], "cnnw-tree"),
        detail_canvas=new_canvas(10, 10, "cnnw-filter-images"),
        drawing_pad=DrawingPad(engine.input_shape, max(1, PAD_PX // max(engine.input_shape[1:])),
                               row=True),
    )
    for name, cls in (("category_box", "cnnw-category"), ("layer_box", "cnnw-layer"),
                      ("noise_box", "cnnw-noise"), ("image_box", "cnnw-image"),
                      ("up_button", "cnnw-zoom-out"), ("top_button", "cnnw-zoom-top"),
                      ("breadcrumb", "cnnw-breadcrumb"), ("hover", "cnnw-hover"),
                      ("path_text", "cnnw-path"), ("detail_text", "cnnw-detail-text")):
        c[name].add_class(cls)
    pad = W.VBox([W.HTML("<b>or draw an image</b> (its path replaces the red one)"),
                  c["drawing_pad"]])
    detail = W.VBox([c["detail_text"], c["detail_canvas"], pad],
                    layout=W.Layout(width="400px", margin="0 0 0 10px"))
    hierarchy = W.VBox([W.HBox([c["up_button"], c["top_button"], c["breadcrumb"]]),
                        c["cat_canvas"]])
    children = (
        W.HBox([c["category_box"], c["layer_box"], c["noise_box"], c["image_box"]]),
        status_bar, error, c["hover"],
        W.HBox([hierarchy, detail]),
        c["tree_canvas"], c["path_text"],
    )
    return Controls(**c, children=children)
