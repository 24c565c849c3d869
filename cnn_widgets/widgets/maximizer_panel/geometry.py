"""MaximizerPanel's layout and presentation math (pure numpy): how large its cells are, where
they and their captions go, the dataset rows of a start, what the objective curve and the
class-probability bars plot, and the records of what the image canvas and the scan show.

Every sheet is cells of ``cell`` = (h, w) px with ``GAP`` px right of each and ``CAPTION`` px
below each (and above the sheet, for its titles) for one line of text.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..draw import scaled_size

if TYPE_CHECKING:
    from ...engine.visualization.maximize import MaximizeStep

GAP = 6              # px right of each cell
CAPTION = 16         # px below each cell (and above a sheet), for its caption
TOP_COLUMNS = 5      # cells per row of the top-k sheet
PICTURE_PX = 168     # about this many px per optimised image ...
SMALL_PX = 84        # ... and per top-k or fooling cell
MANY_CLASSES = 16    # a classifier with more classes shows its ...
TOP_BARS = 10        # ... most probable classes as bars, not every class


@dataclass(frozen=True)
class Picture:
    """What the image canvas shows: ``images`` (N, C, H, W) and their class ``probs``
    (N, classes); ``step``: the ascent's MaximizeStep (None: the start); ``cam``: the Grad-CAM
    laid over them (None: none), computed for ``cam_for`` (the images themselves, or during a
    run an earlier picture of it); ``origin``: the start or run the picture belongs to."""
    images: np.ndarray
    probs: np.ndarray | None
    step: MaximizeStep | None = None
    cam: object = None
    cam_for: np.ndarray | None = None
    origin: int = 0

    @property
    def exact_cam(self) -> bool:
        """Whether the overlay is the Grad-CAM of these very images."""
        return self.cam is not None and self.cam_for is self.images


@dataclass(frozen=True)
class Scan:
    """The dataset scan of one objective (so far, or whole): top images and histogram."""
    top: object
    histogram: object


def scale(hw: Sequence[int], size: int) -> tuple[int, int]:
    """(up, down): an image of (H, W) px shown in about ``size`` px is enlarged ``up`` times,
    or, more than half as large again as ``size``, shrunk ``down`` times (block means)."""
    side = max(hw)
    if 2 * side > 3 * size:
        return 1, int(round(side / size))
    return max(1, size // side), 1


def cell_size(hw: Sequence[int], size: int) -> tuple[int, int]:
    """(h, w) px of a cell showing an (H, W) image in about ``size`` px."""
    return scaled_size(hw, scale(hw, size))


def picture_size(hw: Sequence[int], n: int = 1) -> tuple[int, int]:
    """(width, height) px of the picture sheet of ``n`` images of (H, W) px."""
    h, w = cell_size(hw, PICTURE_PX)
    return n * (w + GAP), h + CAPTION


def corner(row: int, col: int, cell: tuple[int, int], origin: int = 0) -> tuple[int, int]:
    """(top, left) px of a cell of a sheet whose first row starts ``origin`` px down."""
    return origin + row * (cell[0] + CAPTION), col * (cell[1] + GAP)


def caption_at(row: int, col: int, cell: tuple[int, int], origin: int = 0) -> tuple[int, int]:
    """(x, y) of the caption under a cell."""
    top, left = corner(row, col, cell, origin)
    return left, top + cell[0] + 12


def wrap(n: int, columns: int) -> list[list[int]]:
    """Indices 0..n-1 in rows of at most ``columns``."""
    return [list(range(i, min(i + columns, n))) for i in range(0, n, columns)]


def start_rows(first: int, n: int, size: int) -> list[int]:
    """The ``n`` dataset rows of a dataset start at row ``first``, wrapping at ``size``."""
    return [(first + i) % size for i in range(n)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) from logits (N, classes), for display."""
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def top_class(probs: np.ndarray) -> list[tuple[int, float]]:
    """(class, probability) of the most probable class of each row of (N, classes)."""
    best = np.argmax(probs, axis=1)
    return [(int(c), float(p[c])) for c, p in zip(best, probs)]


def bars(probs: np.ndarray, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(labels, heights) of the class-probability bars for one image's ``probs`` (classes,):
    every class in order for up to :data:`MANY_CLASSES`, else the :data:`TOP_BARS` most
    probable, most probable first."""
    if len(probs) <= MANY_CLASSES:
        return [str(n) for n in names], np.asarray(probs)
    order = np.argsort(-probs, kind="stable")[:TOP_BARS]
    return [str(names[c]) for c in order], np.asarray(probs)[order]


def unit_max(maps: np.ndarray) -> np.ndarray:
    """(P, H, W) non-negative maps on one shared [0, 1] scale (so the two classes compare)."""
    top = float(maps.max())
    return maps / top if top > 0 else maps


def fool_titles(source: str, target: str) -> list[str]:
    """Column titles of the fooling sheet: start, end, difference and the four Grad-CAMs."""
    return ["start", "end", "difference", f"CAM start {source}", f"CAM start {target}",
            f"CAM end {source}", f"CAM end {target}"]


def curve(trace: np.ndarray, values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the objective curve: steps 0..T-1 of ``trace`` (T, N), then ``values`` (N,)
    of the final images when given. bqplot squeezes arrays, so under 2 points give none."""
    y = trace if values is None else np.concatenate([trace, values[None]])
    if len(y) < 2:
        return np.zeros(0), np.zeros((0, y.shape[1] if y.ndim == 2 else 1))
    return np.arange(len(y)), y
