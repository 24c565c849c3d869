"""What a widget shows, kept on the kernel side, so that it outlives the kernel.

ipycanvas pixels are not widget state: a saved notebook shows blank canvases where no kernel
runs. So every canvas (:class:`Surface`) keeps the last pixels put on each of its layers and,
:data:`DELAY` s after they last changed, stores them as PNG in the layer's ``image_data``
(widget state, drawn by ipycanvas when its model is created: nbconvert's HTML, nbviewer, a
reopened notebook). :func:`compose` lays a widget's canvases out as one RGBA picture (its
snapshot). Kept: pixels put with ``put_image_data``, and a paint module's sheet with its
captions (:func:`keep`); not kept: other text and vector drawing. A cleared layer stores an
empty picture.
"""
from __future__ import annotations

import io
import re
import threading
import time
import weakref

import ipywidgets as W
import numpy as np
from ipycanvas import Canvas, MultiCanvas

#: seconds after the last change of a layer's pixels before their PNG goes into the widget
#: state: a stroke or a live result redraws many times a second, and PNG encoding is slow
DELAY = 0.5
GAP = 4   # px between two pictures laid side by side or one below the other


class Layer(Canvas):
    """A canvas layer that keeps a copy of the pixels put on it (``put_image_data``), cleared
    by ``clear()`` and by a new size (a browser canvas loses its pixels when resized)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.observe(lambda _change: _STORE.set(self, None), names=["width", "height"])

    def put_image_data(self, image_data, x=0, y=0):
        super().put_image_data(image_data, x, y)
        _STORE.put(self, image_data, int(x), int(y))

    def clear(self):
        super().clear()
        _STORE.set(self, None)

    def close(self):
        _STORE.drop(self)             # closed: nothing more is stored for it
        super().close()


class Surface(MultiCanvas):
    """A canvas of ``layers`` :class:`Layer` s that takes the drawing API of a plain ipycanvas
    ``Canvas`` for its first layer.

    Shown through ipycanvas's MultiCanvas view on purpose: that view redraws when a layer's
    saved picture (``image_data``, decoded asynchronously) is ready, while a plain Canvas view
    copies its model once when it renders and stayed blank in 2 of 6 reopened notebooks in
    JupyterLab (ipycanvas 0.14.3).
    """

    def __init__(self, layers: int = 1, **kwargs):
        # = MultiCanvas.__init__, with Layer for Canvas
        super(MultiCanvas, self).__init__(_canvases=[Layer() for _ in range(layers)], **kwargs)
        self.on_msg(self._canvases[-1]._handle_frontend_event)

    def __getattr__(self, name):   # only for names not found on the Surface itself
        layers = self.__dict__.get("_trait_values", {}).get("_canvases")
        if not layers or name.startswith("__") or not hasattr(Canvas, name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return getattr(layers[0], name)

    def __setattr__(self, name, value):
        if name in Canvas.ATTRS:       # fill_style, font, ...: drawing state of the first layer
            setattr(self._canvases[0], name, value)
        else:
            super().__setattr__(name, value)


def pixels(canvas) -> np.ndarray | None:
    """The (H, W, 4) uint8 picture of a :class:`Layer` or a :class:`Surface` (its layers
    composed in order) as last put; None if nothing was put since it was last cleared."""
    layers = canvas._canvases if isinstance(canvas, MultiCanvas) else [canvas]
    kept = [p for p in (_STORE.get(layer) for layer in layers) if p is not None]
    if not kept:
        return None
    out = np.zeros((canvas.height, canvas.width, 4), np.uint8)
    for p in kept:
        _over(out, p, 0, 0)
    return out


def compose(widget: W.Widget) -> np.ndarray | None:
    """The pictures of the canvases inside ``widget``, laid out as its boxes lay them out
    (VBox or a column flex box: one below the other, other boxes: side by side, :data:`GAP`
    px apart; hidden widgets left out; an empty canvas is a transparent area of its size).
    Everything that is not a canvas (controls, text, bqplot charts) is left out. None: no
    canvas inside."""
    if _hidden(widget):
        return None
    if isinstance(widget, MultiCanvas):
        p = pixels(widget)
        return np.zeros((widget.height, widget.width, 4), np.uint8) if p is None else p
    if not isinstance(widget, W.Box):
        return None
    parts = [p for p in (compose(c) for c in widget.children) if p is not None]
    if not parts:
        return None
    axis = 0 if _vertical(widget) else 1
    size = sum(p.shape[axis] for p in parts) + GAP * (len(parts) - 1)
    other = max(p.shape[1 - axis] for p in parts)
    out = np.zeros((size, other, 4) if axis == 0 else (other, size, 4), np.uint8)
    at = 0
    for p in parts:
        if axis == 0:
            out[at:at + p.shape[0], :p.shape[1]] = p
        else:
            out[:p.shape[0], at:at + p.shape[1]] = p
        at += p.shape[axis] + GAP
    return out


def keep(canvas, rgba: np.ndarray) -> None:
    """Keep ``rgba`` (a sheet with its captions written in: :func:`with_captions`) as what the
    first layer of ``canvas`` shows, in place of the pixels put on it."""
    layer = canvas._canvases[0] if isinstance(canvas, MultiCanvas) else canvas
    out = np.zeros((layer.height, layer.width, 4), np.uint8)
    _over(out, rgba, 0, 0)
    _STORE.set(layer, out)


def with_captions(rgba: np.ndarray, captions, font: str) -> np.ndarray:
    """``rgba`` with each caption (``.text`` at ``.x, .y`` canvas px, the baseline's left end,
    as a canvas's ``fill_text`` writes it) in dark grey, in Pillow's font at the size of the
    CSS ``font`` ("11px sans-serif")."""
    from PIL import Image, ImageDraw, ImageFont

    if not captions:
        return rgba
    size = re.search(r"(\d+(?:\.\d+)?)px", font)
    face = ImageFont.load_default(size=float(size.group(1)) if size else 11.0)
    img = Image.fromarray(np.ascontiguousarray(rgba))
    draw = ImageDraw.Draw(img)
    for c in captions:
        draw.text((c.x, c.y), c.text, fill=(34, 34, 34, 255), font=face, anchor="ls")
    return np.asarray(img)


def painted(widget: W.Widget) -> bool:
    """Whether any canvas inside ``widget`` (hidden or not) holds pixels."""
    if isinstance(widget, MultiCanvas):
        return pixels(widget) is not None
    return isinstance(widget, W.Box) and any(painted(c) for c in widget.children)


def on_white(rgba: np.ndarray) -> np.ndarray:
    """``rgba`` over an opaque white page (what a notebook shows)."""
    out = np.full(rgba.shape, 255, np.uint8)
    _over(out, rgba, 0, 0)
    return out


def png(rgba: np.ndarray) -> bytes:
    """(H, W, 4) uint8 -> PNG bytes (lossless)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba)).save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def store_now() -> None:
    """Put every pending picture into its layer's ``image_data`` now, and send every layer's
    picture to the front end again: a runner without a browser (nbclient) records only the
    messages that arrive while a cell runs, and a picture stored between two cells is lost
    to it. Call it in the last cell before such a notebook is saved."""
    _STORE.flush(resend=True)


def _vertical(box: W.Box) -> bool:
    return isinstance(box, W.VBox) or "column" in (box.layout.flex_flow or "")


def _hidden(widget: W.Widget) -> bool:
    layout = getattr(widget, "layout", None)
    return layout is not None and (layout.display == "none" or layout.visibility == "hidden")


def _over(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Draw ``src`` (h, w, 4) over ``dst`` at (x, y), clipped, like a canvas's drawImage
    (source-over), in place."""
    h, w = dst.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + src.shape[1], w), min(y + src.shape[0], h)
    if x1 <= x0 or y1 <= y0:
        return
    s = src[y0 - y:y1 - y, x0 - x:x1 - x]
    d = dst[y0:y1, x0:x1]
    if (s[..., 3] == 255).all():
        d[:] = s
        return
    sa = s[..., 3:4] / 255.0
    da = d[..., 3:4] / 255.0
    a = sa + da * (1 - sa)
    rgb = (s[..., :3] * sa + d[..., :3] * da * (1 - sa)) / np.maximum(a, 1e-12)
    d[..., :3] = np.rint(rgb)
    d[..., 3:4] = np.rint(a * 255)


def _as_rgba(img) -> np.ndarray | None:
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return a


class _Store:
    """Each layer's pixels, and one daemon thread that puts their PNG into the layer's
    ``image_data`` :data:`DELAY` s after their last change. Layers are held weakly."""

    def __init__(self):
        self.cond = threading.Condition()
        self.publishing = threading.Lock()   # one PNG at a time, always of the newest pixels
        self.kept: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.due: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.thread: threading.Thread | None = None

    def get(self, layer) -> np.ndarray | None:
        with self.cond:
            return self.kept.get(layer)

    def put(self, layer, img, x: int, y: int) -> None:
        src = _as_rgba(img)
        with self.cond:
            old = self.kept.get(layer)
            if src is None:            # not an image array we understand: keep nothing
                new = None
            else:
                new = np.zeros((layer.height, layer.width, 4), np.uint8) if old is None \
                    else old.copy()    # copied: a PNG may be encoding the old one
                _over(new, src, x, y)
            self._changed(layer, new)

    def set(self, layer, value: np.ndarray | None) -> None:
        with self.cond:
            if value is None and self.kept.get(layer) is None and layer not in self.due:
                return                 # nothing kept, nothing stored: nothing to clear
            self._changed(layer, value)

    def _changed(self, layer, value) -> None:
        self.kept[layer] = value
        self.due[layer] = time.monotonic() + DELAY
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="cnn_widgets-pictures",
                                           daemon=True)
            self.thread.start()
        self.cond.notify()

    def flush(self, resend: bool = False) -> None:
        with self.cond:
            refs = [weakref.ref(layer) for layer in self.due.keys()]
            self.due.clear()
            kept = [weakref.ref(layer) for layer in self.kept.keys()] if resend else []
        for ref in refs:
            self._publish(ref)
        for ref in kept:
            with self.publishing:
                layer = self._open(ref)
                if layer is not None and layer.image_data is not None:
                    layer.send_state("image_data")

    def drop(self, layer) -> None:
        """Forget ``layer`` (closed): nothing more is stored for it."""
        with self.cond:
            self.kept.pop(layer, None)
            self.due.pop(layer, None)

    def _run(self) -> None:
        while True:
            for ref in self._wait_due():
                self._publish(ref)

    def _wait_due(self) -> list:
        """Weak references to the layers whose PNG is due (waits for one)."""
        with self.cond:
            while True:
                now = time.monotonic()
                ready = [layer for layer, t in self.due.items() if t <= now]
                if ready:
                    for layer in ready:
                        del self.due[layer]
                    return [weakref.ref(layer) for layer in ready]
                self.cond.wait(max(min(self.due.values(), default=now + 3600) - now, 0.01))

    def _publish(self, ref) -> None:
        # the layer (hence its widget and engine) is held only around the reads and the write,
        # not while the PNG is encoded: a closed widget is let go at once
        with self.publishing:
            layer = self._open(ref)
            if layer is None:
                return
            with self.cond:
                value = self.kept.get(layer)
            old, layer = layer.image_data, None
            # cleared: an empty picture, not None (nbclient would keep the last picture's
            # buffer beside a None value, and a reader would see that picture)
            data = png(np.zeros((1, 1, 4), np.uint8) if value is None else value)
            layer = self._open(ref)
            if layer is not None and data != old:
                layer.set_trait("image_data", data)

    @staticmethod
    def _open(ref):
        layer = ref()
        return None if layer is None or layer.comm is None else layer


_STORE = _Store()
