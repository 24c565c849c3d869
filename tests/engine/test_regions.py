"""Linear regions: distinct activation patterns per class, progress, cancellation."""
from collections import defaultdict

import numpy as np
import pytest
import torch

from cnn_widgets.engine import Cancelled, Control
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, tiny_mlp, untouched
from cnn_widgets.testing.reference import cpu_engine


def _dataset(n=40, seed=0):
    """Random images with a few exact duplicates and near-duplicates, labels 0..2."""
    x = random_images(n, seed=seed)
    x[5] = x[4]
    x[6] = x[4]
    x[12] = x[11] + 1e-6
    x[20] = x[3]
    labels = torch.tensor([i % 3 for i in range(n)])
    labels[20] = labels[3]
    return x, labels


def _brute_force(patterns, labels):
    rows = defaultdict(set)
    n = defaultdict(int)
    for row, lab in zip(patterns, labels):
        rows[int(lab)].add(tuple(row))
        n[int(lab)] += 1
    total = len(set().union(*rows.values()))
    return {c: (n[c], len(rows[c])) for c in sorted(rows)}, total


@pytest.mark.parametrize("make", [lambda: tiny_lenet(0), lambda: tiny_lenet(1, leaky=True),
                                  lambda: tiny_mlp(2)], ids=["lenet", "leaky", "mlp"])
def test_counts_match_unique_patterns(make):
    engine = cpu_engine(make(), TINY_SHAPE, batch_size=16)
    x, labels = _dataset()
    got = engine.count_regions((x, labels))
    want, total = _brute_force(engine.activation_pattern(x), labels.numpy())
    assert got.per_class == want
    assert got.total == total and got.images == len(x)
    # the duplicates really collapse, and the count is not trivially 1 per image or 1 in all
    assert 1 < total < len(x)


def test_same_pattern_means_same_affine_map():
    """Inputs sharing an activation pattern share their etalons (that is what a region is);
    so there are at most as many distinct etalon sets as patterns."""
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    x, _ = _dataset(24, seed=1)
    pat = engine.activation_pattern(x)
    et = engine.etalons(x)
    Wb = np.concatenate([et.W.reshape(len(x), -1), et.b], axis=1)
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if np.array_equal(pat[i], pat[j]):
                np.testing.assert_allclose(Wb[i], Wb[j], rtol=1e-5, atol=1e-6)
    n_maps = len({tuple(np.round(r, 4)) for r in Wb})
    assert n_maps <= len({tuple(r) for r in pat})


def test_identical_images_are_one_region():
    engine = cpu_engine(tiny_lenet(4), TINY_SHAPE, batch_size=3)
    x = random_images(1, seed=5).repeat(7, 1, 1, 1)
    got = engine.count_regions((x, torch.ones(7, dtype=torch.long)))
    assert got.per_class == {1: (7, 1)} and got.total == 1 and got.images == 7


def test_engine_dataset_and_map_style_dataset():
    x, labels = _dataset(24, seed=2)
    model = tiny_lenet(5)
    with_data = cpu_engine(model, TINY_SHAPE, dataset=(x.numpy(), labels.numpy()))
    items = [(x[i], int(labels[i])) for i in range(24)]
    a = with_data.count_regions()
    b = cpu_engine(model, TINY_SHAPE).count_regions(items)
    assert a == b and a.images == 24
    with pytest.raises(ValueError, match="needs data"):
        cpu_engine(model, TINY_SHAPE).count_regions()


def test_progress_is_monotone_and_ends_at_total():
    engine = cpu_engine(tiny_lenet(6), TINY_SHAPE, batch_size=7)
    x, labels = _dataset(30, seed=3)
    reports = []
    engine.count_regions((x, labels), control=Control(report=lambda d, t, m: reports.append((d, t))))
    assert len(reports) == 5                    # ceil(30 / 7) batches
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == 30 and done[0] > 0
    assert {t for _, t in reports} == {30}


@pytest.mark.parametrize("method,kw", [("fast", {}), ("paper", {"one_hot_batch": 16})])
def test_etalon_progress_is_monotone_and_ends_at_total(method, kw):
    engine = cpu_engine(tiny_lenet(7), TINY_SHAPE, batch_size=4)
    reports = []
    engine.etalons(random_images(3), method=method,
                   control=Control(report=lambda d, t, m: reports.append((d, t))), **kw)
    done = [d for d, _ in reports]
    assert len(reports) > 1 and done == sorted(done)
    assert len({t for _, t in reports}) == 1 and done[-1] == reports[-1][1]


def test_stop_after_first_batch_raises_cancelled_and_leaves_model_untouched():
    model = tiny_lenet(8).train()
    engine = cpu_engine(model, TINY_SHAPE, batch_size=5)
    x, labels = _dataset(24, seed=4)
    reports = []
    control = Control(should_stop=lambda: len(reports) >= 1,
                      report=lambda d, t, m: reports.append(d))
    with untouched(model):
        with pytest.raises(Cancelled):
            engine.count_regions((x, labels), control=control)
    assert reports == [5], "stopped after the first batch, not before or later"
