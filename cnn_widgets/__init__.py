"""cnn_widgets: see how a convolutional network decides, live in a notebook.

``Engine`` is the analysis core (pure PyTorch); the widgets are imported lazily so that
``import cnn_widgets`` stays light and scripts need no widget library.
"""
from .engine import Engine

__version__ = "0.1.0"
__all__ = ["Engine", "EtalonGrid"]


def __getattr__(name):
    if name == "EtalonGrid":
        from .widgets.etalon_grid import EtalonGrid
        return EtalonGrid
    raise AttributeError(f"module 'cnn_widgets' has no attribute {name!r}")
