"""Views: traitlets state, ipycanvas/bqplot drawing, event wiring. No numerics here."""
from .etalon_grid import EtalonGrid
from .snapshot import settle

__all__ = ["EtalonGrid", "settle"]
