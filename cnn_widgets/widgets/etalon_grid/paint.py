"""EtalonGrid's pictures (pure numpy): etalons to RGBA sheets and the captions written on
them, for the grid (and the pad's row) and for the detail panels of a clicked etalon.

Etalons are drawn blue-white-red around zero (red = attention, blue = ignoring), on one
symmetric scale per row so the units of one input compare; the row's strongest unit is framed
in red; a row whose etalons are still being computed shows its input and grey cells.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import DETAIL_GAP, HEADER, GridLayout, cell_factor, cell_size, detail_scale

FRAME = (221, 0, 0, 255)        # the strongest unit's frame
PENDING = (238, 238, 238, 255)  # an etalon cell still being computed
DETAIL_FONT = "12px sans-serif"


def row_cells(x: np.ndarray, W_row: np.ndarray, input_hw: tuple[int, int]) -> list[np.ndarray]:
    """One grid row: the input then each unit's etalon, on a per-row symmetric scale so the
    units of one input compare. x: (C, H, W); W_row: (P, C, H, W)."""
    up, down = cell_factor(input_hw)
    maps = [draw.shrink(draw.channel_sum(w), down) for w in W_row]
    vmax = max(float(np.abs(m).max()) for m in maps) if maps else 1.0
    return [_input_cell(x, input_hw)] + [draw.upscale(draw.diverging(m, vmax), up) for m in maps]


def _input_cell(x: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    up, down = cell_factor(input_hw)
    return draw.upscale(draw.shrink(draw.image(x), down), up)


def grid_sheet(images: np.ndarray, labels: Sequence[str], titles: Sequence[str], result,
               names: Sequence[Sequence[str]] | None = None) -> tuple[Sheet, GridLayout]:
    """The grid: one row per input of ``images`` (N, C, H, W), captioned ``labels``, with one
    column per entry of ``titles``; the first rows, those ``result`` (Etalons, or None) holds,
    show their etalons and scores. ``names[i][j]``: the name of row i's unit j when each row
    has its own units (written above its score); None: the titles name them."""
    hw = images.shape[2:]
    done = 0 if result is None else len(result.x)
    grid = GridLayout(cell_size(hw), len(images), len(titles), lines=1 if names is None else 2)
    pending = np.empty((*grid.cell, 4), np.uint8)
    pending[:] = PENDING
    cells = [row_cells(result.x[i], result.W[i], hw) if i < done
             else [_input_cell(images[i], hw)] + [pending] * grid.units
             for i in range(grid.rows)]
    rgba, _ = draw.tile(cells, grid.cell, grid.gap, origin=grid.origin)
    width = grid.cell[1] + grid.gap[1] - 2
    captions = [Caption("input", *grid.title_at(0))]
    captions += [Caption(fit_text(t, width), *grid.title_at(j + 1)) for j, t in enumerate(titles)]
    for i in range(grid.rows):
        captions.append(Caption(fit_text(labels[i], width), *grid.caption_at(i, 0)))
        if i >= done:
            continue
        for j in range(grid.units):
            if names is not None:
                captions.append(Caption(fit_text(names[i][j], width), *grid.caption_at(i, j + 1)))
            captions.append(Caption(f"{result.out[i, j]:.2f}",
                                    *grid.caption_at(i, j + 1, 0 if names is None else 1)))
        _frame(rgba, grid.frame(i, int(np.argmax(result.out[i]))))
    return Sheet(rgba, tuple(captions)), grid


def _frame(rgba: np.ndarray, box: tuple[int, int, int, int], width: int = 2) -> None:
    """Draw a ``width`` px frame in :data:`FRAME` whose inner edge is ``box`` (x, y, w, h)
    shrunk by 1 px (the cell's outline), in place."""
    x, y, w, h = box
    x0, y0, x1, y1 = x + 1 - width, y + 1 - width, x + w - 1 + width, y + h - 1 + width
    x0, y0 = max(x0, 0), max(y0, 0)
    for ys, xs in ((slice(y0, y0 + width), slice(x0, x1)), (slice(y1 - width, y1), slice(x0, x1)),
                   (slice(y0, y1), slice(x0, x0 + width)), (slice(y0, y1), slice(x1 - width, x1))):
        rgba[ys, xs] = FRAME


def detail_sheet(x: np.ndarray, W: np.ndarray, votes: np.ndarray) -> Sheet:
    """The detail panels of one etalon: the input x, the etalon W and the votes W ⊙ x (each
    (C, H, W)), enlarged side by side under their titles."""
    s = detail_scale(x.shape[1:])
    panels = [draw.upscale(draw.image(x), s), draw.upscale(draw.signed(W), s),
              draw.upscale(draw.signed(votes), s)]
    rgba, corners = draw.tile([panels], panels[0].shape[:2], (0, DETAIL_GAP), origin=(HEADER, 0))
    captions = tuple(Caption(title, left + 2, HEADER - 5) for (_top, left), title
                     in zip(corners[0], ["input x", "etalon W", "votes W ⊙ x"]))
    return Sheet(rgba, captions, DETAIL_FONT)
