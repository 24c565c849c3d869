"""DrawingPad: a canvas to draw an input image on with the mouse, and its Clear button."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np

from . import draw
from .canvas import drawing, new_canvas, put_rgba, redraw_on_reconnect

BRUSH_SIGMA = 0.9    # brush radius in input pixels


class DrawingPad(W.Box):
    """A drawing pad for one input image.

    shape: the image's (C, H, W); scale: canvas px per input pixel; sigma: the brush radius in
    input pixels; row: the Clear button beside the canvas (default: below it).
    ``image`` is the (C, H, W) float32 drawing in [0, 1], changed in place (``version``
    counts the changes); callbacks given to
    :meth:`on_change` run after each stroke segment with ``"stroke"`` and after :meth:`clear`
    with ``"clear"``.
    """

    def __init__(self, shape: Sequence[int], scale: int, *, sigma: float = BRUSH_SIGMA,
                 row: bool = False, **kwargs):
        super().__init__(layout=W.Layout(flex_flow="row" if row else "column"), **kwargs)
        self.add_class("cnnw-drawing-pad")
        self.scale, self.sigma = int(scale), float(sigma)
        self.image = np.zeros(tuple(shape), dtype=np.float32)
        self.version = 0
        self._last_point = None
        self._callbacks: list[Callable[[str], None]] = []
        h, w = self.image.shape[1:]
        self.canvas = new_canvas(w * self.scale, h * self.scale, "cnnw-pad")
        self.canvas.layout.border = "1px solid #888"
        self.clear_button = W.Button(description="Clear pad", layout=W.Layout(width="100px"))
        self.clear_button.add_class("cnnw-clear")
        self.clear_button.on_click(lambda _b: self.clear())
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_mouse_out(self._up)
        redraw_on_reconnect(self.canvas, self.draw)
        self.children = [self.canvas, self.clear_button]

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback("stroke")`` after each stroke segment, ``callback("clear")`` after
        :meth:`clear`."""
        self._callbacks.append(callback)

    def _notify(self, kind: str) -> None:
        self.version += 1
        for callback in self._callbacks:
            callback(kind)

    def _down(self, x, y):
        self._last_point = None
        self._stroke(x, y)

    def _move(self, x, y):
        if self._last_point is not None:
            self._stroke(x, y)

    def _up(self, x, y):
        self._last_point = None

    def _stroke(self, x, y):
        """Ink a segment from the last point to (x, y) (canvas px)."""
        p = np.array([y, x], dtype=np.float64) / self.scale - 0.5
        start = p if self._last_point is None else self._last_point
        self._last_point = p
        draw.ink(self.image, start, p, self.sigma)
        self.draw()
        self._notify("stroke")

    def clear(self) -> None:
        """Erase the drawing."""
        self.image[:] = 0
        self.draw()
        self._notify("clear")

    def draw(self) -> None:
        """Paint the drawing on the canvas."""
        with drawing():
            put_rgba(self.canvas, draw.upscale(draw.image(self.image), self.scale))
