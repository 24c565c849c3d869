"""The canvases of :class:`~.maximizer_panel.MaximizerPanel`: each function paints one result
on its canvas and returns the RGBA sheet it put there. No engine calls, no panel state."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ipycanvas import Canvas

from . import draw
from ._base import drawing, paint_sheet
from .layout.maximizer_panel import CAPTION, GAP, TOP_COLUMNS, Picture, fool_titles, top_class, unit_max, wrap


def paint_picture(canvas: Canvas, pic: Picture, k: int, names: Sequence[str]) -> np.ndarray:
    """The images of ``pic`` enlarged ``k`` times side by side (Grad-CAM laid over them when
    it has one), each captioned with its most probable class."""
    heats = pic.cam.normalized()[:, 0] if pic.cam is not None else None
    cells = []
    for i, img in enumerate(pic.images):
        cell = draw.upscale(draw.shown(img), k)
        if heats is not None:
            cell = draw.heat_overlay(cell, draw.upscale(heats[i][..., None], k)[..., 0])
        cells.append(cell)
    sheet, corners = draw.tile([cells], cells[0].shape[:2], (CAPTION, GAP))
    with drawing():
        paint_sheet(canvas, sheet)
        for (top, left), (c, p) in zip(corners[0], top_class(pic.probs)):
            canvas.fill_text(f"{names[c]} {p:.0%}", left, top + cells[0].shape[0] + 12)
    return sheet


def paint_top(canvas: Canvas, top, n_dataset: int, k: int) -> np.ndarray:
    """The top dataset images of a scan (``top``: TopImages) in rows of
    :data:`TOP_COLUMNS`, each captioned with its row and value."""
    cells = [draw.upscale(draw.image(img), k) for img in top.images]
    rows = [[cells[i] for i in row] for row in wrap(len(cells), TOP_COLUMNS)]
    sheet, corners = draw.tile(rows, cells[0].shape[:2], (CAPTION, GAP), (CAPTION, 0))
    with drawing():
        paint_sheet(canvas, sheet)
        canvas.fill_text(f"top {len(cells)} of {n_dataset} for {top.objective}", 2, 12)
        flat = [c for row in corners for c in row]
        for (y, x), v, i in zip(flat, top.values, top.indices):
            canvas.fill_text(f"#{i}: {v:.3g}", x, y + cells[0].shape[0] + 12)
    return sheet


def paint_fooling(canvas: Canvas, f, k: int, names: Sequence[str]) -> np.ndarray:
    """One row per fooled image (``f``: Fooling): start, end, their difference and the
    Grad-CAMs of both classes on start and end; the columns titled, each row captioned with
    the probabilities before and after."""
    dmax = float(f.diff.max()) or 1.0
    rows = []
    for i in range(len(f.start)):
        start, end = (draw.upscale(draw.shown(img[i]), k) for img in (f.start, f.end))
        cams = [draw.heat_overlay(base, draw.upscale(c[..., None], k)[..., 0])
                for base, cam in ((start, f.cam_start), (end, f.cam_end))
                for c in unit_max(cam[i])]
        rows.append([start, end, draw.upscale(draw.gray(f.diff[i], 0, dmax), k), *cams])
    sheet, corners = draw.tile(rows, rows[0][0].shape[:2], (CAPTION, GAP), (CAPTION, 0))
    s, t = (names[c] for c in f.classes)
    with drawing():
        paint_sheet(canvas, sheet)
        for (_top, left), title in zip(corners[0], fool_titles(s, t)):
            canvas.fill_text(title, left, 12)
        p0, p1 = f.probabilities[0], f.probabilities[-1]
        for i, row in enumerate(corners):
            canvas.fill_text(f"{s} {p0[i, f.classes[0]]:.0%} → {t} {p1[i, f.classes[1]]:.0%}",
                             row[0][1], row[1][0] + rows[0][0].shape[0] + 12)
    return sheet
