"""What a widget shows, as a picture: :meth:`Snapshots.snapshot`, ``save``, the Save button's
action, the PNG beside each displayed view, and :func:`settle`, which stores all of it before
a notebook is saved for readers without a kernel (``pictures.py`` keeps the canvases' pixels)."""
from __future__ import annotations

import base64
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import numpy as np

from ..engine.core.errors import InvalidType
from . import pictures


class Snapshots:
    """For :class:`~._base.JobWidget`: what the widget shows, as a picture."""
    if TYPE_CHECKING:                   # what JobWidget, which mixes this in, has
        status: W.HTML

        def show_error(self, error: BaseException | str | None,
                       detail: str | None = None) -> None: ...

        def _repr_mimebundle_(self, **kwargs: Any) -> dict: ...

    def _save_button(self) -> W.Button:
        """The status bar's Save button (``cnnw-save``): :meth:`_save_clicked`."""
        button = W.Button(description="Save", icon="save", layout=W.Layout(width="80px"),
                          tooltip="Save what this view shows as a PNG file (in the kernel's "
                                  "working folder)")
        button.add_class("cnnw-save")
        button.on_click(lambda _b: self._save_clicked())
        return button

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
        """The Save button: the next free ``<Widget>-<n>.png`` in the working folder."""
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
        if pictures.painted(self):
            data["image/png"] = base64.b64encode(pictures.png(self.snapshot())).decode("ascii")
        return data

    def _ipython_display_(self) -> None:
        """The widget view with a display id: :func:`settle` adds the PNG of what it then
        shows (at display time the jobs have only started: no picture yet)."""
        from IPython.display import display

        handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
        self._displays = [*getattr(self, "_displays", []), handle]   # this widget's outputs
        _SHOWN.add(self)


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
        for handle in getattr(w, "_displays", []):
            handle.update(bundle, raw=True)
    return done
