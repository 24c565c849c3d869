"""PredictionTreeView's pure layout math and records: the dendrogram's lines and leaf labels,
the MST's disc positions (classical MDS, spread apart, fitted into a box), the prediction
tree's node coordinates and the hit tests of clicks and hovers. Numpy only; all coordinates in
canvas px."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ...engine.clustering.category_tree import CategoryTree
    from ...engine.clustering.prediction_tree import PredictionTree, TreePath

CAT_SIZE = (250, 470)          # category canvas (height, width): dendrogram left, MST right
DENDRO_W = 270
MARGIN = 14
TITLE = 18                     # px of title above the tree
Point = tuple[float, float]


def classical_mds(d: np.ndarray) -> np.ndarray:
    """(K, K) distances -> (K, 2) positions whose distances approximate them (Torgerson)."""
    k = len(d)
    j = np.eye(k) - 1.0 / k
    b = -0.5 * j @ (d ** 2) @ j
    w, v = np.linalg.eigh(b)
    order = np.argsort(w)[::-1][:2]
    return v[:, order] * np.sqrt(np.maximum(w[order], 1e-12))


def spread(points: np.ndarray, min_dist: float, rounds: int = 60) -> np.ndarray:
    """Push apart points closer than ``min_dist`` (px) so that labelled discs do not cover
    each other; the layout otherwise stays as it was."""
    p = np.array(points, dtype=np.float64)
    for _ in range(rounds):
        diff = p[:, None] - p[None]
        dist = np.hypot(diff[..., 0], diff[..., 1]) + np.eye(len(p))
        push = np.clip(min_dist - dist, 0, None) / 2
        np.fill_diagonal(push, 0)
        if not push.any():
            break
        p += (diff / dist[..., None] * push[..., None]).sum(1)
    return p


def fit(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Scale (K, 2) points into box (left, top, width, height), keeping the aspect ratio."""
    lo, hi = points.min(0), points.max(0)
    span = np.maximum(hi - lo, 1e-12)
    s = min(box[2] / span[0], box[3] / span[1])
    centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    return centre + (points - (lo + hi) / 2) * s


@dataclass(frozen=True)
class CategoryLayout:
    """Where the category canvas draws: dendrogram polylines ((4, 2) px each), the x of each
    category's leaf label (class -> px) and each category's MST disc (class -> (x, y))."""
    lines: tuple[np.ndarray, ...]
    leaf_x: dict[int, float]
    positions: dict[int, Point]


@dataclass(frozen=True)
class Categories:
    """The category hierarchy and where it is drawn."""
    tree: CategoryTree
    layout: CategoryLayout


@dataclass(frozen=True)
class TreeResult:
    """One category's prediction tree, the path of the query (version ``query``) and the
    nodes' canvas positions."""
    tree: PredictionTree
    path: TreePath | None
    node_pos: dict
    query: int


def category_layout(icoord, dcoord, leaves: Sequence[int], classes: Sequence[int],
                    distances: np.ndarray, size: tuple[int, int] = CAT_SIZE) -> CategoryLayout:
    """Lay out scipy's dendrogram (``icoord``, ``dcoord``, ``leaves`` of ``dendrogram(...,
    no_plot=True)``) on the left and the MST discs (MDS of ``distances`` (K, K)) on the right;
    ``classes``: the class of each category (-1: noise)."""
    h, w = size
    ic, dc = np.asarray(icoord, float), np.asarray(dcoord, float)
    sx = (DENDRO_W - 2 * MARGIN) / (10.0 * len(classes))
    sy = (h - 3 * MARGIN - 16) / max(dc.max(), 1e-12)
    lines = tuple(np.stack([xs, ys], 1) for xs, ys in zip(MARGIN + ic * sx, h - 2 * MARGIN - dc * sy))
    leaf_x = {int(classes[leaf]): MARGIN + (10 * i + 5) * sx for i, leaf in enumerate(leaves)}
    pos = spread(fit(classical_mds(distances),
                     (DENDRO_W + 20, MARGIN + 14, w - DENDRO_W - 30, h - 2 * MARGIN - 20)), 22.0)
    return CategoryLayout(lines, leaf_x, {int(c): (float(p[0]), float(p[1]))
                                          for c, p in zip(classes, pos)})


def tree_layout(top: Sequence[int], children: Callable[[int], Sequence[int]], width: int,
                height: int) -> dict[int, Point]:
    """Canvas (x, y) of every node of a prediction tree (``top``: the root's children;
    ``children(node)``: a node's children, none for a leaf): leaves in a bottom row in
    depth-first order, each super node above the middle of its children, one row per depth
    from the root (key -1, top)."""
    depth: dict[int, int] = {}
    order: list[int] = []
    stack = [(t, 1) for t in reversed(top)]
    while stack:
        k, dep = stack.pop()
        depth[k] = dep
        kids = children(k)
        if kids:
            stack.extend((c, dep + 1) for c in reversed(kids))
        else:
            order.append(k)
    rows = max(depth.values()) + 1
    y0 = TITLE + MARGIN
    dy = (height - y0 - MARGIN) / max(rows, 1)
    dx = (width - 2 * MARGIN) / max(len(order), 1)
    pos = {k: (MARGIN + dx * (i + 0.5), float(height - MARGIN)) for i, k in enumerate(order)}
    for k in sorted(depth, key=lambda n: -depth[n]):          # deepest first
        kids = children(k)
        if kids:
            pos[k] = (float(np.mean([pos[c][0] for c in kids])), y0 + dy * depth[k])
    pos[-1] = (float(np.mean([pos[t][0] for t in top])), float(y0))    # the root R
    return pos


def nearest(points: dict[int, Point], x: float, y: float, radius: float = 12.0) -> int | None:
    """The key of the point nearest (x, y) if it lies within ``radius`` px, else None."""
    if not points:
        return None
    keys = list(points)
    d = [np.hypot(points[k][0] - x, points[k][1] - y) for k in keys]
    i = int(np.argmin(d))
    return keys[i] if d[i] <= radius else None


def category_at(layout: CategoryLayout | None, x: float, y: float,
                height: int = CAT_SIZE[0]) -> int | None:
    """The category (class, -1: noise) under (x, y): its MST disc, or its dendrogram label."""
    if layout is None:
        return None
    hit = nearest(layout.positions, x, y)
    if hit is None and y > height - 2 * MARGIN:
        labels = {k: (v, float(height - MARGIN)) for k, v in layout.leaf_x.items()}
        hit = nearest(labels, x, y, radius=10.0)
    return hit
