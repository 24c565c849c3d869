"""Inverse-set sampling: every sample inside its range (checked with the engine's own forward
pass), intersections, pixel mode, the diversity term against eq. 14, the augmented-
Lagrangian algebra of eq. 8, infeasible ranges, stop, validation and model hygiene."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from cnn_widgets import Engine
from cnn_widgets.engine import InfeasibleRange, InvalidArgument
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled, LayerNotFound, UnitOutOfRange
from cnn_widgets.engine.inverse_set.baselines import full_optimisation, restarts
from cnn_widgets.engine.inverse_set.problem import penalty, update_multipliers
from cnn_widgets.engine.inverse_set.sampling import (
    SampleBatch,
    SeedBatch,
    default_range,
    inverse_set,
    mean_distance,
)
from cnn_widgets.engine.inverse_set.settings import InverseSetSettings as S
from cnn_widgets.testing import untouched


@pytest.fixture(scope="module")
def setup(inverse_set_setup):
    return inverse_set_setup


def middle_range(values, lo=40, hi=70):
    return tuple(float(v) for v in np.percentile(values, [lo, hi]))


def in_range(engine, res):
    """Recompute every unit on the returned images with engine.activations (not the sampler's
    own pass) and check the ranges."""
    layers = sorted({name for name, _ in res.units})
    acts = engine.activations(res.images, layers)
    got = np.stack([acts[name][(slice(None), *u)] for name, u in res.units], axis=1)
    return ((got >= res.ranges[:, 0] - 1e-5) & (got <= res.ranges[:, 1] + 1e-5)).all(), got


def test_every_sample_is_inside_the_range(setup):
    engine, G, acts = setup
    rng = middle_range(acts["9"][:, 2])
    res = inverse_set(engine, ("9", 2), rng, generator=G, K=5, n=60)
    assert res.complete and res.n == 60 and res.images.shape == (60, 1, 28, 28)
    assert res.codes.shape == (60, 8) and res.activations.shape == (60, 1)
    ok, got = in_range(engine, res)
    assert ok and np.allclose(got, res.activations, atol=1e-5)
    with torch.no_grad():   # the images are G of the codes
        np.testing.assert_allclose(G(torch.as_tensor(res.codes)).numpy(), res.images, atol=1e-5)
    assert res.steps_seeds > 0 and res.steps_sampling >= (60 - 5) // 5
    assert len({r.tobytes() for r in res.codes}) == 60           # no duplicates
    assert res.diversity == pytest.approx(mean_distance(res.features))


def test_code_norm_keeps_codes_in_a_ball(setup):
    engine, G, acts = setup
    res = engine.inverse_set(("9", 2), middle_range(acts["9"][:, 2]), generator=G, K=4, n=20,
                             settings=S(code_norm=1.0))
    assert np.linalg.norm(res.codes, axis=1).max() <= np.sqrt(8) * (1 + 1e-5)
    assert in_range(engine, res)[0]


def test_intersection_same_and_different_layers(setup):
    engine, G, acts = setup
    units = [("9", 2), ("9", 7), ("3", (3, 4, 4))]
    ranges = [middle_range(acts["9"][:, 2], 20, 80), middle_range(acts["9"][:, 7], 20, 80),
              middle_range(acts["3"][:, 3, 4, 4], 20, 80)]
    res = engine.inverse_set(units, ranges, generator=G, K=5, n=40)
    assert res.activations.shape == (40, 3) and res.units[2] == ("3", (3, 4, 4))
    assert in_range(engine, res)[0]


def test_pixel_mode_stays_in_the_box(setup):
    engine, _, acts = setup
    res = engine.inverse_set(("9", 2), middle_range(acts["9"][:, 2], 30, 90), K=4, n=20)
    assert res.mode == "pixel" and res.codes is None
    assert res.images.min() >= 0.0 and res.images.max() <= 1.0
    assert in_range(engine, res)[0]


def test_diversity_term_beats_eq14_from_the_same_start(setup):
    engine, G, acts = setup
    rng = middle_range(acts["9"][:, 2])
    kw = dict(generator=G, K=5, n=40, seed=3)
    # the paper's eq. 8 (no prior): on this random G the default prior outweighs diversity
    paper = S(start="same", prior_weight=0)
    ours = engine.inverse_set(("9", 2), rng, settings=paper, **kw)
    eq14 = engine.inverse_set(("9", 2), rng, settings=replace(paper, diversity="none"), **kw)
    eq13 = engine.inverse_set(("9", 2), rng, settings=replace(paper, diversity="code"), **kw)
    assert in_range(engine, eq14)[0] and in_range(engine, eq13)[0]
    assert ours.diversity > 2 * eq14.diversity, (ours.diversity, eq14.diversity)


def test_augmented_lagrangian_with_the_slack_minimised_out():
    """penalty() = min over s >= 0 of -lam (c - s) + mu/2 (c - s)^2 (eq. 8), by brute force
    over s, and the multiplier update is lam - mu (c - s*)."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(50, generator=g, dtype=torch.float64) * 2
    lam = torch.rand(50, generator=g, dtype=torch.float64) * 3
    lam[:10] = 0
    mu = 10.0
    s = torch.linspace(0, 10, 200001, dtype=torch.float64)
    for ci, li in zip(c, lam):
        brute = (-li * (ci - s) + mu / 2 * (ci - s) ** 2).min()
        assert float(penalty(ci[None], li[None], mu)) == pytest.approx(float(brute), abs=1e-7)
    s_star = torch.clamp(c - lam / mu, min=0)
    np.testing.assert_allclose(update_multipliers(c, lam, mu), lam - mu * (c - s_star), atol=1e-12)


def test_infeasible_range_reports_after_the_budget(setup):
    engine, G, acts = setup
    far = float(acts["9"][:, 2].max()) + 1e4
    with untouched(engine.model), untouched(G):
        with pytest.raises(InfeasibleRange, match=r"0 of 4 seeds .* after 40 gradient steps.*"
                                                  r"range may be empty"):
            engine.inverse_set(("9", 2), (far, far + 1), generator=G, K=4, n=8,
                               settings=S(max_outer=2, inner_steps=20))


def test_seeds_stuck_outside_a_reachable_range_say_so(setup):
    engine, G, acts = setup
    rng = middle_range(acts["9"][:, 2], 25, 75)     # about half of random codes land inside
    with pytest.raises(InfeasibleRange, match=r"only [1-7] of 8 seeds .* range is reachable"):
        engine.inverse_set(("9", 2), rng, generator=G, K=8, n=8,
                           settings=S(max_outer=1, inner_steps=1))


def test_model_and_generator_untouched_and_stop(setup):
    engine, G, acts = setup
    G.train()
    rng = middle_range(acts["9"][:, 2])
    with untouched(engine.model), untouched(G):
        engine.inverse_set(("9", 2), rng, generator=G, K=3, n=9)
    calls = []
    stop_after_seeds = Control(should_stop=lambda: len(calls) > 0, partial=lambda batch: calls.append(
        len(batch.images)) if isinstance(batch, SampleBatch) else None)
    with untouched(engine.model), untouched(G), pytest.raises(Cancelled):
        engine.inverse_set(("9", 2), rng, generator=G, K=3, n=30, control=stop_after_seeds)
    assert calls == [3]
    assert G.training and torch.is_grad_enabled()


def test_live_batches_hold_every_sample_so_far(setup):
    """Each partial holds every sample so far: a watcher that sees only the latest (a job's
    throttle) misses none. The seeds come first, as eq. 8 moves them: the K of them before
    each step, the last all inside and the first samples."""
    engine, G, acts = setup
    batches = []
    rng = middle_range(acts["9"][:, 2])
    res = engine.inverse_set(("9", 2), rng, generator=G, K=4, n=22,
                             control=Control(partial=batches.append))
    first = next(i for i, b in enumerate(batches) if isinstance(b, SampleBatch))
    seeds, batches = batches[:first], batches[first:]
    assert seeds and all(isinstance(b, SeedBatch) for b in seeds)
    assert [b.step for b in seeds] == list(range(len(seeds))) == list(range(res.steps_seeds + 1))
    for b in seeds:                   # the flags are the ranges', on the activations shown
        assert b.images.shape == (4, 1, 28, 28) and b.activations.shape == (4, 1)
        np.testing.assert_array_equal(b.inside, (b.activations[:, 0] >= rng[0])
                                      & (b.activations[:, 0] <= rng[1]))
    assert seeds[-1].inside.all() and not all(b.inside.all() for b in seeds[:-1])
    np.testing.assert_array_equal(seeds[-1].images, res.images[:4])
    assert all(isinstance(b, SampleBatch) for b in batches)
    sizes = [len(b.images) for b in batches]
    assert sizes[0] == 4 and sizes == sorted(sizes) and sizes[-1] == 22
    np.testing.assert_allclose(batches[-1].images, res.images)
    np.testing.assert_allclose(batches[-1].activations, res.activations, atol=1e-5)
    for b in batches:                                     # each an earlier prefix of the last
        np.testing.assert_array_equal(b.images, res.images[:len(b.images)])


def test_a_default_range_is_the_units_70th_to_90th_percentile_on_the_dataset(setup):
    """ranges=None: found on the dataset after the seeds' start is shown (no flags yet)."""
    engine, G, acts = setup
    data = engine.activations(engine.dataset.images, ["9", "3"])
    want = np.percentile(data["9"][:, 2], [70, 90])
    batches = []
    res = engine.inverse_set(("9", 2), None, generator=G, K=3, n=6,
                             control=Control(partial=batches.append))
    np.testing.assert_allclose(res.ranges, [want], rtol=1e-5)
    assert isinstance(batches[0], SeedBatch) and batches[0].inside is None
    assert batches[0].step == 0 and batches[1].step == 0 and batches[1].inside is not None
    np.testing.assert_allclose(batches[0].images, batches[1].images, atol=1e-6)   # chunks differ
    fixed = middle_range(acts["3"][:, 1, 4, 4])
    both = engine.inverse_set([("9", 2), ("3", (1, 4, 4))], [None, fixed], generator=G, K=3, n=6)
    np.testing.assert_allclose(both.ranges, [want, fixed], rtol=1e-5)
    bare = Engine(engine.model, (1, 28, 28), device="cpu")
    with pytest.raises(InvalidArgument, match=r"no range given for 9 2 and the engine has no "
                                              r"dataset.*pass \(z1, z2\)"):
        bare.inverse_set(("9", 2), None, generator=G, K=3, n=6)
    with pytest.raises(InvalidArgument, match="finite z1 < z2"):
        engine.inverse_set(("9", 2), (float("nan"), 1.0), generator=G, K=3, n=6)


def test_a_constant_units_default_range_is_widened_around_it():
    assert default_range(np.zeros(10)) == pytest.approx((-1e-3, 1e-3))
    assert default_range(np.arange(101.0)) == pytest.approx((70.0, 90.0))


def test_bad_input_says_what_was_expected(setup):
    engine, G, _ = setup
    with pytest.raises(ValueError, match="one \\(z1, z2\\) per unit"):
        engine.inverse_set([("9", 1), ("9", 2)], (0, 1), generator=G)
    with pytest.raises(ValueError, match="finite z1 < z2"):
        engine.inverse_set(("9", 1), (2, 1), generator=G)
    with pytest.raises(LayerNotFound, match="layers in forward order"):
        engine.inverse_set(("nope", 1), (0, 1), generator=G)
    with pytest.raises(UnitOutOfRange, match="0 <= unit < 10"):
        engine.inverse_set(("9", 10), (0, 1), generator=G)
    with pytest.raises(ValueError, match="need 1 <= K <= n"):
        engine.inverse_set(("9", 1), (0, 1), generator=G, K=10, n=5)
    bad = nn.Sequential(nn.Linear(8, 64), nn.Unflatten(1, (1, 8, 8)))
    bad.code_dim = 8
    with pytest.raises(ValueError, match=r"images of shape \(N, 1, 28, 28\).* \(1, 1, 8, 8\)"):
        engine.inverse_set(("9", 1), (0, 1), generator=bad)
    with pytest.raises(ValueError, match="code_dim"):
        engine.inverse_set(("9", 1), (0, 1), generator=nn.Linear(8, 784))


def test_baselines(setup):
    engine, G, acts = setup
    rng = middle_range(acts["9"][:, 2])
    am = restarts(engine, ("9", 2), rng, G, n=30, steps=20)
    assert am.images.shape == (30, 1, 28, 28) and am.features.shape[0] == 30
    # activation maximisation drives the unit up, past its starting values
    assert np.median(am.activations[:, 0]) > np.percentile(acts["9"][:, 2], 90)
    assert am.share_in_range == pytest.approx(np.mean((am.activations[:, 0] >= rng[0])
                                                      & (am.activations[:, 0] <= rng[1])))
    full, sd = full_optimisation(engine, ("9", 2), rng, G, n=12,
                                 settings=S(max_outer=3, inner_steps=30))
    assert full.in_range.all() and sd.steps >= 60      # at least two full outer iterations


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_engine_with_a_cpu_generator(setup):
    cpu_engine, G, acts = setup
    engine = Engine(cpu_engine.model, (1, 28, 28), dataset=(cpu_engine.dataset.images,
                                                            cpu_engine.dataset.labels),
                    device="cuda")
    with untouched(cpu_engine.model), untouched(G):
        res = engine.inverse_set(("9", 2), middle_range(acts["9"][:, 2]), generator=G, K=4, n=20)
    assert res.n == 20 and in_range(engine, res)[0]
