"""SanityCheckView's pictures and curves (pure numpy): the rows of a sanity check so far to an
RGBA grid sheet with its captions, a clicked cell to the detail panels, and the rows to the
similarity curves.

Each map is drawn as the chosen measure reads it (the paper's visualisation for rank |.|):
``rank_abs``, |map| summed over channels, black to white up to its own maximum; ``rank``, the
signed sum, blue < 0 < red on its own symmetric scale; ``ssim``, the map scaled from its
minimum to its maximum. A cell whose map is still being computed is grey.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import (
    DETAIL_GAP,
    DETAIL_PANELS,
    HEADER,
    LABEL,
    GridLayout,
    cell_factor,
    cell_size,
    detail_factor,
)

if TYPE_CHECKING:
    from ...engine.sanity.check import SanityRow

PENDING = (238, 238, 238, 255)  # a cell still being computed
DETAIL_FONT = "12px sans-serif"
VIEWS = {"rank_abs": "|map| summed over channels, black to white up to its maximum",
         "rank": "the map summed over channels, blue < 0 < red",
         "ssim": "the map scaled from its minimum (black) to its maximum (white)"}


def placed(rows: Sequence[SanityRow], methods: Sequence[str]) -> dict[tuple[int, int], SanityRow]:
    """(row, col) of the grid -> the SanityRow shown there, for ``rows`` of ``methods`` (col 0:
    the original model, stage -1; col k: stage k - 1); rows of other methods are left out."""
    index = {m: i for i, m in enumerate(methods)}
    return {(index[r.method], r.stage + 1): r for r in rows if r.method in index}


def map_values(m: np.ndarray, metric: str) -> tuple[np.ndarray, str]:
    """A (C', H, W) map as the ``metric`` reads it: ((H, W) values, "gray" or "signed")."""
    m = np.asarray(m, dtype=np.float64)
    if metric == "rank_abs":
        return np.abs(m).sum(0), "gray"
    if metric == "rank":
        return m.sum(0), "signed"
    span = np.ptp(m)
    return ((m - m.min()) / span if span > 0 else np.zeros_like(m)).mean(0), "gray"


def map_rgba(m: np.ndarray, metric: str, factor: tuple[int, int] = (1, 1)) -> np.ndarray:
    """RGBA of one map (C', H, W) as the ``metric`` reads it, shrunk ``factor[1]`` then
    enlarged ``factor[0]`` times, scaled to its own range."""
    up, down = factor
    values, kind = map_values(m, metric)
    values = draw.shrink(values, down)
    top = float(np.abs(values).max())
    rgba = draw.diverging(values, top) if kind == "signed" else draw.gray(values, 0.0, top or 1.0)
    return draw.upscale(rgba, up)


def input_rgba(x: np.ndarray, factor: tuple[int, int] = (1, 1)) -> np.ndarray:
    """RGBA of an input image (C, H, W), shrunk then enlarged by ``factor`` (up, down)."""
    up, down = factor
    return draw.upscale(draw.shrink(draw.shown(x), down), up)


def score_text(value: float) -> str:
    """A similarity under its cell: two decimals, or "n/a" (a constant map has no ranks)."""
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def grid_sheet(rows: Sequence, methods: Sequence[str], labels: Sequence[str],
               titles: Sequence[str], image: int, metric: str,
               input_hw: tuple[int, int]) -> tuple[Sheet, GridLayout]:
    """The grid: one row per method (named ``labels``), one column per stage (``titles``: the
    original, then each change); the maps of ``rows`` (SanityRow) at image ``image`` with
    their ``metric`` similarity to the original below them; the others grey."""
    grid = GridLayout(cell_size(input_hw), len(methods), len(titles))
    factor = cell_factor(input_hw)
    pending = np.empty((*grid.cell, 4), np.uint8)
    pending[:] = PENDING
    done = placed(rows, methods)
    cells = [[map_rgba(done[r, c].maps[image], metric, factor) if (r, c) in done else pending
              for c in range(grid.cols)] for r in range(grid.rows)]
    rgba, _ = draw.tile(cells, grid.cell, grid.gap, origin=grid.origin)
    width = grid.title_width
    captions = [Caption(fit_text(t, width), *grid.title_at(c)) for c, t in enumerate(titles)]
    captions += [Caption(fit_text(label, LABEL - 6), *grid.label_at(r))
                 for r, label in enumerate(labels)]
    captions += [Caption(score_text(float(getattr(row, metric)[image])), *grid.caption_at(r, c))
                 for (r, c), row in sorted(done.items()) if c > 0]
    return Sheet(rgba, tuple(captions)), grid


def detail_sheet(x: np.ndarray, maps: Sequence[np.ndarray], metric: str,
                 titles: Sequence[str]) -> Sheet:
    """The detail panels: the input ``x`` (C, H, W), then each of ``maps`` (C', H, W; the
    original and the changed map of a clicked cell, or none), enlarged side by side under
    ``titles``; as wide as three panels, so the canvas keeps its size."""
    factor = detail_factor(x.shape[1:])
    panels = [input_rgba(x, factor)] + [map_rgba(m, metric, factor) for m in maps]
    panels += [np.full_like(panels[0], 255)] * (DETAIL_PANELS - len(panels))
    rgba, corners = draw.tile([panels], panels[0].shape[:2], (0, DETAIL_GAP), origin=(HEADER, 0))
    width = panels[0].shape[1] + DETAIL_GAP - 2
    captions = tuple(Caption(fit_text(title, width), left + 2, HEADER - 5)
                     for (_top, left), title in zip(corners[0], titles))
    return Sheet(rgba, captions, DETAIL_FONT)


def curve_values(rows: Sequence, methods: Sequence[str], stages: int,
                 metric: str) -> np.ndarray:
    """(M, stages) mean ``metric`` over the images of each method's maps at each stage (column
    0 the original against itself); nan where a stage is not done (or every image's value is
    nan)."""
    out = np.full((len(methods), stages), np.nan)
    for (r, c), row in placed(rows, methods).items():
        if c < stages:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)     # all nan: stays nan
                out[r, c] = np.nanmean(getattr(row, metric))
    return out
