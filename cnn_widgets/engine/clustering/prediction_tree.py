"""Filter-wise prediction tree of one category (visualization-and-clustering paper, Algorithm 2).

Leaves are the category's images, each a (d, l·l) feature map of a layer with d filters, all
filters reachable. Repeatedly the two closest children of the root merge into a super node;
two nodes u, v are ½(1 − cos(u·1_U, v·1_V)) apart, where U, V are their reachable filters
and ·1_U zeroes the other filters. The critical filter F of a merge is the one in U ∩ V whose
removal from both lowers that cosine most (the paper's argmin of cos without F / cos with F,
read as a difference so a negative cosine cannot flip it); the super node reaches
(U ∩ V) \\ {F}.

Two things the paper leaves open, decided here:

- **A super node's vector** is the mean feature map of all images below it (the size-weighted
  mean of its two children), as Algorithm 1's representative vector of a category.
- **Stopping rule.** Only pairs sharing at least two reachable filters may merge, so a
  critical filter exists and the super node keeps at least one filter. The loop stops when no
  two children of the root share two filters. This holds whenever the paper's condition
  ("every child has at most one filter") holds, and it always ends (each merge removes a
  child), where the paper's loop as written can spin forever: on a last child that still
  reaches two filters, or on children without a shared filter (no critical filter exists).

:func:`build_fast` keeps the distance matrix and every node's nearest neighbour: a merge
computes one new row (one matrix-vector product) and re-scans only the rows that pointed at
the merged pair and got farther; O(n²·d·l²) in all; Stop is checked after every merge and
every block of rows of the first distance matrix (:func:`~.features.gram`).
:func:`build_naive` is the paper's loop as written (all pairwise distances again on every
merge), O(n³·d·l²): the reference for tests and the benchmark. Features come from the
engine's device; the merge loop is a chain of small dependent steps and runs in NumPy.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.data import labelled_data
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.selection import default_layer_for
from ..core.types import Category, Data
from .features import features, gram


@dataclass(frozen=True)
class Merges:
    """The merge sequence on n leaves, nodes numbered as in scipy: leaves 0..n-1, merge i makes
    node n+i. pairs: (M, 2) children; critical: (M,) filter; distance: (M,) ½(1 − cos) at the
    merge; filters: (n+M, d) bool reachable filters; size: (n+M,) leaves below each node."""
    pairs: np.ndarray
    critical: np.ndarray
    distance: np.ndarray
    filters: np.ndarray
    size: np.ndarray

    @property
    def n_leaves(self) -> int:
        return len(self.size) - len(self.pairs)


@dataclass(frozen=True)
class TreePath:
    """The way of one image from the root to a leaf. nodes: node ids, top-level first, a leaf
    last; distance: ½(1 − cos) of the image to each node over that node's reachable filters;
    critical: the critical filter of each node (-1 at the leaf); image_activation /
    node_activation: mean over positions of that filter for the image and for the node's
    mean feature map (nan at the leaf)."""
    nodes: tuple[int, ...]
    distance: np.ndarray
    critical: np.ndarray
    image_activation: np.ndarray
    node_activation: np.ndarray


@dataclass(frozen=True)
class PredictionTree:
    """Algorithm 2 for one category. Nodes as in :class:`Merges`; ``images``: (n,) dataset
    index of each leaf; ``features``: (n, d, l·l) leaf feature maps; ``top``: the children of
    the root when the loop stopped; ``mean_activation``: (n+M, d) each node's mean activation
    per filter (mean over positions and images below it)."""
    category: int
    name: str
    layer: str
    images: np.ndarray
    features: np.ndarray
    merges: Merges
    top: tuple[int, ...]
    mean_activation: np.ndarray
    featurize: Callable | None = field(default=None, repr=False, compare=False)

    @property
    def n_filters(self) -> int:
        return self.features.shape[1]

    @property
    def n_nodes(self) -> int:
        return len(self.merges.size)

    def children(self, node: int) -> tuple[int, ...]:
        """The two children of a super node; () for a leaf; the top nodes for -1 (the root)."""
        if node == -1:
            return self.top
        n = len(self.images)
        return () if node < n else tuple(int(c) for c in self.merges.pairs[node - n])

    def critical(self, node: int) -> int:
        n = len(self.images)
        return -1 if node < n else int(self.merges.critical[node - n])

    def leaves(self, node: int) -> np.ndarray:
        """Leaf ids below ``node`` (sorted)."""
        stack, out = [node], []
        while stack:
            k = stack.pop()
            kids = self.children(k)
            stack.extend(kids) if kids else out.append(k)
        return np.array(sorted(out), dtype=int)

    def parent(self) -> np.ndarray:
        """(n+M,) parent id of every node, -1 for the top nodes."""
        p = np.full(self.n_nodes, -1, dtype=int)
        n = len(self.images)
        for i, (a, b) in enumerate(self.merges.pairs):
            p[a] = p[b] = n + i
        return p

    def path(self, image) -> TreePath:
        """The path of one image (C, H, W) from the root to a leaf (the paper's Fig. 1f)."""
        if self.featurize is None:
            raise InvalidArgument("this tree has no feature function; use path_from_features")
        return self.path_from_features(self.featurize(image))

    def path_from_features(self, f) -> TreePath:
        """Walk down from the root: at each node go to the child nearest to the image, both
        seen through that child's reachable filters (its critical filters decide what counts).
        f: the image's feature map of the tree's layer, (d, l, l) or (d·l·l,)."""
        f = np.asarray(f, dtype=np.float64)
        if f.size != self.features[0].size:
            raise InvalidArgument(f"expected the feature map of one image at {self.layer!r}: "
                             f"{self.n_filters} filters x {self.features.shape[2]} positions; "
                             f"got shape {f.shape}")
        f = f.reshape(self.features.shape[1:])
        nodes, dist = [], []
        options = self.top
        while options:
            d = [_masked_distance(f, self._centroid(c), self.merges.filters[c]) for c in options]
            best = options[int(np.argmin(d))]
            nodes.append(best)
            dist.append(min(d))
            options = self.children(best)
        crit = np.array([self.critical(k) for k in nodes])
        mean_f = f.mean(-1)
        img = np.array([mean_f[c] if c >= 0 else np.nan for c in crit])
        node = np.array([self.mean_activation[k, c] if c >= 0 else np.nan
                         for k, c in zip(nodes, crit)])
        return TreePath(tuple(int(k) for k in nodes), np.array(dist), crit, img, node)

    def _centroid(self, node: int) -> np.ndarray:
        return self.features[self.leaves(node)].mean(0, dtype=np.float64)


def _masked_distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """½(1 − cos(a·1_M, b·1_M)) for (d, L) maps and a (d,) filter mask; ½ if either is zero."""
    a, b = a[mask].ravel(), b[mask].ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.5 * (1.0 - (float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0))


def _cos(num, sq_a, sq_b):
    den = np.sqrt(np.maximum(sq_a, 0.0) * np.maximum(sq_b, 0.0))
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _critical(g, qa, qb, shared):
    """The critical filter: g, qa, qb: (d,) per-filter dot product and squared norms of the
    two masked vectors; shared: (d,) bool. Returns (filter, cosine with all filters)."""
    num, sa, sb = g.sum(), qa.sum(), qb.sum()
    c0 = _cos(num, sa, sb)
    drop = c0 - _cos(num - g, sa - qa, sb - qb)          # cosine lost without each filter
    drop = np.where(shared, drop, -np.inf)
    return int(np.argmax(drop)), float(c0)


def build_fast(X: np.ndarray, control: Control = NO_CONTROL, dtype=np.float32) -> Merges:
    """Algorithm 2 with a distance matrix and nearest-neighbour pointers. X: (n, d, L).

    dtype: of the stored mean maps, whose products with the new super node (one
    matrix-vector product per merge) are most of the time. float32 (the features' own
    precision) halves it; float64 makes the same choices as :func:`build_naive` merge for
    merge (the tests), float32 may differ only where two distances agree to ~1e-7."""
    # BLAS threads cost more than they give at this size (measured on 2 cores)
    with threadpool_limits(limits=1, user_api="blas"):
        return _build_fast(np.asarray(X, dtype=np.float64), control, np.dtype(dtype))


def _build_fast(X: np.ndarray, control: Control, dtype) -> Merges:
    n, d, L = X.shape
    V = X.reshape(n, d * L).astype(dtype)            # masked mean feature maps, per slot
    A = np.ones((n, d), dtype=np.float32)            # reachable filters (0/1), per slot
    Q = (X ** 2).sum(-1)                             # per-filter squared norms, per slot
    node = np.arange(n)                              # node id in each slot
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    sq = Q.sum(1)
    D = 0.5 * (1.0 - _cos(gram(V, control).astype(np.float64), sq[:, None], sq[None, :]))
    if d < 2:
        D[:] = np.inf
    np.fill_diagonal(D, np.inf)
    nn = np.argmin(D, axis=1)
    nnd = D[np.arange(n), nn]
    filters: list[np.ndarray] = [np.ones(d, dtype=bool)] * n
    sizes: list[float] = [1.0] * n
    pairs, crit, dist = [], [], []
    for step in range(n - 1):
        i = int(np.argmin(nnd))
        if not np.isfinite(nnd[i]):
            break
        a, b = sorted((i, int(np.argmin(D[i]))))     # ties: the first pair in slot order
        shared = (A[a] > 0) & (A[b] > 0)
        g = (V[a] * V[b]).reshape(d, L).sum(-1, dtype=np.float64)
        F, _ = _critical(g, Q[a], Q[b], shared)
        pairs.append(tuple(sorted((int(node[a]), int(node[b])))))
        crit.append(F)
        dist.append(D[a, b])
        # the super node takes slot a; slot b empties
        w = size[a] + size[b]
        wa, wb = size[a] / w, size[b] / w
        shared[F] = False
        V[a] = (wa * V[a] + wb * V[b]) * np.repeat(shared, L)
        prod = (V @ V[a]).astype(np.float64)         # most of the time goes here
        A[a], size[a], node[a] = shared, w, n + step
        Q[a] = (V[a].astype(np.float64) ** 2).reshape(d, L).sum(-1)
        sq[a] = Q[a].sum()
        filters.append(shared.copy())
        sizes.append(w)
        A[b], alive[b] = 0.0, False
        D[b, :] = D[:, b] = np.inf
        nnd[b] = np.inf
        row = 0.5 * (1.0 - _cos(prod, sq, sq[a]))
        share_ok = (A @ shared.astype(np.float32)) >= 2
        row = np.where(share_ok & alive, row, np.inf)
        row[a] = np.inf
        D[a, :] = D[:, a] = row
        nn[a] = int(np.argmin(row))
        nnd[a] = row[nn[a]]
        stale = np.flatnonzero(((nn == a) | (nn == b)) & np.isfinite(nnd))
        stale = stale[stale != a]                    # their nearest neighbour moved or went
        closer = row[stale] <= nnd[stale]            # then the super node is the nearest
        nn[stale[closer]], nnd[stale[closer]] = a, row[stale[closer]]
        stale = stale[~closer]
        if len(stale):
            nn[stale] = np.argmin(D[stale], axis=1)
            nnd[stale] = D[stale, nn[stale]]
        better = row < nnd
        better[a] = False
        nn[better], nnd[better] = a, row[better]
        if len(alive) > 64 and alive.sum() < len(alive) // 2:   # drop empty slots, keep order
            keep = np.flatnonzero(alive)
            slot = np.zeros(len(alive), dtype=int)
            slot[keep] = np.arange(len(keep))
            V, A, Q, node, size, alive = V[keep], A[keep], Q[keep], node[keep], size[keep], alive[keep]
            sq, D = sq[keep], D[np.ix_(keep, keep)]
            nn, nnd = slot[nn[keep]], nnd[keep]
        control.step(step + 1, n - 1, "merging")
    return _merges(pairs, crit, dist, filters, sizes, d)


def build_naive(X: np.ndarray, control: Control = NO_CONTROL) -> Merges:
    """The paper's loop as written: on every merge, all pairwise distances of the root's
    children again (O(n³·d·l²) in all). X: (n, d, L). The reference for tests and timing;
    single-threaded BLAS as :func:`build_fast` (threads only slowed it down on 2 cores)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _build_naive(np.asarray(X, dtype=np.float64), control)


def _build_naive(X: np.ndarray, control: Control) -> Merges:
    n, d, L = X.shape
    vec = [x for x in X]                             # each node's mean map, (d, L)
    filters: list[np.ndarray] = [np.ones(d, dtype=bool)] * n
    sizes: list[float] = [1.0] * n
    kids = list(range(n))                            # children of the root (node ids)
    # ties go to the first pair in this list's order, as in build_fast
    pairs, crit, dist = [], [], []
    while len(kids) > 1:
        masks = np.array([filters[k] for k in kids])
        M = np.stack([vec[k] * filters[k][:, None] for k in kids]).reshape(len(kids), -1)
        sq = (M ** 2).sum(1)
        D = 0.5 * (1.0 - _cos(M @ M.T, sq[:, None], sq[None, :]))
        D[masks.astype(int) @ masks.T.astype(int) < 2] = np.inf
        D[np.tril_indices(len(kids))] = np.inf
        p, q = np.unravel_index(int(np.argmin(D)), D.shape)
        if not np.isfinite(D[p, q]):
            break
        u, v = kids[p], kids[q]
        a, b = M[p].reshape(d, L), M[q].reshape(d, L)
        # removing filter F from both masks takes its terms out of the sums
        F, _ = _critical((a * b).sum(-1), (a ** 2).sum(-1), (b ** 2).sum(-1),
                         filters[u] & filters[v])
        new = filters[u] & filters[v]
        new[F] = False
        w = sizes[u] + sizes[v]
        vec.append((sizes[u] * vec[u] + sizes[v] * vec[v]) / w)
        filters.append(new)
        sizes.append(w)
        pairs.append((min(u, v), max(u, v)))
        crit.append(F)
        dist.append(D[p, q])
        kids[p] = len(filters) - 1                   # the super node takes u's place
        del kids[q]
        control.step(len(pairs), n - 1, "merging (paper's loop)")
    return _merges(pairs, crit, dist, filters, sizes, d)


def _merges(pairs, crit, dist, filters, sizes, d) -> Merges:
    return Merges(pairs=np.array(pairs, dtype=int).reshape(-1, 2),
                  critical=np.array(crit, dtype=int), distance=np.array(dist, dtype=np.float64),
                  filters=np.array(filters, dtype=bool).reshape(-1, d),
                  size=np.array(sizes, dtype=int))


def top_nodes(merges: Merges) -> tuple[int, ...]:
    """Nodes without a parent: the root's children when the loop stopped."""
    has_parent = np.zeros(len(merges.size), dtype=bool)
    has_parent[merges.pairs.ravel()] = True
    return tuple(int(k) for k in np.flatnonzero(~has_parent))


def mean_activations(X: np.ndarray, merges: Merges) -> np.ndarray:
    """(n+M, d): each node's mean over positions and leaves below it, per filter."""
    n = len(X)
    out = np.zeros((len(merges.size), X.shape[1]))
    out[:n] = X.mean(-1)
    for i, (a, b) in enumerate(merges.pairs):
        sa, sb = merges.size[a], merges.size[b]
        out[n + i] = (sa * out[a] + sb * out[b]) / (sa + sb)
    return out


def prediction_tree(engine: ModelHost, category: Category, layer: str | None = None,
                    data: Data = None,
                    max_images: int | None = None, method: str = "fast",
                    control: Control = NO_CONTROL) -> PredictionTree:
    """Algorithm 2 for the images of ``category`` (a class index or name) in ``data``
    (default: the engine's dataset) at ``layer`` (default: the last (C, H, W) layer).

    max_images: use only the first that many images of the category; method: "fast" or
    "paper" (the loop as written, for checking).
    """
    layer = default_layer_for(engine, "features", layer)
    shape = engine.layer(layer).output_shape
    if len(shape) != 3:
        raise InvalidArgument(f"layer {layer!r} has output shape {shape}; the prediction tree needs "
                         f"filters, a (C, H, W) output")
    if method not in ("fast", "paper"):
        raise InvalidArgument(f"method must be 'fast' or 'paper'; got {method!r}")
    c = _class_index(engine, category)
    max_images = check.optional_count("max_images", max_images)
    data = labelled_data(engine, data)
    idx = np.flatnonzero(data.labels.numpy() == c)[:max_images]
    if len(idx) < 2:
        raise InvalidArgument(f"category {engine.class_names[c]!r} has {len(idx)} image(s) in the "
                         f"data; a tree needs at least 2")
    X = features(engine, data.images[idx], layer, control).reshape(len(idx), shape[0], -1)
    merges = build_fast(X, control) if method == "fast" else build_naive(X, control)

    def featurize(image):
        x = engine.prepare(image)
        if len(x) != 1:
            raise InvalidArgument(f"path() takes one image {engine.input_shape}; got a batch of {len(x)}")
        return engine.activations(x, [layer])[layer][0]
    return PredictionTree(category=c, name=engine.class_names[c], layer=layer, images=idx,
                          features=X.astype(np.float32), merges=merges, top=top_nodes(merges),
                          mean_activation=mean_activations(X, merges), featurize=featurize)


def _class_index(engine, category) -> int:
    if isinstance(category, str):
        if category not in engine.class_names:
            raise InvalidArgument(f"unknown category {category!r}; classes: "
                             f"{', '.join(engine.class_names)}")
        return engine.class_names.index(category)
    c = int(category)
    if not 0 <= c < engine.n_classes:
        raise InvalidArgument(f"category {c} out of range: expected 0 <= category < {engine.n_classes}")
    return c
