"""What every widget shares: a status bar (progress, status line, Stop, Save, error box), the
job runner of its engine, one lock for all canvas drawing, and what it shows as a picture
(:meth:`JobWidget.snapshot`, kept in the widget state and beside the view: ``pictures.py``)."""
from __future__ import annotations

import base64
import html
import os
import sys
import threading
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
from ipycanvas import Canvas, hold_canvas

from ..engine.core.errors import InvalidArgument, InvalidType
from ..jobs import Job, JobRunner, runner_for
from . import pictures

# ipycanvas routes every canvas through one shared manager that remembers the current canvas,
# so two threads drawing on two canvases could interleave; all drawing holds this lock.
CANVAS_LOCK = threading.RLock()


@contextmanager
def drawing():
    """Hold the drawing lock and batch the canvas commands into one message."""
    with CANVAS_LOCK, hold_canvas():
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
            # ipycanvas 0.14 skips switchCanvas when it thinks this canvas is current, but a new
            # front end has no current canvas (recheck when ipycanvas is upgraded).
            canvas._canvas_manager._current_canvas = None
            redraw()
    canvas.on_client_ready(ready)


MAX_ERROR_CHARS = 2000   # a message longer than this is cut (a 44 MB error string is no help)


def error_html(error: BaseException | str, detail: str | None = None) -> str:
    """The one error display: ``Type: message`` (or the text), then an optional ``detail``
    (a traceback) below; every string escaped and each cut to :data:`MAX_ERROR_CHARS`."""
    head = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    parts = [f"<div style='color:#a00'>{html.escape(_truncate(head))}</div>"]
    if detail:
        parts.append(f"<pre style='white-space:pre-wrap;color:#a00'>"
                     f"{html.escape(_truncate(detail))}</pre>")
    return "".join(parts)


def _truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


class JobWidget(W.VBox):
    """A VBox with a status bar, wired to the engine's job runner.

    Subclasses call :meth:`run_job`; the Stop button stops every job they started.
    """

    def __init__(self, engine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0,
                                        layout=W.Layout(width="220px"))
        self.status = W.Label("ready")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True,
                                    layout=W.Layout(width="80px"))
        self.save_button = W.Button(description="Save", icon="save",
                                    tooltip="Save what this view shows as a PNG file "
                                            "(in the kernel's working folder)",
                                    layout=W.Layout(width="80px"))
        self.error = W.HTML("")
        for w, cls in ((self.progress, "cnnw-progress"), (self.status, "cnnw-status"),
                       (self.stop_button, "cnnw-stop"), (self.save_button, "cnnw-save"),
                       (self.error, "cnnw-error")):
            w.add_class(cls)
        self.stop_button.on_click(lambda _b: self.stop())
        self.save_button.on_click(lambda _b: self._save_clicked())
        self.status_bar = W.HBox([self.progress, self.stop_button, self.save_button, self.status])
        self._keys: set = set()        # every job key this widget used (runner keys)
        self._long_keys: set = set()   # those of jobs that drive the progress bar and Stop
        self._displays: list = []      # IPython display handles of this widget's outputs

    @property
    def runner(self) -> JobRunner:
        """The engine's job runner (a fresh one if the engine was closed meanwhile)."""
        return runner_for(self.engine)

    def _runner_key(self, key: str) -> str:
        """Widgets sharing an engine share its runner: keep their requests apart."""
        return f"{type(self).__name__}-{id(self)}:{key}"

    def job(self, key: str) -> Job | None:
        """The latest job this widget started under ``key``."""
        return self.runner.latest(self._runner_key(key))

    def run_job(self, key: str, fn: Callable, on_result: Callable[[Any], None], *,
                label: str, quiet: bool = False,
                on_partial: Callable[[Any], None] | None = None,
                lane: str | None = None) -> Job:
        """Run ``fn(control)`` on a worker; ``on_result(result)`` runs there when it ends
        and ``on_partial(value)`` for each ``control.partial(value)`` on the way, unless a
        newer job with the same key superseded it. ``quiet`` jobs (live updates while
        drawing) leave the progress bar alone and speak only on error. ``lane``: "long" or
        "interactive" (default: "interactive" for quiet jobs, else "long"); an interactive
        job never queues behind a long one."""
        key = self._runner_key(key)
        runner = self.runner
        self._keys.add(key)
        if not quiet:
            self._long_keys.add(key)
            with runner.lock:
                self.progress.bar_style, self.progress.value = "", 0.0
                self.status.value, self.error.value = f"{label}…", ""
                self.stop_button.disabled = False

        def progress(done, total, message):
            if not quiet:
                self.progress.value = done / max(total, 1)
                self.status.value = f"{label}: {done}/{total}"

        def result(value):
            on_result(value)
            if not quiet:
                self.progress.value = 1.0
                self.status.value = f"{label}: done in {runner.latest(key).seconds:.2f} s"
            self._update_stop_button()

        def stopped():
            self.status.value = f"{label}: stopped at {self.progress.value:.0%}"
            self._update_stop_button()

        def failed(exc, tb):
            self.progress.bar_style = "danger"
            self.show_error(exc, tb)
            self.status.value = _truncate(f"{label}: {type(exc).__name__}: {exc}", 200)
            self._update_stop_button()

        return runner.submit(fn, key=key, lane=lane or ("interactive" if quiet else "long"),
                             on_progress=progress, on_result=result, on_stopped=stopped,
                             on_error=failed, on_partial=on_partial)

    def show_error(self, error: BaseException | str | None, detail: str | None = None) -> None:
        """Show ``error`` (and a ``detail`` such as a traceback) in the error box, escaped and
        truncated; None clears it."""
        self.error.value = "" if error is None else error_html(error, detail)

    def _update_stop_button(self) -> None:
        jobs = (self.runner.latest(k) for k in self._long_keys)
        self.stop_button.disabled = not any(j is not None and j.state in ("pending", "running")
                                            for j in jobs)

    def stop(self) -> None:
        """Stop every job this widget started (the Stop button)."""
        for key in self._keys:
            self.runner.stop(key)
        if not self.stop_button.disabled:
            self.status.value = "stopping…"

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until this widget's jobs have finished (scripts, tests, headless notebooks)."""
        return all(job.wait(timeout) for key in self._keys
                   if (job := self.runner.latest(key)) is not None)

    # -- what it shows, as a picture ----------------------------------------------------------
    def snapshot(self) -> np.ndarray:
        """What the widget shows now, as an (H, W, 4) uint8 RGBA picture on white: its
        canvases as last painted, laid out as its boxes lay them out (``pictures.compose``;
        controls, text and bqplot charts are left out)."""
        pic = pictures.compose(self)
        return pictures.on_white(np.zeros((1, 1, 4), np.uint8) if pic is None else pic)

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`snapshot` to ``path`` as a PNG file; returns the path."""
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidType(f"path: expected a str or os.PathLike; got {type(path).__name__}")
        path = Path(path)
        path.write_bytes(pictures.png(self.snapshot()))
        return path

    def _save_clicked(self) -> None:
        name = type(self).__name__
        path = next(p for i in range(1, 10**6)
                    if not (p := Path(f"{name}-{i}.png")).exists())
        try:
            self.save(path)
        except OSError as exc:
            self.show_error(exc)
        else:
            self.status.value = f"saved {path}"

    def _bundle(self) -> dict:
        """The widget view, its text, and a PNG of :meth:`snapshot` if anything is painted:
        what renderers show where they do not render the widget (JupyterLab for a notebook
        it does not trust, GitHub, nbconvert without widget state)."""
        data = self._repr_mimebundle_()
        if any(pictures.pixels(w) is not None for w in _descendants(self)
               if isinstance(w, pictures.Surface)):
            data["image/png"] = base64.b64encode(pictures.png(self.snapshot())).decode("ascii")
        return data

    def _ipython_display_(self) -> None:
        """The widget view with a display id: :func:`settle` adds the PNG of what it then
        shows (at display time the jobs have only started: no picture yet)."""
        from IPython.display import display

        self._displays.append(display(self._repr_mimebundle_(), raw=True, display_id=True))
        _SHOWN.add(self)

    def close(self) -> None:
        """Close this widget and every widget inside it (their handlers hold this widget,
        hence the engine, in ipywidgets' registry until closed)."""
        if not sys.is_finalizing():
            inside = _descendants(self)
            for w in inside:
                manager = getattr(w, "_canvas_manager", None)
                if manager is not None and manager._current_canvas in inside:
                    manager._current_canvas = None    # the shared manager remembers the last one
                if isinstance(w, pictures.Layer):
                    pictures.drop(w)
                w.close()
        super().close()


def _descendants(root: W.Widget) -> list[W.Widget]:
    """Every widget inside ``root`` (box children, a MultiCanvas's layers), ``root`` excluded;
    shared widgets (layouts, ipycanvas's canvas manager) are not part of it."""
    out, stack = [], [root]
    while stack:
        for child in _parts(stack.pop()):
            if isinstance(child, W.Widget) and child not in out:
                out.append(child)
                stack.append(child)
    return out


def _parts(widget: W.Widget) -> list:
    values = widget._trait_values          # set values only: no defaults are made
    return [*values.get("children", ()), *values.get("_canvases", ())]


_SHOWN: weakref.WeakSet = weakref.WeakSet()   # widgets displayed with a display id


def settle(timeout: float = 600.0) -> bool:
    """Wait for the jobs of every displayed widget, then store what each shows: the pictures
    of its canvases in the widget state (at once, not :data:`pictures.DELAY` later) and a PNG
    beside each of its outputs. Call it last before a notebook is saved for readers without
    a kernel: at the end of a run without a browser (nbclient, papermill, ``nbconvert
    --execute``), or in a live front end, where the views are drawn again. True if every
    job finished within ``timeout`` s."""
    widgets = list(_SHOWN)
    done = all([w.wait(timeout) for w in widgets])
    pictures.store_now()
    for w in widgets:
        bundle = w._bundle()
        for handle in w._displays:
            handle.update(bundle, raw=True)
    return done
