"""Algorithm 2 of the clustering paper: the fast build is the paper's loop; tree invariants."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine.clustering import prediction_tree as pt
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.testing.data import labelled_engine
from cnn_widgets.testing.hygiene import untouched
from cnn_widgets.testing.models import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def sparse_maps(n, d, L, seed):
    """Post-ReLU-like feature maps: nonnegative, with some filters silent per image."""
    rng = np.random.default_rng(seed)
    return rng.random((n, d, L)) * (rng.random((n, d, 1)) < 0.6)


def merge_sets(m):
    n = m.n_leaves
    members = {i: frozenset([i]) for i in range(n)}
    for i, (a, b) in enumerate(m.pairs):
        members[n + i] = members[a] | members[b]
    return [members[n + i] for i in range(len(m.pairs))]


@pytest.mark.parametrize("n,d,L,seed", [(12, 4, 3, 0), (40, 6, 4, 1), (70, 16, 9, 2), (90, 3, 2, 3)])
def test_fast_build_is_the_papers_loop(n, d, L, seed):
    X = sparse_maps(n, d, L, seed)
    fast, paper = pt.build_fast(X, dtype=np.float64), pt.build_naive(X)
    assert merge_sets(fast) == merge_sets(paper)
    np.testing.assert_array_equal(fast.critical, paper.critical)
    np.testing.assert_allclose(fast.distance, paper.distance, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fast.filters, paper.filters)
    # the float32 default: the same tree here, distances to float32 precision
    single = pt.build_fast(X)
    assert merge_sets(single) == merge_sets(paper)
    np.testing.assert_allclose(single.distance, paper.distance, rtol=0, atol=1e-6)


def masked_cos(a, b, ma, mb):
    """cos(a 1_ma, b 1_mb); 0 when either masked map is zero (the documented convention)."""
    a, b = (a * ma[:, None]).ravel(), (b * mb[:, None]).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return a @ b / (na * nb) if na > 0 and nb > 0 else 0.0


def test_tree_invariants():
    X = sparse_maps(50, 5, 4, 7)
    m = pt.build_fast(X, dtype=np.float64)
    n, d = 50, 5
    parent_seen = set()
    centroid = {i: X[i] for i in range(n)}
    for i, (a, b) in enumerate(m.pairs):
        s = n + i
        assert a not in parent_seen and b not in parent_seen      # each node merges once
        parent_seen |= {a, b}
        shared = m.filters[a] & m.filters[b]
        assert shared.sum() >= 2                                    # the stopping rule
        # each merge removes exactly one filter, the critical one, from the intersection
        assert m.filters[s].sum() == shared.sum() - 1
        assert shared[m.critical[i]] and not m.filters[s][m.critical[i]]
        assert np.array_equal(m.filters[s] | (np.arange(d) == m.critical[i]), shared)
        assert m.size[s] == m.size[a] + m.size[b]
        # the merge distance is 1/2(1 - cos) over each child's reachable filters, the super
        # node's vector the mean of its images, and the critical filter the biggest drop
        c = masked_cos(centroid[a], centroid[b], m.filters[a], m.filters[b])
        assert m.distance[i] == pytest.approx(0.5 * (1 - c), abs=1e-12)
        drops = {}
        for f in np.flatnonzero(shared):
            ma, mb = m.filters[a].copy(), m.filters[b].copy()
            ma[f] = mb[f] = False
            drops[f] = c - masked_cos(centroid[a], centroid[b], ma, mb)
        assert m.critical[i] == max(drops, key=drops.get)
        centroid[s] = (m.size[a] * centroid[a] + m.size[b] * centroid[b]) / m.size[s]
        np.testing.assert_allclose(centroid[s], X[sorted(merge_sets(m)[i])].mean(0), atol=1e-12)
    # stopped: no two top nodes share two filters
    top = pt.top_nodes(m)
    for i, a in enumerate(top):
        for b in top[i + 1:]:
            assert (m.filters[a] & m.filters[b]).sum() < 2


def test_the_loop_ends_where_the_papers_condition_would_spin():
    # two images, three filters: after one merge the root has a single child that still
    # reaches two filters, so "while a child has more than one filter" never ends
    X = sparse_maps(2, 3, 4, 5) + 0.1
    for build in (pt.build_fast, pt.build_naive):
        m = build(X)
        assert len(m.pairs) == 1 and pt.top_nodes(m) == (2,) and m.filters[2].sum() == 2
    # leaves reaching one filter each: no pair shares two, nothing merges
    m = pt.build_fast(sparse_maps(5, 1, 4, 6))
    assert len(m.pairs) == 0 and pt.top_nodes(m) == tuple(range(5))


def test_prediction_tree_on_a_model_and_paths_end_at_a_leaf():
    engine, model = labelled_engine(45, model_seed=5, image_seed=2)
    x, y = engine.dataset.images, engine.dataset.labels
    with untouched(model):
        tree = engine.prediction_tree(1)
        same = engine.prediction_tree("1", method="paper")
        path = tree.path(random_images(1, TINY_SHAPE, seed=9)[0])
    assert tree.layer == "pool2" and tree.n_filters == 6
    np.testing.assert_array_equal(tree.images, np.flatnonzero(y.numpy() == 1))   # leaves = images
    f = reference_unit_values(model, x[tree.images], "pool2").reshape(15, 6, 4)
    np.testing.assert_allclose(tree.features, f, rtol=1e-5, atol=1e-6)
    assert merge_sets(tree.merges) == merge_sets(same.merges)
    assert sorted(np.concatenate([tree.leaves(t) for t in tree.top]).tolist()) == list(range(15))
    # the path starts at a top node, goes parent to child, ends at a leaf
    parent = tree.parent()
    assert path.nodes[0] in tree.top and path.nodes[-1] < 15
    assert all(parent[c] == p for p, c in zip(path.nodes, path.nodes[1:]))
    assert path.critical[-1] == -1 and all(c >= 0 for c in path.critical[:-1])
    img = reference_unit_values(model, random_images(1, TINY_SHAPE, seed=9), "pool2").reshape(6, 4)
    for k, c, a in zip(path.nodes[:-1], path.critical[:-1], path.image_activation[:-1]):
        assert a == pytest.approx(img[c].mean(), abs=1e-6)
        assert tree.mean_activation[k, c] == pytest.approx(
            f[tree.leaves(k), c].mean(), abs=1e-6)


def test_stop_and_bad_requests():
    engine = cpu_engine(tiny_lenet(), TINY_SHAPE, dataset=(random_images(40), torch.arange(40) % 2))
    with pytest.raises(Cancelled):
        engine.prediction_tree(0, control=Control(should_stop=lambda: True))
    with pytest.raises(ValueError, match="0 <= category < 5"):
        engine.prediction_tree(7)
    with pytest.raises(ValueError, match="classes: 0, 1"):
        engine.prediction_tree("cat")
    with pytest.raises(ValueError, match="at least 2"):
        engine.prediction_tree(3)
    with pytest.raises(ValueError, match=r"needs filters, a \(C, H, W\) output"):
        engine.prediction_tree(0, layer="fc1")
    tree = engine.prediction_tree(0)
    with pytest.raises(ValueError, match="takes one image .* got a batch of 2"):
        tree.path(random_images(2, TINY_SHAPE))             # not silently the first one
    with pytest.raises(ValueError, match=r"6 filters x 4 positions; got shape \(6, 3\)"):
        tree.path_from_features(np.zeros((6, 3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_trees_on_a_cuda_engine_match_the_cpu():
    cpu, model = labelled_engine(45, model_seed=5, image_seed=2)
    x = cpu.dataset.images
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False            # TF32 would round features to ~1e-3
    try:
        with untouched(model):
            gpu = cpu_engine(model, TINY_SHAPE, dataset=cpu.dataset, device="cuda")
            t_gpu, c_gpu = gpu.prediction_tree(1), gpu.category_tree(include_noise=True)
    finally:
        torch.backends.cudnn.allow_tf32 = old
    t_cpu, c_cpu = cpu.prediction_tree(1), cpu.category_tree(include_noise=True)
    np.testing.assert_allclose(t_gpu.features, t_cpu.features, rtol=1e-4, atol=1e-5)
    assert merge_sets(t_gpu.merges) == merge_sets(t_cpu.merges)
    np.testing.assert_allclose(c_gpu.distances, c_cpu.distances, atol=1e-5)
    assert t_gpu.path(x[0]).nodes == t_cpu.path(x[0]).nodes


def test_stop_is_checked_after_every_merge():
    """Stop means stop: the merge loop reports and checks after each merge (it checked every
    16th), and the first distances between blocks of rows."""
    X = sparse_maps(150, 6, 4, 5)
    seen, checks = [], [0]
    merges = pt.build_fast(X, Control(lambda: checks.__setitem__(0, checks[0] + 1) or False,
                                      lambda done, total, message: seen.append(done)))
    assert seen == list(range(1, len(merges.pairs) + 1))
    assert checks[0] == len(merges.pairs) + 3                # + the 3 blocks of 64 rows
