"""MaximizerPanel's pure layout and presentation math: its records, zoom factors, wrapped
grids, the dataset rows of a start, probabilities for display, fooling titles. Numpy only."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ...engine.visualization.gradcam import GradCam
    from ...engine.visualization.maximize import MaximizeStep
    from ...engine.visualization.scan import Histogram, TopImages

GAP = 6              # px right of each cell
CAPTION = 16         # px below each cell (and above a sheet), for its caption
TOP_COLUMNS = 5      # cells per row of the top-k sheet


@dataclass(frozen=True)
class Picture:
    """What the image canvas shows: images (N, C, H, W), probs (N, classes), the ascent's
    step (None: the start) and the Grad-CAM overlay (None: off)."""
    images: np.ndarray
    probs: np.ndarray
    step: MaximizeStep | None = None
    cam: GradCam | None = None


@dataclass(frozen=True)
class Scan:
    """The dataset scan of one objective: top images and histogram."""
    top: TopImages
    histogram: Histogram


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) from logits (N, classes), for display."""
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def zoom(hw: Sequence[int], size: int) -> int:
    """The integer upscaling that fits an image of (H, W) pixels into ``size`` px (>= 1)."""
    return max(1, size // max(hw))


def wrap(n: int, columns: int) -> list[list[int]]:
    """Indices 0..n-1 in rows of at most ``columns``."""
    return [list(range(i, min(i + columns, n))) for i in range(0, n, columns)]


def start_rows(first: int, n: int, size: int) -> list[int]:
    """The ``n`` dataset rows of a dataset start at row ``first``, wrapping at ``size``."""
    return [(first + i) % size for i in range(n)]


def top_class(probs: np.ndarray) -> list[tuple[int, float]]:
    """(class, probability) of the most probable class of each row of (N, classes)."""
    best = np.argmax(probs, axis=1)
    return [(int(c), float(p[c])) for c, p in zip(best, probs)]


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
