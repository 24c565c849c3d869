"""MaximizerPanel's pictures (pure numpy): the optimised (or start) images with their most
probable class and an optional Grad-CAM overlay; the top dataset images of a scan; the fooling
rows (start, end, their difference, the Grad-CAMs of both classes). Each returns the RGBA
:class:`~..sheets.Sheet` and its captions for one canvas."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import (
    CAPTION,
    GAP,
    PICTURE_PX,
    SMALL_PX,
    TOP_COLUMNS,
    caption_at,
    corner,
    fool_titles,
    scale,
    top_class,
    unit_max,
    wrap,
)


def cell(rgba: np.ndarray, size: int) -> np.ndarray:
    """An (H, W, 4) RGBA image (or (H, W) map) at about ``size`` px (see :func:`scale`)."""
    up, down = scale(rgba.shape[:2], size)
    return draw.upscale(draw.shrink(rgba, down), up)


def _heat(base: np.ndarray, heat: np.ndarray, size: int) -> np.ndarray:
    """``base`` (a cell) with the (H, W) map ``heat`` in [0, 1] laid over it in red."""
    return draw.heat_overlay(base, cell(heat[..., None], size)[..., 0])


def picture_sheet(images: np.ndarray, probs: np.ndarray, names: Sequence[str],
                  heats: np.ndarray | None = None) -> Sheet:
    """``images`` (N, C, H, W) side by side at about :data:`PICTURE_PX` px (stretched to their
    own range when they leave [0, 1]), each captioned with its most probable class of ``probs``
    (N, classes); ``heats`` (N, H, W) in [0, 1]: a Grad-CAM laid over them."""
    cells = [cell(draw.shown(img), PICTURE_PX) for img in images]
    if heats is not None:
        cells = [_heat(c, h, PICTURE_PX) for c, h in zip(cells, heats)]
    size = cells[0].shape[:2]
    rgba, _ = draw.tile([cells], size, (CAPTION, GAP))
    width = size[1] + GAP - 2
    captions = tuple(Caption(fit_text(f"{names[c]} {p:.0%}", width), *caption_at(0, i, size))
                     for i, (c, p) in enumerate(top_class(probs)))
    return Sheet(rgba, captions)


def top_sheet(top, n_dataset: int) -> Sheet:
    """The top dataset images of a scan (``top``: TopImages) in rows of :data:`TOP_COLUMNS`
    at about :data:`SMALL_PX` px, under a title, each captioned with its row and value."""
    cells = [cell(draw.image(img), SMALL_PX) for img in top.images]
    size = cells[0].shape[:2]
    rows = [[cells[i] for i in row] for row in wrap(len(cells), TOP_COLUMNS)]
    rgba, _ = draw.tile(rows, size, (CAPTION, GAP), (CAPTION, 0))
    width = size[1] + GAP - 2
    captions = [Caption(fit_text(f"top {len(cells)} of {n_dataset} for {top.objective}",
                                 rgba.shape[1] - 4), 2, 12)]
    for j, (v, i) in enumerate(zip(top.values, top.indices)):
        r, c = divmod(j, TOP_COLUMNS)
        captions.append(Caption(fit_text(f"#{i}: {v:.3g}", width),
                                *caption_at(r, c, size, CAPTION)))
    return Sheet(rgba, tuple(captions))


def fooling_sheet(f, names: Sequence[str]) -> Sheet:
    """One row per fooled image (``f``: Fooling): start, end, their difference and the
    Grad-CAMs of both classes on start and end (on one scale per row, so the classes compare);
    the columns titled, each row captioned with the probabilities before and after."""
    dmax = float(f.diff.max()) or 1.0
    rows = []
    for i in range(len(f.start)):
        start, end = (cell(draw.shown(img[i]), SMALL_PX) for img in (f.start, f.end))
        cams = [_heat(base, c, SMALL_PX) for base, cam in ((start, f.cam_start), (end, f.cam_end))
                for c in unit_max(cam[i])]
        rows.append([start, end, cell(draw.gray(f.diff[i], 0, dmax), SMALL_PX), *cams])
    size = rows[0][0].shape[:2]
    rgba, _ = draw.tile(rows, size, (CAPTION, GAP), (CAPTION, 0))
    s, t = (str(names[c]) for c in f.classes)
    width = size[1] + GAP - 2
    captions = [Caption(fit_text(title, width), corner(0, j, size)[1], 12)
                for j, title in enumerate(fool_titles(s, t))]
    p0, p1 = f.probabilities[0], f.probabilities[-1]
    for i in range(len(rows)):
        text = f"{s} {p0[i, f.classes[0]]:.0%} → {t} {p1[i, f.classes[1]]:.0%}"
        captions.append(Caption(fit_text(text, 3 * (size[1] + GAP)),
                                *caption_at(i, 0, size, CAPTION)))
    return Sheet(rgba, tuple(captions))

