"""Geometry of the PredictionTreeView (pure numpy, canvas px).

The category hierarchy (scipy's linkage numbering: categories 0..K-1, merge i is node K+i) is
shown from a ``focus`` node, with at most :data:`MAX_SHOWN` nodes at its right edge: the
highest merges open first, the others stay closed as counted groups; the path from the focus
to the chosen category is always open. Beside it the minimum spanning tree of the nodes shown
(MST edges between categories, contracted to the nodes they fall in; a grey "rest" disc
holds the categories outside the focus). The prediction tree is drawn top-down the same way,
with at most :data:`TREE_LEAVES` nodes at its bottom and the image's path open.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CAT_SIZE = (250, 560)          # hierarchy canvas (height, width): dendrogram left, MST right
DENDRO_W = 330                 # px of the dendrogram and its labels
LABEL_W = 150                  # px of the labels right of the dendrogram
TREE_SIZE = (320, 560)         # prediction tree canvas (height, width)
MARGIN = 14
TITLE = 18                     # px of title above a drawing
MAX_SHOWN = 16                 # hierarchy nodes shown at most (the digits: all 10)
TREE_LEAVES = 64               # prediction tree nodes at the bottom at most
REST = -2                      # the MST disc of the categories outside the focus
DISC_R, GROUP_R = 9, 12        # px radius of a category's and a group's MST disc
Point = tuple[float, float]
Children = Callable[[int], Sequence[int]]


def opened(root: int, children: Children, rank: Callable[[int], float],
           keep: Iterable[int] = (), limit: int = MAX_SHOWN) -> frozenset[int]:
    """The nodes drawn open below ``root`` (their children shown): those in ``keep`` (a path
    from ``root``) always, then those of highest ``rank`` (a merge's height, a node's size)
    while at most ``limit`` nodes stay closed."""
    keep = set(keep)
    done: set[int] = set()
    shown = 1
    heap = [(0, -rank(root), root)]
    while heap:
        _, _, k = heapq.heappop(heap)
        kids = children(k)
        if not kids or (k not in keep and shown + len(kids) - 1 > limit):
            continue
        done.add(k)
        shown += len(kids) - 1
        for c in kids:
            heapq.heappush(heap, (0 if c in keep else 1, -rank(c), c))
    return frozenset(done)


def closed(root: int, children: Children, is_open: Iterable[int]) -> list[int]:
    """The nodes below ``root`` that are shown but not open, in depth-first order."""
    is_open, out, stack = set(is_open), [], [root]
    while stack:
        k = stack.pop()
        if k in is_open:
            stack.extend(reversed(children(k)))
        else:
            out.append(k)
    return out


@dataclass(frozen=True)
class Hierarchy:
    """A linkage (K-1, 4) as a tree: ``kids`` (K-1, 2), ``height`` and ``size`` (categories
    below) per node (2K-1,), ``parent`` (2K-1,) (-1 at the root)."""
    kids: np.ndarray
    height: np.ndarray
    size: np.ndarray
    parent: np.ndarray

    @classmethod
    def of(cls, linkage: np.ndarray) -> Hierarchy:
        z = np.asarray(linkage, dtype=np.float64).reshape(-1, 4)
        k = len(z) + 1
        kids = z[:, :2].astype(int)
        parent = np.full(2 * k - 1, -1)
        parent[kids.ravel()] = np.repeat(np.arange(k, 2 * k - 1), 2)
        return cls(kids, np.r_[np.zeros(k), z[:, 2]], np.r_[np.ones(k, int), z[:, 3].astype(int)],
                   parent)

    @property
    def n(self) -> int:
        """Categories (leaves)."""
        return len(self.kids) + 1

    @property
    def root(self) -> int:
        return 2 * self.n - 2

    def node(self, focus: int) -> int:
        """The node a focus names (-1: the root)."""
        return self.root if focus < 0 else focus

    def children(self, node: int) -> tuple[int, ...]:
        return () if node < self.n else tuple(int(c) for c in self.kids[node - self.n])

    def path(self, leaf: int) -> list[int]:
        """Nodes from the root down to ``leaf``."""
        out = [leaf]
        while self.parent[out[-1]] >= 0:
            out.append(int(self.parent[out[-1]]))
        return out[::-1]

    def leaves(self, node: int) -> list[int]:
        return closed(node, self.children, range(self.n, 2 * self.n - 1))

    def fitting_focus(self, leaf: int | None, focus: int, limit: int = MAX_SHOWN) -> int:
        """The focus that shows ``leaf`` (None: any): ``focus`` if it holds it within ``limit``
        - 1 levels, else the ancestor that many levels above it (-1 if that is the root)."""
        if leaf is None:
            return focus
        path = self.path(leaf)
        node = self.node(focus)
        if node in path and len(path) - path.index(node) <= limit:
            return focus
        top = path[max(0, len(path) - limit)]
        return -1 if top == self.root else top


@dataclass(frozen=True)
class CategoryView:
    """What the hierarchy canvas shows from ``focus`` (a node): ``rows`` (the closed nodes,
    top to bottom: categories and counted groups) at ``xy`` with every open node, the
    ``red`` nodes from the focus to the chosen category (or to the row that holds it, when it
    lies deeper than the rows allow), and the MST ``discs`` (rows, and
    :data:`REST` when zoomed in) with their ``edges`` (pairs of discs)."""
    focus: int
    open: frozenset[int]
    rows: tuple[int, ...]
    xy: dict[int, Point]
    red: frozenset[int]
    row_h: float
    discs: dict[int, Point]
    edges: tuple[tuple[int, int], ...]

    def lines(self, h: Hierarchy) -> list[tuple[Point, Point, bool]]:
        """The dendrogram's segments (a, b, red): from each open node's vertical bar to each
        child, and a stub left of the focus when it is not the root."""
        out = []
        for k in self.open:
            x, _ = self.xy[k]
            kids = h.children(k)
            ys = [self.xy[c][1] for c in kids]
            out.append(((x, min(ys)), (x, max(ys)), False))
            out += [((x, self.xy[c][1]), self.xy[c], c in self.red) for c in kids]
        x, y = self.xy[self.focus]
        if self.focus != h.root:
            out.append(((MARGIN, y), (x, y), False))
        return out

    def hit(self, x: float, y: float) -> int | None:
        """The node under (x, y): a row's label or end, an open node's bar, a disc (REST
        included); None elsewhere."""
        if x < DENDRO_W:
            if self.rows:
                i = int((y - TITLE - MARGIN) // self.row_h)
                row = self.rows[i] if 0 <= i < len(self.rows) else None
                if row is not None and x >= self.xy[row][0] - 6:
                    return row
            return nearest({k: self.xy[k] for k in self.open}, x, y, radius=8.0)
        return nearest(self.discs, x, y, radius=float(GROUP_R))


def category_view(h: Hierarchy, focus: int, leaf: int | None, distances: np.ndarray,
                  mst: np.ndarray, size: tuple[int, int] = CAT_SIZE) -> CategoryView:
    """Lay out the hierarchy ``h`` from ``focus`` (-1: the root) with the path to category
    ``leaf`` (None: no category) open and red; ``distances`` (K, K) and ``mst`` (K-1, 3) of the
    category tree place and link the MST discs."""
    node = h.node(focus)
    path = h.path(leaf) if leaf is not None else []
    # the path from the focus, as far as MAX_SHOWN rows allow: to the leaf, or to the closed
    # group that holds it
    below = path[path.index(node):] if node in path else []
    red = frozenset(below[:MAX_SHOWN])
    is_open = opened(node, h.children, lambda k: h.height[k], below[:MAX_SHOWN - 1], MAX_SHOWN)
    rows = closed(node, h.children, is_open)
    top, bottom = TITLE + MARGIN, size[0] - MARGIN
    row_h = (bottom - top) / max(len(rows), 1)
    right = DENDRO_W - LABEL_W
    scale = (right - 2 * MARGIN) / max(h.height[node], 1e-12)
    xy: dict[int, Point] = {}
    for i, k in enumerate(rows):
        xy[k] = (right - h.height[k] * scale, top + (i + 0.5) * row_h)
    for k in sorted(is_open, key=lambda n: h.height[n]):      # children before parents
        ys = [xy[c][1] for c in h.children(k)]
        xy[k] = (right - h.height[k] * scale, (min(ys) + max(ys)) / 2)
    groups: dict[int, Sequence[int]] = {k: h.leaves(k) for k in rows}
    if node != h.root:
        inside = set(h.leaves(node))
        groups[REST] = [i for i in range(h.n) if i not in inside]
    r = GROUP_R + 2                              # disc centres this far inside the panel
    discs, edges = mst_layout(groups, distances, mst, (DENDRO_W + r, top + r - 8,
                                                      size[1] - DENDRO_W - 2 * r, bottom - top - 2 * r + 8))
    return CategoryView(int(node), is_open, tuple(rows), xy, red, row_h, discs, edges)


def mst_layout(groups: dict[int, Sequence[int]], distances: np.ndarray, mst: np.ndarray,
               box: tuple[float, float, float, float]) -> tuple[dict[int, Point],
                                                                tuple[tuple[int, int], ...]]:
    """Discs and edges of the MST contracted to ``groups`` (disc -> its categories): an MST
    edge between two groups links them (the lightest one, as in Kruskal, so the discs form a
    tree). Discs sit at the classical MDS of the groups' mean distances, spread apart and fitted
    into ``box`` (left, top, width, height)."""
    keys = list(groups)
    which = np.empty(len(distances), int)
    member = np.zeros((len(distances), len(keys)))
    for g, k in enumerate(keys):
        which[list(groups[k])] = g
        member[list(groups[k]), g] = 1.0 / len(groups[k])
    root = list(range(len(keys)))

    def find(a):
        while root[a] != a:
            root[a] = a = root[root[a]]
        return a
    edges = []
    for i, j, _w in sorted(np.asarray(mst).reshape(-1, 3).tolist(), key=lambda e: e[2]):
        a, b = find(which[int(i)]), find(which[int(j)])
        if a != b:
            root[a] = b
            edges.append((keys[which[int(i)]], keys[which[int(j)]]))
    if len(keys) == 1:
        return {keys[0]: (box[0] + box[2] / 2, box[1] + box[3] / 2)}, ()
    mean = member.T @ np.asarray(distances) @ member
    np.fill_diagonal(mean, 0.0)
    pos = fit(spread(fit(classical_mds(mean), box), 2.4 * GROUP_R), box)   # spread, kept inside
    return {k: (float(p[0]), float(p[1])) for k, p in zip(keys, pos)}, tuple(edges)


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


def tree_layout(top: Sequence[int], children: Children, width: int, height: int,
                is_open: Iterable[int] | None = None) -> dict[int, Point]:
    """Canvas (x, y) of every node shown of a prediction tree (``top``: the root's children;
    ``children(node)``: a node's children, none for a leaf; ``is_open``: the nodes whose
    children are shown, default all): the closed nodes in a bottom row in depth-first order,
    each open node above the middle of its children, one row per depth from the root (key
    -1, top)."""
    is_open = None if is_open is None else set(is_open) | {-1}
    depth: dict[int, int] = {}
    order: list[int] = []
    stack = [(t, 1) for t in reversed(top)]
    while stack:
        k, dep = stack.pop()
        depth[k] = dep
        kids = children(k) if is_open is None or k in is_open else ()
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
        if k not in pos:
            pos[k] = (float(np.mean([pos[c][0] for c in children(k)])), y0 + dy * depth[k])
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
