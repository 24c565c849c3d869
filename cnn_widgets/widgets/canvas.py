"""Canvas helpers of every widget: a canvas that keeps its pixels (``pictures.Surface``) at its
CSS size, exact RGBA pixels, a paint module's sheet, a hint text, redrawing for a new front end,
and the one drawing lock with its batching."""
from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

import ipywidgets as W
import numpy as np
from ipycanvas import Canvas, hold_canvas
from ipycanvas.canvas import _CANVAS_MANAGER

from ..engine.core.errors import InvalidArgument
from . import pictures

# ipycanvas routes every canvas through one shared manager that remembers the current canvas,
# so two threads drawing on two canvases could interleave; all drawing holds this lock.
CANVAS_LOCK = threading.RLock()


@contextmanager
def drawing():
    """Hold the drawing lock and batch the canvas commands into one message that names its
    canvas first."""
    with CANVAS_LOCK, hold_canvas():
        # ipycanvas 0.14 sends switchCanvas only when the canvas changes; a front end that
        # connected since (Voila, a reload) has no current canvas, fails the batch, and that
        # failure stops every later drawing on the page (the manager chains its messages).
        # Forgetting the current canvas makes each batch name its own.
        _CANVAS_MANAGER._current_canvas = None
        yield


def new_canvas(width: int, height: int, cls: str, layers: int | None = None):
    """A canvas whose CSS size equals its pixel size, with DOM class ``cls``; ``layers``: that
    many layers (``c[i]``) instead of one. It keeps the pixels put on it (``pictures.Surface``)."""
    layout = W.Layout(width=f"{width}px", height=f"{height}px")
    c = pictures.Surface(layers or 1, width=width, height=height, layout=layout)
    c.add_class(cls)
    return c


def resize_canvas(canvas: Canvas, width: int, height: int) -> None:
    """Give ``canvas`` a new pixel size (and the same CSS size) if it differs."""
    if (canvas.width, canvas.height) != (width, height):
        canvas.width, canvas.height = width, height
        canvas.layout.width, canvas.layout.height = f"{width}px", f"{height}px"


def put_rgba(canvas: Canvas, img: np.ndarray, x: int = 0, y: int = 0) -> None:
    """Exact pixels: RGBA uint8 goes out losslessly (3-channel arrays would be JPEG)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 4:
        raise InvalidArgument(f"expected an (H, W, 4) uint8 image; got {img.shape} {img.dtype}")
    canvas.put_image_data(img, x, y)


def paint_sheet(canvas: Canvas, sheet: np.ndarray, *, font: str = "11px sans-serif",
                resize: bool = True) -> None:
    """Clear ``canvas`` (first sized to the sheet unless ``resize`` is False), put the RGBA
    ``sheet`` on it and set dark text in ``font`` for the captions the caller writes next.
    Call inside :func:`drawing`."""
    if resize:
        resize_canvas(canvas, sheet.shape[1], sheet.shape[0])
    canvas.clear()
    put_rgba(canvas, sheet)
    canvas.fill_style, canvas.font = "#222", font


def placeholder(canvas: Canvas, text: str) -> None:
    """An empty canvas with a grey hint (what to click for it to fill)."""
    with drawing():
        canvas.clear()
        canvas.fill_style, canvas.font = "#555", "13px sans-serif"
        canvas.fill_text(text, 4, 40)


def redraw_on_reconnect(canvas: Canvas, redraw: Callable[[], None]) -> None:
    """A canvas keeps no pixels: draw again for every new front end (reload, second view)."""
    def ready():
        with CANVAS_LOCK:
            redraw()
    canvas.on_client_ready(ready)
