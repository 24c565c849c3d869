"""InverseSetGallery's pictures and texts (pure numpy): the gallery of seeds on their way into
the range(s) or of the samples found, the detail panels of a clicked sample, the summary of
a result with its naturalness numbers.

A cell shows an input fitted to :data:`~.geometry.CELL` px with its activations below; a seed
still outside its range(s) is framed in orange, one inside in green; samples (all inside) have
no frame.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import (
    CELL,
    COLS,
    GAP,
    HEADER,
    PANEL,
    PANEL_GAP,
    cell_corner,
    gallery_width,
    label_at,
    shown_indices,
    shrink_factor,
)

FRAME_IN = (51, 153, 51, 255)     # a seed inside its range(s)
FRAME_OUT = (221, 119, 0, 255)    # a seed still outside
GALLERY_FONT = "10px sans-serif"  # 10/11 of sheets.FONT: two values fit under a cell
DETAIL_FONT = "12px sans-serif"


def fitted(rgba: np.ndarray, size: int) -> np.ndarray:
    """An RGBA picture shrunk by block means to about ``size`` px, then fitted to it."""
    return draw.fit(draw.shrink(rgba, shrink_factor(rgba.shape[:2], size)), size)


def values_text(row: Sequence[float]) -> str:
    """A sample's activations, one per unit: "3.21/0.57"."""
    return "/".join(f"{v:.2f}" for v in row)


def gallery_sheet(images: np.ndarray, activations: np.ndarray, title: str,
                  inside: np.ndarray | None = None, cols: int = COLS) -> Sheet:
    """Cells of ``images`` (m, C, H, W), row by row below ``title``, each with its
    ``activations`` (m, P) written under it; ``inside`` (m,) bool frames each cell green
    (inside the range(s)) or orange (outside), None: no frames."""
    m = len(images)
    rows = max(1, -(-m // cols))
    rgba = np.empty((HEADER + rows * (CELL + GAP[0]), gallery_width(cols), 4), np.uint8)
    rgba[:] = draw.BACKGROUND
    captions = [Caption(fit_text(title, gallery_width(cols) * 1.1), 2, HEADER - 5)]
    for i in range(m):
        top, left = cell_corner(i, cols)
        rgba[top:top + CELL, left:left + CELL] = fitted(draw.image(images[i]), CELL)
        if inside is not None:
            frame(rgba, (left, top, CELL, CELL), FRAME_IN if inside[i] else FRAME_OUT)
        captions.append(Caption(fit_text(values_text(activations[i]), (CELL + GAP[1]) * 1.1),
                                *label_at(i, cols)))
    return Sheet(rgba, tuple(captions), GALLERY_FONT)


def frame(rgba: np.ndarray, box: tuple[int, int, int, int], color, width: int = 2) -> None:
    """Burn a ``width`` px frame just inside ``box`` (x, y, w, h), in place."""
    x, y, w, h = box
    rgba[y:y + width, x:x + w] = color
    rgba[y + h - width:y + h, x:x + w] = color
    rgba[y:y + h, x:x + width] = color
    rgba[y:y + h, x + w - width:x + w] = color


def seeds_sheet(batch) -> Sheet:
    """The K seeds of a ``SeedBatch`` as eq. 8 moves them: framed by whether each is inside
    yet (no frames while the default range is still being found)."""
    k = len(batch.images)
    if batch.inside is None:
        title = (f"the {k} seeds at their start (eq. 8); finding the default range on the "
                 f"dataset…")
    else:
        title = (f"seeds (eq. 8), step {batch.step}: {int(np.sum(batch.inside))} of {k} inside "
                 f"the range(s) (green)")
    return gallery_sheet(batch.images, batch.activations, title, batch.inside)


def samples_sheet(images: np.ndarray, activations: np.ndarray) -> tuple[Sheet, list[int]]:
    """The samples so far (at most :data:`~.geometry.MAX_SHOWN`, evenly spread) and the
    sample index of each cell."""
    shown = shown_indices(len(images))
    title = f"{len(images)} samples inside the range(s)" + (
        f", {len(shown)} shown (evenly spread)" if len(shown) < len(images) else "")
    return gallery_sheet(images[shown], activations[shown], title), shown


def detail_sheet(sample: int, image: np.ndarray, etalons: Sequence) -> Sheet:
    """A sample enlarged next to the etalon of each unit (blue-white-red around zero), each on
    a :data:`~.geometry.PANEL` px panel under its title."""
    panels = [fitted(draw.image(image), PANEL)]
    panels += [fitted(draw.signed(et.W[0, 0]), PANEL) for et in etalons]
    rgba, corners = draw.tile([panels], (PANEL, PANEL), (0, PANEL_GAP), origin=(HEADER, 0))
    titles = [f"sample {sample}"] + [f"etalon {et.layer}:{':'.join(map(str, et.units[0]))}"
                                     for et in etalons]
    captions = tuple(Caption(fit_text(t, PANEL), left + 2, HEADER - 5)
                     for (_top, left), t in zip(corners[0], titles))
    return Sheet(rgba, captions, DETAIL_FONT)


def summary_html(res) -> str:
    """What an ``InverseSet`` says: how many samples, the steps, the diversity, why it is
    incomplete, and its naturalness (the codes against the prior, the judge, inside)."""
    text = (f"{res.n} samples, all inside their range(s); gradient steps: {res.steps_seeds} for "
            f"the {res.K} seeds, {res.steps_sampling} for the other {res.n - res.K}; diversity "
            f"(mean distance in E's space) {res.diversity:.2f}")
    if res.report:
        text += f"<br>{html.escape(res.report)}"
    return text + "<br>" + naturalness_html(res.naturalness)


def naturalness_html(nat) -> str:
    """The naturalness numbers (``Naturalness``) in one line."""
    parts = []
    if nat.code_norm is not None:
        lo, hi = nat.prior_interval
        parts.append(f"median code norm {nat.code_norm:.2f} (the prior's {nat.prior_norm:.2f}, "
                     f"95 % within {lo:.2f}–{hi:.2f}; {nat.typical:.0%} of the codes there)")
    elif nat.prior_norm is None:
        parts.append("pixel space: no codes")
    if nat.judged is not None:
        parts.append(f"{nat.judged:.0%} called the units' class by the judge "
                     f"({html.escape(str(nat.judge))})")
    elif nat.classes:
        parts.append("no judge (judge=: another network's engine) for the class share")
    if nat.in_range is not None:
        parts.append(f"{nat.in_range:.0%} inside on a fresh pass")
    return "<b>naturalness</b>: " + "; ".join(parts)


def constraints_html(constraints: Sequence) -> str:
    """The constraints as a list: each unit and its range ("[…]": the default, not known
    yet)."""
    rows = "".join(f"<li>{html.escape(k.layer)} unit {':'.join(map(str, k.unit))}: "
                   + (f"[{k.lo:.2f}, {k.hi:.2f}]" if k.lo is not None else "[…]") + "</li>"
                   for k in constraints)
    word = "intersection of" if len(constraints) > 1 else "inverse set of"
    return f"<b>{word}</b><ul style='margin:0'>{rows}</ul>"


def detail_html(sample: int, etalons: Sequence, ranges: Sequence) -> str:
    """Each unit's value at the clicked sample (the etalon's f) against its range."""
    rows = "".join(f"<br>{html.escape(et.layer)} unit {':'.join(map(str, et.units[0]))}: f = "
                   f"{et.out[0, 0]:.3f} (range [{lo:.2f}, {hi:.2f}]; etalon "
                   f"{'exact' if et.exact else 'Jacobian'})"
                   for et, (lo, hi) in zip(etalons, ranges) if lo is not None)
    return f"<b>sample {sample}</b>{rows}"
