"""Algorithm 1 of the clustering paper: scipy's WPGMA is the paper's loop; the MST is minimal."""
import itertools

import numpy as np
import pytest
import torch

from cnn_widgets.engine.clustering import category_tree as ct
from cnn_widgets.engine.core.chunks import CHUNK_S, next_size, spans
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.noise import gaussian_noise
from cnn_widgets.testing.data import labelled_engine
from cnn_widgets.testing.hygiene import untouched
from cnn_widgets.testing.models import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def clusters(Z):
    """Each merge as the set of original items it joins (numbering-free)."""
    k = len(Z) + 1
    members = {i: frozenset([i]) for i in range(k)}
    out = []
    for i, (a, b, h, _n) in enumerate(Z):
        members[k + i] = members[int(a)] | members[int(b)]
        out.append((members[k + i], h))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_scipy_weighted_linkage_is_the_papers_loop(seed):
    rng = np.random.default_rng(seed)
    k = 4 + seed * 2
    d = ct.cosine_distances(rng.standard_normal((k, 30)))
    fast, paper = clusters(ct.wpgma(d)), clusters(ct.paper_linkage(d))
    assert [m for m, _ in fast] == [m for m, _ in paper]
    np.testing.assert_allclose([h for _, h in fast], [h for _, h in paper], rtol=0, atol=1e-12)
    # and it is not another linkage: average (UPGMA) differs on some merge height here
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    upgma = clusters(linkage(squareform(d, checks=False), method="average"))
    if k >= 6:
        assert [h for _, h in upgma] != pytest.approx([h for _, h in fast], abs=1e-9)


def prufer_trees(k):
    """Every labelled tree on k nodes (Cayley: k^(k-2)), decoded from Prüfer sequences."""
    for seq in itertools.product(range(k), repeat=k - 2):
        degree = [1] * k
        for s in seq:
            degree[s] += 1
        edges = []
        for s in seq:
            leaf = min(i for i in range(k) if degree[i] == 1)
            edges.append((leaf, s))
            degree[leaf] -= 1
            degree[s] -= 1
        u, v = [i for i in range(k) if degree[i] == 1]
        yield edges + [(u, v)]


@pytest.mark.parametrize("seed", range(3))
def test_mst_weight_equals_brute_force(seed):
    rng = np.random.default_rng(10 + seed)
    k = 6
    d = ct.cosine_distances(rng.standard_normal((k, 12)))
    best = min(sum(d[a, b] for a, b in t) for t in prufer_trees(k))
    edges = ct.mst_edges(d)
    assert edges.shape == (k - 1, 3)
    assert edges[:, 2].sum() == pytest.approx(best, abs=1e-12)
    assert len({int(i) for i in edges[:, :2].ravel()}) == k       # spans every node


def test_cosine_distance_is_half_one_minus_cos():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
    d = ct.cosine_distances(v)
    assert d[0, 1] == pytest.approx(0.5) and d[0, 2] == pytest.approx(1.0)
    assert d[0, 3] == pytest.approx(0.5 * (1 - 1 / np.sqrt(2)))
    assert np.all(np.diag(d) == 0)


def test_category_tree_on_a_model_uses_class_mean_features():
    engine, model = labelled_engine(30, model_seed=3, image_seed=4)
    x, y = engine.dataset.images, engine.dataset.labels
    with untouched(model):
        tree = engine.category_tree()
        noisy = engine.category_tree(include_noise=True, n_noise=7, seed=1)
    assert tree.layer == "pool2" and tree.names == ("0", "1", "2")   # last (C, H, W) layer
    f = reference_unit_values(model, x, "pool2")
    want = np.stack([f[y.numpy() == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(tree.vectors, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tree.distances, ct.cosine_distances(want), atol=1e-6)
    assert tree.linkage.shape == (2, 4) and tree.mst.shape == (2, 3)
    assert noisy.names[-1] == "noise" and noisy.counts[-1] == 7 and noisy.classes[-1] == -1
    noise = gaussian_noise(engine, 7, seed=1)
    np.testing.assert_allclose(noisy.vectors[-1], reference_unit_values(model, noise, "pool2").mean(0),
                               rtol=1e-5, atol=1e-6)
    assert noisy.mst.shape == (3, 3)


def test_bad_layer_and_data_are_refused_with_a_clear_message():
    engine = cpu_engine(tiny_lenet(), TINY_SHAPE, dataset=(random_images(4), torch.zeros(4)))
    with pytest.raises(KeyError, match="layers in forward order"):
        engine.category_tree(layer="nope")
    with pytest.raises(ValueError, match="at least 2 categories"):
        engine.category_tree()


def test_partials_are_the_trees_of_the_images_scanned_so_far():
    """The view's first picture: the hierarchy of the classes seen so far (from 2 classes), each
    time the images scanned have at least doubled (1, 3, 7, 15 images while the chunks
    double), before the result."""
    engine, model = labelled_engine(30, model_seed=3, image_seed=4)
    x, y = engine.dataset.images, engine.dataset.labels.numpy()
    parts = []
    tree = engine.category_tree(control=Control(partial=parts.append))
    f = reference_unit_values(model, x, "pool2")
    seen = [int(p.counts.sum()) for p in parts]
    assert len(parts) >= 2 and seen[0] <= 3 and seen[-1] < 30
    assert all(b >= 2 * a for a, b in zip(seen, seen[1:]))
    for p, n in zip(parts, seen):
        assert p.classes == tuple(np.unique(y[:n]).tolist()) and p.layer == tree.layer
        want = np.stack([f[:n][y[:n] == c].mean(0) for c in p.classes])
        np.testing.assert_allclose(p.vectors, want, rtol=1e-5, atol=1e-6)
        assert p.linkage.shape == (len(p.classes) - 1, 4)
    np.testing.assert_allclose(tree.vectors, np.stack([f[y == c].mean(0) for c in range(3)]),
                               rtol=1e-5, atol=1e-6)


def test_stop_is_checked_after_each_chunk_of_at_most_a_batch():
    """Stop means stop: between two checks at most ``batch_size`` images go through the model,
    the first check after one image; the distances check between blocks of rows."""
    engine, _ = labelled_engine(40, model_seed=1, image_seed=2)
    engine.batch_size = 8
    ran, between = [0], []
    real = engine.activations

    def counted(x, layers):
        ran[0] += len(x)
        return real(x, layers)

    def should_stop():
        between.append(ran[0])
        ran[0] = 0
        return False
    engine.activations = counted
    engine.category_tree(include_noise=True, n_noise=12, control=Control(should_stop))
    images = [n for n in between if n]
    assert images[0] == 1 and max(images) <= 8 and sum(images) == 40 + 12
    checks = []
    ct.cosine_distances(np.ones((150, 3)), Control(lambda: checks.append(1) or False))
    assert len(checks) == 3                                   # rows 0-63, 64-127, 128-149


def test_chunks_double_while_quick_and_halve_when_slow():
    """The chunk after one that took ``seconds``: Stop is seen within about CHUNK_S."""
    assert next_size(1, 0.0, 256) == 2 and next_size(128, 0.0, 256) == 256
    assert next_size(256, 0.0, 256) == 256                    # never more than a batch
    assert next_size(4, CHUNK_S / 2, 256) == 8                # twice as many: still in time
    assert next_size(4, CHUNK_S * 0.75, 256) == 4
    assert next_size(4, CHUNK_S * 1.5, 256) == 2 and next_size(1, 9.0, 256) == 1
    quick = [e - s for s, e in spans(100, 16, clock=lambda: 0.0)]
    assert quick == [1, 2, 4, 8, 16, 16, 16, 16, 16, 5]
    ticks = iter(np.arange(0.0, 100.0, CHUNK_S * 0.8))        # each chunk takes 0.8 CHUNK_S
    assert [e - s for s, e in spans(5, 16, clock=lambda: next(ticks))] == [1, 1, 1, 1, 1]
    assert [e - s for s, e in spans(20, 16, ramp=False)] == [16, 4]
