"""How alike two maps of one image are, with the paper's three measures (as in the authors'
code): Spearman rank correlation of the maps summed over channels with and without
absolute values, and SSIM (scikit-image) of the maps min-max normalised to [0, 1].

Summed over channels: |m| summed for the absolute reading, m summed for the signed one, as the
authors' visualisation helpers do (without their clipping at the 99th percentile). A constant
map has no ranks: its rank correlations are nan. SSIM uses Gaussian weights (sigma 1.5, an
11 x 11 window; the largest odd window that fits on smaller images; nan below 3 x 3).
"""
from __future__ import annotations

import numpy as np

METRICS = ("rank_abs", "rank", "ssim")


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool) -> np.ndarray:
    """(N,) Spearman's rho of each pair of (N, C, H, W) maps summed over channels (of |m| if
    ``absolute``): Pearson's r of their ranks, ties given the mean rank (= scipy's spearmanr)."""
    from scipy.stats import rankdata  # scipy and scikit-image load on first use
    a, b = ((np.abs(m) if absolute else m).sum(1).reshape(len(m), -1) for m in (a, b))
    ra, rb = (r - r.mean(1, keepdims=True) for r in (rankdata(a, axis=1), rankdata(b, axis=1)))
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / den, np.nan)


def unit_range(m: np.ndarray) -> np.ndarray:
    """``m`` min-max normalised to [0, 1] (zeros for a constant map)."""
    m = np.asarray(m, dtype=np.float64)
    span = np.ptp(m)
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (C, H, W) maps, each min-max normalised to [0, 1] (channels as channels)."""
    from skimage.metrics import structural_similarity
    side = min(a.shape[1:])
    win = min(11, side if side % 2 else side - 1)
    if win < 3:
        return float("nan")
    a, b = unit_range(a), unit_range(b)
    axis = 0 if a.shape[0] > 1 else None
    if axis is None:
        a, b = a[0], b[0]
    return float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True,
                                       win_size=win, channel_axis=axis))


def similarities(original: np.ndarray, changed: np.ndarray) -> dict[str, np.ndarray]:
    """metric -> (N,) similarity of each image's ``changed`` map to its ``original`` one;
    both (N, C, H, W)."""
    return {"rank_abs": rank_correlation(original, changed, True),
            "rank": rank_correlation(original, changed, False),
            "ssim": np.array([ssim(a, b) for a, b in zip(original, changed)])}


def self_similarities(maps: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`similarities` of (N, C, H, W) ``maps`` to themselves, without computing them (nor
    loading scipy and scikit-image: the original model's row shows at once): rank
    correlations 1, nan for a constant map; SSIM 1, nan where no 3 x 3 window fits."""
    m = np.asarray(maps).reshape(len(maps), maps.shape[1], -1)
    one = np.ones(len(maps))
    ranked = {k: np.where(np.ptp(v.sum(1), axis=1) > 0, one, np.nan)
              for k, v in (("rank_abs", np.abs(m)), ("rank", m))}
    fits = min(maps.shape[2:]) >= 3
    return {**ranked, "ssim": one if fits else np.full(len(maps), np.nan)}
