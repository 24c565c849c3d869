"""Category hierarchy and minimum spanning tree (visualization-and-clustering paper, Algorithm 1).

Each category's representative vector is the mean of one layer's flattened output over the
category's images; two categories are ½(1 − cos) apart. The paper's loop merges the closest
pair into a super node and links every other node to it with the *average* of its distances
to the two: that is weighted-average (WPGMA) linkage, computed here with scipy;
:func:`paper_linkage` is the loop as written, for the test that proves the two agree.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core import validate as check
from ..core.chunks import spans
from ..core.control import NO_CONTROL, Control
from ..core.data import labelled_data
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.noise import gaussian_noise
from ..core.selection import default_layer_for
from ..core.types import Data, Seed
from .features import features, gram

NOISE_NAME = "noise"


@dataclass(frozen=True)
class CategoryTree:
    """names: K categories (the classes present, then "noise" when asked for); counts: (K,)
    images per category; vectors: (K, D) representative vectors of ``layer``; distances:
    (K, K) ½(1 − cos); linkage: (K−1, 4) scipy linkage matrix (WPGMA), rows [a, b, height,
    size] with new nodes numbered K, K+1, …; mst: (K−1, 3) edges [i, j, weight], i < j."""
    names: tuple[str, ...]
    classes: tuple[int, ...]          # class index of each category (-1 for noise)
    counts: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    linkage: np.ndarray
    mst: np.ndarray
    layer: str

    @property
    def mst_weight(self) -> float:
        return float(self.mst[:, 2].sum())

    def dendrogram(self) -> dict:
        """scipy's dendrogram layout (``icoord``, ``dcoord``, ``leaves``), nothing drawn."""
        from scipy.cluster.hierarchy import dendrogram
        return dendrogram(self.linkage, no_plot=True, labels=list(self.names))


def cosine_distances(vectors: np.ndarray, control: Control = NO_CONTROL) -> np.ndarray:
    """(K, D) -> (K, K) ½(1 − cos), symmetric, zero diagonal; a zero vector is ½ from all."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=1)
    unit = np.divide(v, norm[:, None], out=np.zeros_like(v), where=norm[:, None] > 0)
    d = 0.5 * (1.0 - np.clip(gram(unit, control), -1.0, 1.0))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def wpgma(distances: np.ndarray) -> np.ndarray:
    """Weighted-average linkage of a (K, K) distance matrix (scipy's ``method="weighted"``)."""
    from scipy.cluster.hierarchy import linkage  # scipy loads on first use, not import
    from scipy.spatial.distance import squareform
    return linkage(squareform(distances, checks=False), method="weighted")


def paper_linkage(distances: np.ndarray) -> np.ndarray:
    """Algorithm 1's loop as written, in scipy's linkage format (the reference for tests).

    A graph of nodes without a parent: repeatedly take the shortest edge (u, v), add a super
    node s, move every other node's edges to s with weight the mean of its edges to u and v.
    """
    k = len(distances)
    edges = {(i, j): float(distances[i, j]) for i in range(k) for j in range(i + 1, k)}
    size = {i: 1 for i in range(k)}
    rows = []
    for s in range(k, 2 * k - 1):
        (u, v), w = min(edges.items(), key=lambda e: (e[1], e[0]))
        del edges[(u, v)]
        size[s] = size[u] + size[v]
        others = {a for pair in edges for a in pair} - {u, v}
        for c in others:
            du, dv = edges.pop((min(c, u), max(c, u))), edges.pop((min(c, v), max(c, v)))
            edges[(c, s)] = (du + dv) / 2
        rows.append([u, v, w, size[s]])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def mst_edges(distances: np.ndarray) -> np.ndarray:
    """(K−1, 3) edges [i, j, weight] of the minimum spanning tree of the complete graph."""
    d = np.asarray(distances, dtype=np.float64)
    k = len(d)
    # csgraph reads a zero as "no edge": identical categories keep a positive stand-in
    tiny = np.finfo(np.float64).tiny
    g = np.where(d > 0, d, tiny)
    np.fill_diagonal(g, 0.0)
    from scipy.sparse.csgraph import minimum_spanning_tree
    tree = minimum_spanning_tree(g).tocoo()
    edges = sorted((min(i, j), max(i, j)) for i, j in zip(tree.row, tree.col))
    return np.array([[i, j, d[i, j]] for i, j in edges], dtype=np.float64).reshape(max(k - 1, 0), 3)


def class_vectors(engine, layer: str, data=None, include_noise: bool = False,
                  n_noise: int | None = None, seed: int = 0, control: Control = NO_CONTROL,
                  class_sums: np.ndarray | None = None, on_part: Callable | None = None):
    """Mean flattened feature per class present in ``data`` (default: the engine's dataset),
    plus the noise category; ``class_sums`` (classes, D): the per-class sums already known
    (an activation index). Returns (classes, names, counts, vectors (K, D)). ``on_part``:
    called with the same four for the images scanned so far (no noise yet), each time their
    number has at least doubled (after the chunks of :func:`~..core.chunks.spans`: 1, 3, 7, …
    images while the chunks double)."""
    data = labelled_data(engine, data)
    labels = data.labels.numpy()
    present, row, counts = np.unique(labels, return_inverse=True, return_counts=True)
    classes = [int(c) for c in present]
    n_noise = int(round(len(labels) / len(classes))) if n_noise is None else \
        check.count("n_noise", n_noise, 1 if include_noise else 0)
    seed = check.seed(seed)
    total = len(labels) + (n_noise if include_noise else 0)
    names = [engine.class_names[c] for c in classes]
    sums = np.zeros((len(classes), engine.layer(layer).n_units), np.float64)
    seen, told = np.zeros(len(classes), np.int64), 0
    for s, e in spans(len(labels) if class_sums is None else 0, engine.batch_size):
        f = features(engine, data.images[s:e], layer, control, s, total, ramp=False)
        np.add.at(sums, row[s:e], f.reshape(len(f), -1))
        seen += np.bincount(row[s:e], minlength=len(classes))
        if on_part is not None and e < len(labels) and e >= 2 * told:
            told, have = e, np.flatnonzero(seen)
            on_part(tuple(classes[i] for i in have), tuple(names[i] for i in have), seen[have],
                    sums[have] / seen[have, None])
    if class_sums is not None:
        sums = np.asarray(class_sums, np.float64)[present]
    vectors = sums / counts[:, None]
    if include_noise:
        f = features(engine, gaussian_noise(engine, n_noise, seed), layer, control,
                     len(labels), total)
        vectors = np.vstack([vectors, f.reshape(n_noise, -1).mean(0, dtype=np.float64)])
        classes, names, counts = classes + [-1], names + [NOISE_NAME], np.append(counts, n_noise)
    return tuple(classes), tuple(names), counts, vectors


def category_tree(engine: ModelHost, layer: str | None = None, include_noise: bool = False,
                  data: Data = None, n_noise: int | None = None, seed: Seed = 0,
                  control: Control = NO_CONTROL,
                  class_sums: np.ndarray | None = None) -> CategoryTree:
    """Algorithm 1 on the engine's dataset (or ``data``): hierarchy (WPGMA) and MST.

    layer: default the last (C, H, W) layer; include_noise: add random images as one more
    category (the paper's Fig. 8, lower), ``n_noise`` of them (default: the mean class size),
    drawn with ``seed`` by :func:`~..core.noise.gaussian_noise` (the dataset's channel mean
    and std), the same noise as Table 1's (:func:`out_of_sample`), so "noise -> bird" there
    and "noise nearest to bird" here can be compared. ``control.partial`` gets the tree of
    the classes seen so far (at least 2) each time the images scanned have doubled.
    """
    layer = default_layer_for(engine, "features", layer)

    def part(classes, names, counts, vectors):
        if len(classes) >= 2:
            control.partial(_tree(classes, names, counts, vectors, layer, control))
    classes, names, counts, vectors = class_vectors(engine, layer, data, include_noise, n_noise,
                                                    seed, control, class_sums, part)
    if len(classes) < 2:
        raise InvalidArgument(f"a hierarchy needs at least 2 categories; the data has {len(classes)}")
    return _tree(classes, names, counts, vectors, layer, control)


def _tree(classes, names, counts, vectors, layer, control) -> CategoryTree:
    d = cosine_distances(vectors, control)
    return CategoryTree(names=names, classes=classes, counts=counts,
                        vectors=vectors.astype(np.float32), distances=d, linkage=wpgma(d),
                        mst=mst_edges(d), layer=layer)
