"""What a widget's ``paint.py`` returns for one canvas: an RGBA sheet and the captions written
on it. Pure records (numpy only), so paint modules stay free of any widget library."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FONT = "11px sans-serif"
CHAR_PX = 6.2        # about the width of one character of FONT (for cutting captions to fit)


@dataclass(frozen=True)
class Caption:
    """One text drawn on a sheet at canvas px (x, y) (the baseline's left end)."""
    text: str
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class Sheet:
    """What one canvas shows: ``rgba`` (H, W, 4) uint8 (the canvas takes its size) and the
    ``captions`` written over it in ``font``, dark grey."""
    rgba: np.ndarray
    captions: tuple[Caption, ...] = ()
    font: str = FONT


def fit_text(text: str, width: float) -> str:
    """``text`` cut (with "…") to about ``width`` px of :data:`FONT`."""
    n = max(1, int(width / CHAR_PX))
    return text if len(text) <= n else text[:n - 1] + "…"
