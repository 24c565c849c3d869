"""Views: traitlets state, ipycanvas/bqplot drawing, event wiring. No numerics here."""
from ._base import settle
from .etalon_grid import EtalonGrid

__all__ = ["EtalonGrid", "settle"]
