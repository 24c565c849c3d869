"""FOVExplorer's pictures (pure numpy): the image with the grid of a layer's positions and the
selected and hovered fields burned in, the four reconstructions cropped to the field, the
layer's strongest activation slices, and what each best-input run added to its start.

Reconstructions and best inputs are drawn blue-white-red around zero, each on its own
symmetric scale; a slice on its own scale from black (0) to white (its maximum).
"""
from __future__ import annotations

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import (
    HEADER,
    PANEL,
    PANEL_GAP,
    SLICE_GAP,
    PositionGrid,
    field_box,
    slice_scale,
)

# the four methods of engine.reconstruct(method="all"), in the paper's order, and their titles
TITLES = {"deconvnet": "deconvnet (eq. 4-5)", "deconvnet_masks": "with masks (eq. 6-7)",
          "random_masks": "random weights", "filter": "the filter (eq. 8-9)"}
GRID = (255, 255, 255)          # grid lines, blended at GRID_ALPHA
GRID_ALPHA = 0.45
SELECTED = (224, 32, 32)        # the selected unit's field (solid) and grid cell (tinted)
HOVERED = (32, 192, 255)        # the hovered position's field (dashed) and grid cell (tinted)
CELL_ALPHA = 0.35
DASH = (5, 3)                   # px on, px off of the hovered field's frame
EMPTY = (238, 238, 238, 255)    # a panel with nothing to show (a field in the zero padding)


def image_sheet(x: np.ndarray, k: int, grid: PositionGrid, fields=None,
                selected: tuple[int, int] | None = None,
                hovered: tuple[int, int] | None = None) -> Sheet:
    """The image (C, H, W) enlarged ``k`` times with ``grid``'s lines over it; the field
    (``fields``: a FieldMap, boxes per row and column) and grid cell of the ``selected``
    position framed red, those of the ``hovered`` one dashed blue."""
    rgba = draw.upscale(draw.image(x), k).copy()
    for x0, y0, x1, y1 in grid.lines():
        if y0 == y1:
            _blend(rgba, slice(round(y0), round(y0) + 1), slice(round(x0), round(x1)), GRID,
                   GRID_ALPHA)
        else:
            _blend(rgba, slice(round(y0), round(y1)), slice(round(x0), round(x0) + 1), GRID,
                   GRID_ALPHA)
    marks = [(pos, colour, dash) for pos, colour, dash in
             ((selected, SELECTED, None), (hovered, HOVERED, DASH)) if pos is not None and
             fields is not None]
    for (y, xx), colour, _dash in marks:             # the cells first: no tint over a frame
        left, top, w, h = grid.cell_box(y, xx)
        _blend(rgba, slice(top, top + h), slice(left, left + w), colour, CELL_ALPHA)
    for (y, xx), colour, dash in marks:
        _frame(rgba, field_box(int(fields.top[y]), int(fields.bottom[y]), int(fields.left[xx]),
                               int(fields.right[xx]), k), colour, 2, dash)
    return Sheet(rgba)


def recon_sheet(recon) -> Sheet:
    """The input cut to the unit's field, then each reconstruction of ``recon`` (a
    Reconstruction) cut to it, side by side under their titles."""
    rows, cols = recon.field.slices
    methods = [m for m in TITLES if m in recon.images]
    seen = recon.field.height > 0 and recon.field.width > 0
    empty = np.empty((PANEL, PANEL, 4), np.uint8)
    empty[:] = EMPTY
    panels = ([draw.image(recon.x[:, rows, cols])] + [draw.signed(recon.crop(m)) for m in methods]
              if seen else [empty] * (1 + len(methods)))
    rgba, corners = draw.panel_row(panels, PANEL, PANEL_GAP, header=HEADER)
    titles = ["input (field)"] + [TITLES[m] for m in methods]
    return Sheet(rgba, tuple(Caption(fit_text(t, PANEL + PANEL_GAP - 2), left + 2, HEADER - 4)
                             for (_top, left), t in zip(corners[0], titles)))


def slices_sheet(slices) -> Sheet:
    """The activation slices of ``slices`` (ActivationSlices: maps (k, h, w), their channels)
    side by side, each on its own scale (black = 0: one hot pixel must not blank the others),
    under their channel numbers."""
    s = slice_scale(slices.maps.shape[1:])
    cells = [[draw.upscale(draw.gray(m, 0.0, float(m.max()) or 1.0), s) for m in slices.maps]]
    rgba, corners = draw.tile(cells, cells[0][0].shape[:2], (0, SLICE_GAP), origin=(HEADER, 0))
    return Sheet(rgba, tuple(Caption(f"c{int(ch)}", left + 2, HEADER - 4)
                             for (_top, left), ch in zip(corners[0], slices.channels)))


def best_sheet(best) -> Sheet:
    """What each run of ``best`` (a BestInput) added to its start, cut to the unit's field,
    side by side."""
    rows, cols = best.field.slices
    if not (best.field.height and best.field.width):
        empty = np.empty((PANEL, PANEL, 4), np.uint8)
        empty[:] = EMPTY
        panels = [empty] * len(best.images)
    else:
        panels = [draw.signed((img - start)[:, rows, cols])
                  for img, start in zip(best.images, best.start)]
    rgba, _ = draw.panel_row(panels, PANEL, PANEL_GAP)
    return Sheet(rgba)


def _blend(rgba: np.ndarray, rows: slice, cols: slice, colour, alpha: float) -> None:
    """Mix ``colour`` into the pixels ``rgba[rows, cols]`` at ``alpha``, in place."""
    px = rgba[rows, cols, :3].astype(np.float32)
    rgba[rows, cols, :3] = np.rint(px * (1 - alpha) + np.asarray(colour, np.float32) * alpha)


def _frame(rgba: np.ndarray, box: tuple[int, int, int, int], colour, width: int,
           dash: tuple[int, int] | None = None) -> None:
    """A ``width`` px frame in ``colour`` just inside ``box`` = (left, top, w, h) (cut to the
    sheet), dashed ``dash`` = (px on, px off) if given; in place."""
    left, top, w, h = box
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + w, rgba.shape[1]), min(top + h, rgba.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    if dash is not None:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask &= (yy + xx) % sum(dash) < dash[0]
    rgba[y0:y1, x0:x1][mask] = (*colour, 255)
