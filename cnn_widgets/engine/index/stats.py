"""Streaming statistics of one layer, fed one batch at a time and merged exactly.

A layer's output (N, C, *grid) is read as (N, C, P) with P positions (P = 1 for a flat layer:
its units are its channels). Per chunk of images we keep, as numpy arrays:

- ``mean``, ``max``: (C, n) float32, each image's spatial mean and spatial maximum per channel
  (the scan's ``channel(layer, c)`` objective and the spatial-max ranking);
- ``top_mean_values/indices``, ``top_max_values/indices``: (C, k) the k best dataset rows,
  highest first, ties to the lower row (numpy's stable ``argsort(-v)``);
- ``moments``: (3, C) float64 count, mean and M2 of every value of the channel (Chan et al.);
- ``active``: (C,) int64 positive values per channel (the probing paper's active fraction);
- ``active_map``: (n, P) uint16 active channels at each position of each image (Fig. 6);
- ``class_sums``: (K, C * P) float64 per-class sums of the flattened output (class means).

Every merge is exact in the sense that the fold order is fixed: chunks fold in dataset order,
so one process and many give the same bits (:func:`fold`).
"""
from __future__ import annotations

import numpy as np
import torch

TOP = ("mean", "max")


def merge_top(v1: np.ndarray, i1: np.ndarray, v2: np.ndarray, i2: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, k) best of two (C, *) top lists: value descending, then row ascending."""
    v, i = np.concatenate([v1, v2], 1), np.concatenate([i1, i2], 1)
    order = np.lexsort((i, -v), axis=1)[:, :k]
    return np.take_along_axis(v, order, 1), np.take_along_axis(i, order, 1)


def chan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two (3, C) [count, mean, M2] moment arrays (the parallel variance formula)."""
    na, nb = a[0], b[0]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = b[1] - a[1]
        mean = np.where(n > 0, a[1] + delta * np.where(n > 0, nb / n, 0), 0.0)
        m2 = a[2] + b[2] + np.where(n > 0, delta * delta * na * nb / n, 0.0)
    return np.stack([n, mean, m2])


class LayerStats:
    """Accumulates :mod:`this module's <.stats>` statistics of one layer over the batches of a
    chunk. ``n_classes``: 0 for no class sums."""

    def __init__(self, channels: int, positions: int, k: int, n_classes: int):
        self.c, self.p, self.k, self.n_classes = channels, positions, k, n_classes
        self.per_image: dict[str, list] = {"mean": [], "max": [], "active_map": []}
        self.top = {t: (np.zeros((channels, 0), np.float32), np.zeros((channels, 0), np.int64))
                    for t in TOP}
        self.moments = np.zeros((3, channels))
        self.active = np.zeros(channels, np.int64)
        self.class_sums = np.zeros((n_classes, channels * positions)) if n_classes else None

    def add(self, out: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        """One batch: ``out`` (n, C, *grid) on any device, ``labels`` (n,), dataset rows
        ``start .. start + n - 1``."""
        n = out.shape[0]
        a = out.detach().reshape(n, self.c, -1)
        rows = np.arange(start, start + n, dtype=np.int64)
        for kind, v in (("mean", a.mean(2)), ("max", a.amax(2))):
            v = v.T.float().cpu().numpy()                              # (C, n)
            self.per_image[kind].append(v)
            self.top[kind] = merge_top(*self.top[kind], v, np.broadcast_to(rows, v.shape),
                                       self.k)
        positive = a > 0
        self.per_image["active_map"].append(
            positive.sum(1, dtype=torch.int32).cpu().numpy().astype(np.uint16))
        self.active += positive.sum((0, 2)).cpu().numpy()
        del positive
        mean = a.mean((0, 2))
        m2 = (a - mean[None, :, None]).square().sum((0, 2))
        batch = np.stack([np.full(self.c, float(n * a.shape[2])),
                          mean.double().cpu().numpy(), m2.double().cpu().numpy()])
        self.moments = chan(self.moments, batch)
        if self.class_sums is not None:
            ok = (labels >= 0) & (labels < self.n_classes)
            if bool(ok.any()):
                sums = torch.zeros(self.n_classes, a.shape[1] * a.shape[2], dtype=torch.float64,
                                   device=a.device)
                sums.index_add_(0, labels[ok].to(a.device), a[ok.to(a.device)].reshape(
                    int(ok.sum()), -1).double())
                self.class_sums += sums.cpu().numpy()

    def result(self, prefix: str) -> dict[str, np.ndarray]:
        """The chunk's arrays, keyed ``prefix + name``."""
        out = {f"{prefix}{k}": np.concatenate(v, 1 if k != "active_map" else 0)
               for k, v in self.per_image.items()}
        for t in TOP:
            out[f"{prefix}top_{t}_values"], out[f"{prefix}top_{t}_indices"] = self.top[t]
        out[f"{prefix}moments"], out[f"{prefix}active"] = self.moments, self.active
        if self.class_sums is not None:
            out[f"{prefix}class_sums"] = self.class_sums
        return out


def fold(acc: dict[str, np.ndarray] | None, chunk: dict[str, np.ndarray],
         k: int) -> dict[str, np.ndarray]:
    """Merge the summary arrays of the next chunk (dataset order) into ``acc``: top lists by
    merge, moments by Chan, counts and sums by addition. Per-image arrays are not kept."""
    summary = {key: v for key, v in chunk.items() if _is_summary(key)}
    if acc is None:
        return summary
    out = {}
    for key, v in summary.items():
        if key.endswith("_values"):
            stem = key[:-len("_values")]
            out[key], out[f"{stem}_indices"] = merge_top(
                acc[key], acc[f"{stem}_indices"], v, chunk[f"{stem}_indices"], k)
        elif key.endswith("_indices"):
            continue
        elif key.endswith("moments"):
            out[key] = chan(acc[key], v)
        else:
            out[key] = acc[key] + v
    return out


PER_IMAGE = ("mean", "max", "active_map", "labels", "codes")


def _is_summary(key: str) -> bool:
    return key.rpartition("/")[2] not in PER_IMAGE
