"""PredictionTreeView's layout math (pure: no widget, no browser)."""
import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.sparse.csgraph import minimum_spanning_tree

from cnn_widgets.widgets.prediction_tree_view.geometry import (
    CAT_SIZE,
    DENDRO_W,
    GROUP_R,
    LABEL_W,
    MARGIN,
    MAX_SHOWN,
    REST,
    TITLE,
    Hierarchy,
    category_view,
    classical_mds,
    closed,
    fit,
    mst_layout,
    nearest,
    opened,
    spread,
    tree_layout,
)


def random_tree(k, seed=0):
    """A WPGMA hierarchy of k random categories, its distances and MST edges [i, j, w]."""
    v = np.random.default_rng(seed).normal(size=(k, 5))
    d = np.hypot(*np.moveaxis(v[:, None, :2] - v[None, :, :2], -1, 0)) + 1e-3 * (1 - np.eye(k))
    from scipy.spatial.distance import squareform
    z = linkage(squareform(d, checks=False), method="weighted")
    m = minimum_spanning_tree(d).tocoo()
    mst = np.array(sorted([min(i, j), max(i, j), d[i, j]] for i, j in zip(m.row, m.col)))
    return Hierarchy.of(z), d, mst, z


def chain(k):
    """A hierarchy that is one long path: category i joins the group of 0..i-1 at height i."""
    z = [[0, 1, 1.0, 2]] + [[i, k + i - 2, float(i), i + 1] for i in range(2, k)]
    return Hierarchy.of(np.array(z, float))


def test_the_hierarchy_record_reads_the_linkage():
    h, _, _, z = random_tree(7)
    assert h.n == 7 and h.root == 12 and h.parent[h.root] == -1
    for i, (a, b, height, size) in enumerate(z):
        node = 7 + i
        assert h.children(node) == (int(a), int(b)) and h.height[node] == height
        assert h.size[node] == size == len(h.leaves(node))
        assert h.parent[int(a)] == h.parent[int(b)] == node
    assert sorted(h.leaves(h.root)) == list(range(7)) and h.children(3) == ()
    for leaf in range(7):
        p = h.path(leaf)
        assert p[0] == h.root and p[-1] == leaf
        assert all(h.parent[b] == a for a, b in zip(p, p[1:]))


def test_opened_keeps_at_most_limit_rows_highest_first_and_the_path_open():
    h, *_ = random_tree(40, seed=1)
    is_open = opened(h.root, h.children, lambda k: h.height[k], limit=10)
    rows = closed(h.root, h.children, is_open)
    assert len(rows) == 10 and sorted(sum((h.leaves(r) for r in rows), [])) == list(range(40))
    # the highest merges: every open merge is higher than every closed one
    assert min(h.height[k] for k in is_open) >= max(h.height[r] for r in rows)
    deep = chain(30)
    path = deep.path(0)
    is_open = opened(deep.root, deep.children, lambda k: deep.height[k], path[:9], limit=10)
    assert set(path[:9]) <= is_open and len(closed(deep.root, deep.children, is_open)) == 10


def test_fitting_focus_shows_the_leaf_within_the_rows():
    deep = chain(30)
    path = deep.path(0)                          # 30 nodes: the root .. category 0
    assert deep.fitting_focus(29, -1) == -1      # one level below the root
    assert deep.fitting_focus(0, -1) == path[30 - MAX_SHOWN]
    assert deep.fitting_focus(0, path[20]) == path[20]          # already shows it: kept
    assert deep.fitting_focus(None, path[3]) == path[3]
    small, *_ = random_tree(10)
    assert all(small.fitting_focus(k, -1) == -1 for k in range(10))    # the digits: the root


@pytest.mark.parametrize("k", [10, 60])
def test_category_view_rows_lines_and_hits(k):
    h, d, mst, _ = random_tree(k, seed=k)
    leaf = 3
    v = category_view(h, -1, leaf, d, mst)
    assert len(v.rows) == min(k, MAX_SHOWN) and (k > MAX_SHOWN) == any(r >= h.n for r in v.rows)
    path = h.path(leaf)
    assert v.red == frozenset(path[:MAX_SHOWN]) and path[min(len(path), MAX_SHOWN) - 1] in v.rows
    ys = [v.xy[r][1] for r in v.rows]
    assert ys == sorted(ys) and ys[0] > TITLE and ys[-1] < CAT_SIZE[0] - MARGIN
    for r in v.rows:                              # closed rows sit at their height
        x = v.xy[r][0]
        assert (x == DENDRO_W - LABEL_W) == (r < h.n)
        assert v.hit(DENDRO_W - LABEL_W + 40, v.xy[r][1]) == r                   # the label
    for node in v.open:                           # an open node is over its children
        kids = h.children(node)
        assert v.xy[node][0] < min(v.xy[c][0] for c in kids)
        assert v.hit(*v.xy[node]) == node
    red_lines = [(a, b) for a, b, red in v.lines(h) if red]
    assert len(red_lines) == len(v.red) - 1
    assert set(v.discs) == set(v.rows) and len(v.edges) == len(v.rows) - 1
    for r, (x, y) in v.discs.items():
        assert DENDRO_W + GROUP_R < x < CAT_SIZE[1] - GROUP_R          # whole discs inside
        assert TITLE < y - GROUP_R and y + GROUP_R < CAT_SIZE[0]
        assert v.hit(x + 2, y - 2) == r


def test_a_zoomed_view_has_a_disc_for_the_rest():
    h, d, mst, _ = random_tree(60, seed=2)
    node = max(range(h.n, h.root), key=lambda n: h.size[n] if h.size[n] < 30 else 0)
    v = category_view(h, node, None, d, mst)
    assert v.focus == node and not v.red and REST in v.discs
    assert set(sum((h.leaves(r) for r in v.rows), [])) == set(h.leaves(node))
    stub = [(a, b) for a, b, _ in v.lines(h) if a[0] == MARGIN]
    assert stub and stub[0][1] == v.xy[node]


def test_the_contracted_mst_is_the_mst_when_nothing_is_closed_and_a_tree_always():
    _, d, mst, _ = random_tree(12, seed=4)
    box = (0.0, 0.0, 200.0, 100.0)
    discs, edges = mst_layout({i: [i] for i in range(12)}, d, mst, box)
    assert sorted(edges) == sorted((int(i), int(j)) for i, j, _ in mst)
    groups = {"a": [0, 1, 2, 3], "b": [4, 5], "c": list(range(6, 12))}
    discs, edges = mst_layout(groups, d, mst, box)
    assert len(edges) == 2 and {g for e in edges for g in e} == {"a", "b", "c"}
    # each edge is an MST edge between the two groups
    which = {i: g for g, members in groups.items() for i in members}
    pairs = {frozenset((which[int(i)], which[int(j)])) for i, j, _ in mst}
    assert all(frozenset(e) in pairs for e in edges)
    assert all(0 <= x <= 200 and 0 <= y <= 100 for x, y in discs.values())


def test_classical_mds_recovers_planar_distances():
    pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    d = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    got = classical_mds(d)
    np.testing.assert_allclose(np.hypot(*(got[:, None] - got[None]).transpose(2, 0, 1)), d,
                               atol=1e-9)


def test_spread_and_fit():
    p = spread(np.array([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]]), 20.0)
    assert np.hypot(*(p[0] - p[1])) >= 19.9 and np.allclose(p[2], [50, 50])
    f = fit(np.array([[0.0, 0.0], [2.0, 1.0]]), (10, 20, 100, 100))
    np.testing.assert_allclose(f, [[10, 45], [110, 95]])


def toy_tree():
    """Leaves 0..3; node 4 = (0, 1), node 5 = (4, 2); the root's children: 5 and 3."""
    kids = {4: (0, 1), 5: (4, 2)}
    return (5, 3), lambda k: kids.get(k, ())


def test_tree_layout_puts_leaves_at_the_bottom_and_parents_over_their_children():
    top, children = toy_tree()
    pos = tree_layout(top, children, 200, 100)
    assert set(pos) == {-1, 0, 1, 2, 3, 4, 5}
    assert [pos[k][1] for k in (0, 1, 2, 3)] == [100 - MARGIN] * 4
    assert [pos[k][0] for k in (0, 1, 2, 3)] == sorted(pos[k][0] for k in (0, 1, 2, 3))
    assert pos[4][0] == (pos[0][0] + pos[1][0]) / 2 and pos[5][0] == (pos[4][0] + pos[2][0]) / 2
    assert pos[-1] == ((pos[5][0] + pos[3][0]) / 2, TITLE + MARGIN)
    assert pos[-1][1] < pos[5][1] < pos[4][1] < pos[0][1]
    closed_4 = tree_layout(top, children, 200, 100, is_open={5})   # node 4 closed: a bottom node
    assert set(closed_4) == {-1, 2, 3, 4, 5} and closed_4[4][1] == 100 - MARGIN


def test_nearest():
    assert nearest({1: (10.0, 10.0), 2: (30.0, 10.0)}, 27, 12) == 2
    assert nearest({1: (10.0, 10.0)}, 40, 40) is None and nearest({}, 0, 0) is None
