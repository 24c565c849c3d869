"""Arrays -> RGBA uint8 images: colormaps, scaling, tiling. Pure numpy, tested alone.

ipycanvas sends 3-channel arrays as lossy JPEG, so everything here is RGBA uint8.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Diverging map centred at zero: blue = negative (ignoring), white = 0, red = positive (attention).
_DIVERGING = np.array([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77],
                       [103, 0, 31]], dtype=np.float64)
BACKGROUND = (255, 255, 255, 255)


def rgba(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 255] -> (H, W, 4) uint8, opaque."""
    out = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3] = 255
    return out


def gray(a: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """(H, W) values in [lo, hi] -> black..white RGBA."""
    t = np.clip((np.asarray(a, dtype=np.float64) - lo) / max(hi - lo, 1e-12), 0, 1)
    return rgba(np.repeat(t[..., None] * 255.0, 3, axis=-1))


def image(x: np.ndarray) -> np.ndarray:
    """An input image (C, H, W) in [0, 1] -> RGBA: gray for 1 channel, colour for 3."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 3:
        return rgba(np.clip(np.moveaxis(x, 0, -1), 0, 1) * 255.0)
    return gray(x.mean(0))


def diverging(a: np.ndarray, vmax: float) -> np.ndarray:
    """(H, W) signed values -> RGBA on a blue-white-red map with 0 at white and ±vmax at the ends."""
    t = np.clip(np.asarray(a, dtype=np.float64) / max(float(vmax), 1e-12), -1, 1)
    pos = (t + 1) / 2 * (len(_DIVERGING) - 1)
    i = np.clip(np.floor(pos).astype(int), 0, len(_DIVERGING) - 2)
    f = (pos - i)[..., None]
    return rgba(_DIVERGING[i] * (1 - f) + _DIVERGING[i + 1] * f)


def channel_sum(a: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W): a map over input channels is shown as their sum."""
    return np.asarray(a).sum(0)


def signed(a: np.ndarray) -> np.ndarray:
    """(C, H, W) signed map -> RGBA of its channel sum on :func:`diverging`, scaled to its own
    largest magnitude."""
    m = channel_sum(a)
    return diverging(m, np.abs(m).max())


def shown(img: np.ndarray) -> np.ndarray:
    """RGBA of an input image (C, H, W): as it is when it lies in [0, 1], else stretched from
    its own min..max (optimised images leave the data range)."""
    lo, hi = float(img.min()), float(img.max())
    if lo >= 0.0 and hi <= 1.0:
        return image(img)
    return image((img - lo) / max(hi - lo, 1e-12))


def heat_overlay(img: np.ndarray, heat: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """Blend an RGBA image with red where ``heat`` (H, W) in [0, 1] is high."""
    a = np.clip(heat, 0, 1)[..., None] * strength
    return rgba(img[..., :3].astype(np.float64) * (1 - a) + np.array([230.0, 30.0, 30.0]) * a)


def upscale(img: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (keeps pixels crisp)."""
    return img if k == 1 else img.repeat(k, 0).repeat(k, 1)


def scale_factor(hw: Sequence[int], target: int) -> tuple[int, int]:
    """(up, down): an (H, W) image shown in about ``target`` px is enlarged ``up`` times
    (:func:`upscale`), or, its longer side more than twice ``target``, shrunk ``down`` times
    (:func:`shrink`); the other is 1."""
    side = max(hw)
    if side > 2 * target:
        return 1, side // target
    return max(1, target // side), 1


def scaled_size(hw: Sequence[int], factor: tuple[int, int]) -> tuple[int, int]:
    """(h, w) px of an (H, W) image shrunk ``down`` then enlarged ``up`` times
    (``factor`` = (up, down), as :func:`scale_factor` gives it)."""
    up, down = factor
    return hw[0] // down * up, hw[1] // down * up


def shrink(a: np.ndarray, d: int) -> np.ndarray:
    """Means of d x d blocks over the first two axes of ``a`` (a remainder of fewer than d
    rows or columns dropped); uint8 stays uint8. d = 1: ``a`` itself."""
    if d == 1:
        return a
    h, w = a.shape[0] // d * d, a.shape[1] // d * d
    m = a[:h, :w].reshape(h // d, d, w // d, d, *a.shape[2:]).mean(axis=(1, 3))
    return np.rint(m).astype(np.uint8) if a.dtype == np.uint8 else m


def tile(cells: Sequence[Sequence[np.ndarray]], cell: tuple[int, int], gap: tuple[int, int],
         origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """Place equally sized RGBA cells on a white sheet.

    cells: rows of (h, w, 4) arrays, each exactly ``cell`` = (h, w); gap: (below, right) of
    each cell in pixels; origin: (top, left) margin. Returns the sheet and the (top, left)
    corner of every cell.
    """
    h, w = cell
    rows, cols = len(cells), max((len(r) for r in cells), default=0)
    sheet = np.empty((*tile_corner(rows, cols, cell, gap, origin), 4), np.uint8)
    sheet[:] = BACKGROUND
    corners: list[list[tuple[int, int]]] = []
    for r, row in enumerate(cells):
        corners.append([])
        for c, img in enumerate(row):
            if img.shape[:2] != (h, w):
                raise ValueError(f"cell ({r}, {c}) is {img.shape[:2]}, expected {(h, w)}")
            top, left = tile_corner(r, c, cell, gap, origin)
            sheet[top:top + h, left:left + w] = img
            corners[-1].append((top, left))
    return sheet, corners


def fit_box(h: int, w: int, size: int) -> tuple[float, int, int, int, int]:
    """Where an (h, w) image goes on a (size, size) panel, longer side ``size``, centred:
    (scale, new h, new w, top, left)."""
    s = size / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    return s, nh, nw, (size - nh) // 2, (size - nw) // 2


def fit(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an RGBA image so its longer side is ``size``, centred on a
    white (size, size) panel."""
    h, w = img.shape[:2]
    s, nh, nw, top, left = fit_box(h, w, size)
    rows = np.minimum((np.arange(nh) / s).astype(int), h - 1)
    cols = np.minimum((np.arange(nw) / s).astype(int), w - 1)
    out = np.empty((size, size, 4), np.uint8)
    out[:] = BACKGROUND
    out[top:top + nh, left:left + nw] = img[rows][:, cols]
    return out


def panel_row(images: Sequence[np.ndarray], size: int, gap: int = 6, header: int = 0):
    """RGBA images, each fitted to a (size, size) panel, side by side below ``header`` px;
    returns the sheet and the panels' corners as :func:`tile` does."""
    return tile([[fit(img, size) for img in images]], (size, size), (0, gap), origin=(header, 0))


def tile_corner(row: int, col: int, cell: tuple[int, int], gap: tuple[int, int],
                origin: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """(top, left) px of cell (row, col) in a :func:`tile` layout; of cell (rows, cols): the
    sheet's (height, width)."""
    return origin[0] + row * (cell[0] + gap[0]), origin[1] + col * (cell[1] + gap[1])


def cell_at(x: float, y: float, cell: tuple[int, int], gap: tuple[int, int],
            origin: tuple[int, int], shape: tuple[int, int]):
    """(row, col) of the cell under canvas point (x, y) in a :func:`tile` layout, or None."""
    h, w = cell
    r, ry = divmod(int(y) - origin[0], h + gap[0])
    c, cx = divmod(int(x) - origin[1], w + gap[1])
    if y < origin[0] or x < origin[1] or ry >= h or cx >= w or r >= shape[0] or c >= shape[1]:
        return None
    return int(r), int(c)


def ink(image: np.ndarray, start, end, sigma: float) -> np.ndarray:
    """Ink one pen segment into ``image`` (C, H, W) float32 in place: gaussian blobs of radius
    ``sigma`` along start -> end ((y, x) in image pixels), cut to 0 below 0.05 (a pen has an
    edge), kept where brighter than what is there. Returns ``image``."""
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    h, w = image.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w]
    for t in np.linspace(0.0, 1.0, max(2, int(np.linalg.norm(end - start) * 2) + 1)):
        cy, cx = start + t * (end - start)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        blob[blob < 0.05] = 0.0
        np.maximum(image, blob.astype(np.float32), out=image)
    return image
