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
- ``class_sums``: (K, C * P) float64 per-class sums of the flattened output (class means;
  float32 within a batch, float64 across batches).

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


def top_order(v: np.ndarray, k: int) -> np.ndarray:
    """(C, min(k, m)) columns of the k largest values of each row of ``v`` (C, m), highest
    first, ties to the lower column: numpy's stable ``argsort(-v)[:, :k]``, by a partition
    (rows with a tie at the k-th value are sorted in full)."""
    if k >= v.shape[1]:
        return np.argsort(-v, axis=1, kind="stable")
    part = np.argpartition(-v, k - 1, axis=1)[:, :k]
    chosen = np.take_along_axis(v, part, 1)
    kth = chosen.min(1, keepdims=True)
    tied = (v == kth).sum(1) > (chosen == kth).sum(1)     # a row at the k-th value left out
    order = np.take_along_axis(part, np.lexsort((part, -chosen), axis=1), 1)
    if tied.any():
        order[tied] = np.argsort(-v[tied], axis=1, kind="stable")[:, :k]
    return order


def chan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Merge two (3, C) [count, mean, M2] moment arrays (the parallel variance formula)."""
    na, nb = a[0], b[0]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = b[1] - a[1]
        mean = np.where(n > 0, a[1] + delta * np.where(n > 0, nb / n, 0), 0.0)
        m2 = a[2] + b[2] + np.where(n > 0, delta * delta * na * nb / n, 0.0)
    return np.stack([n, mean, m2])


def _moments(means: np.ndarray, m2: np.ndarray, p: int) -> np.ndarray:
    """(3, C) moments of a batch from per-image means and M2 (n, C) over ``p`` positions."""
    mean = means.mean(0)
    return np.stack([np.full(means.shape[1], float(p * len(means))), mean,
                     m2.sum(0) + p * ((means - mean) ** 2).sum(0)])


class LayerStats:
    """Accumulates :mod:`this module's <.stats>` statistics of one layer over the batches of a
    chunk. ``n_classes``: 0 for no class sums."""

    def __init__(self, channels: int, positions: int, k: int, n_classes: int):
        self.c, self.p, self.k, self.n_classes = channels, positions, k, n_classes
        self.per_image: dict[str, list] = {"mean": [], "max": [], "active_map": []}
        self.start: int | None = None
        self.moments = np.zeros((3, channels))
        self.active = np.zeros(channels, np.int64)
        self.class_sums = np.zeros((n_classes, channels * positions)) if n_classes else None

    def add(self, out: torch.Tensor, labels: torch.Tensor, start: int) -> None:
        """One batch: ``out`` (n, C, *grid) on any device, ``labels`` (n,), dataset rows
        ``start .. start + n - 1``."""
        n = out.shape[0]
        a = out.detach().reshape(n, self.c, -1)
        self.start = start if self.start is None else self.start       # consecutive rows
        mean = a.mean(2)                                               # (n, C), as the scan
        self.per_image["mean"].append(mean.T.float().cpu().numpy())
        self.per_image["max"].append(a.amax(2).T.float().cpu().numpy())
        # (reductions over the last axis: several times faster than over (0, 2) on a CPU)
        m2 = (a - mean[..., None]).pow_(2).sum(2).double().cpu().numpy()
        self.moments = chan(self.moments, _moments(mean.double().cpu().numpy(), m2, a.shape[2]))
        on = torch.relu(a).sign_()                                     # 1 where positive
        self.per_image["active_map"].append(on.sum(1).cpu().numpy().astype(np.uint16))
        self.active += on.sum(2).sum(0).cpu().numpy().astype(np.int64)
        del on
        if self.class_sums is not None:
            ok = (labels >= 0) & (labels < self.n_classes)
            if bool(ok.any()):
                # one matrix product: float32 sums within the batch, float64 across batches
                onehot = torch.zeros(self.n_classes, n, dtype=a.dtype, device=a.device)
                onehot[labels[ok].to(a.device), ok.nonzero()[:, 0].to(a.device)] = 1.0
                self.class_sums += (onehot @ a.reshape(n, -1)).double().cpu().numpy()

    def result(self, prefix: str) -> dict[str, np.ndarray]:
        """The chunk's arrays, keyed ``prefix + name``."""
        out = {f"{prefix}{k}": np.concatenate(v, 1 if k != "active_map" else 0)
               for k, v in self.per_image.items()}
        for t in TOP:
            v = out[f"{prefix}{t}"]
            order = top_order(v, self.k)
            out[f"{prefix}top_{t}_values"] = np.take_along_axis(v, order, 1)
            out[f"{prefix}top_{t}_indices"] = order + self.start
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
