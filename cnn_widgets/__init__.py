"""cnn_widgets: see how a convolutional network decides, live in a notebook.

``Engine`` is the analysis core (pure PyTorch); the widgets are imported lazily so that
``import cnn_widgets`` stays light and scripts need no widget library.
"""
from .engine import Engine

__version__ = "0.1.0"
_LAZY = {  # name -> module that defines it, imported on first use
    "EtalonGrid": "cnn_widgets.widgets.etalon_grid",
    "FOVExplorer": "cnn_widgets.widgets.fov_explorer",
    "MaximizerPanel": "cnn_widgets.widgets.maximizer_panel",
    "PredictionTreeView": "cnn_widgets.widgets.prediction_tree_view",
    "InverseSetGallery": "cnn_widgets.widgets.inverse_set_gallery",
    "SanityCheckView": "cnn_widgets.widgets.sanity_check_view",
}
__all__ = ["Engine", "objectives", *_LAZY]


def __getattr__(name):
    import importlib

    if name == "objectives":
        return importlib.import_module("cnn_widgets.engine.visualization.objectives")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnn_widgets' has no attribute {name!r}")
