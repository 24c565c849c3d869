"""Sanity checks (Adebayo et al.): the model randomisation runs on a copy (the user's model and
RNG untouched after success, error and Stop), the randomised models are the documented
re-initialisations, the measures score a map against itself as 1, and on the digits LeNet the
gradient's maps change under the cascade while guided backprop's change less."""
import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cnn_widgets import zoo
from cnn_widgets.engine import (
    Cancelled,
    CnnWidgetsError,
    Control,
    InputShapeError,
    InvalidArgument,
    InvalidType,
    NoSuitableLayer,
)
from cnn_widgets.engine.sanity.maps import GUIDED_BACKPROP, METHODS
from cnn_widgets.engine.sanity.randomize import randomizable
from cnn_widgets.engine.sanity.similarity import (
    rank_correlation,
    self_similarities,
    similarities,
    ssim,
)
from cnn_widgets.testing import (
    TINY_SHAPE,
    as_user_model,
    raising_lenet,
    random_images,
    tiny_lenet,
    tiny_mlp,
    untouched,
)
from cnn_widgets.testing.reference import cpu_engine, reference_jacobian

TOP_DOWN = ("fc2", "fc1", "conv2", "conv1")      # tiny_lenet's parameterised layers, top first


def _engine(model=None, **kw):
    model = as_user_model(tiny_lenet(0)) if model is None else model
    return model, cpu_engine(model, TINY_SHAPE, mean=0.2, std=0.5, **kw)


def _by_hand(model, layers, seed=0):
    """A deep copy with ``layers`` re-initialised as documented: reset_parameters() after
    torch.manual_seed(seed * 1_000_003 + forward position)."""
    work = copy.deepcopy(model).eval()
    forward = TOP_DOWN[::-1]
    with torch.random.fork_rng(devices=[]):
        for name in layers:
            torch.manual_seed(seed * 1_000_003 + forward.index(name))
            getattr(work, name).reset_parameters()
    return work


def test_layers_are_the_parameterised_ones_top_down_and_the_maps_cover_every_method():
    model, engine = _engine()
    assert randomizable(engine) == TOP_DOWN[::-1] and engine.sanity_layers() == TOP_DOWN
    r = engine.sanity_check(random_images(3))
    assert r.layers == TOP_DOWN and r.methods == METHODS and r.cascade
    n, (c, h, w) = 3, TINY_SHAPE
    for m in METHODS:
        channels = 1 if m == "gradcam" else c
        assert r.original[m].shape == (n, channels, h, w)
        assert r.maps[m].shape == (len(TOP_DOWN), n, channels, h, w)
    for metric in ("rank_abs", "rank", "ssim"):
        assert r.similarity(metric).shape == (len(METHODS), len(TOP_DOWN), n)
        assert r.mean(metric).shape == (len(METHODS), len(TOP_DOWN))
    assert r.classes.shape == (len(TOP_DOWN), n)
    np.testing.assert_array_equal(r.original_classes, engine.predict(r.x).argmax(1))


def test_etalon_filter_and_gradient_are_the_input_gradient_of_the_class_logit():
    model, engine = _engine()
    x = random_images(2)
    r = engine.sanity_check(x, methods=["etalon", "filter", "gradient"], classes=[1, 3])
    J = reference_jacobian(model, x[0], mean=0.2, std=0.5)
    for m in ("etalon", "filter", "gradient"):
        np.testing.assert_allclose(r.original[m][0], J[1], atol=1e-5)
    J = reference_jacobian(model, x[1], mean=0.2, std=0.5)
    np.testing.assert_allclose(r.original["gradient"][1], J[3], atol=1e-5)


@pytest.mark.parametrize("cascade", [True, False])
def test_each_stage_is_the_documented_reinitialisation(cascade):
    model, engine = _engine()
    x = random_images(2)
    r = engine.sanity_check(x, methods=["gradient"], cascade=cascade, classes=[0, 2], seed=5)
    for s, name in enumerate(TOP_DOWN):
        changed = TOP_DOWN[:s + 1] if cascade else (name,)
        ref = _by_hand(model, changed, seed=5)
        for i, c in enumerate((0, 2)):
            J = reference_jacobian(ref, x[i], mean=0.2, std=0.5)
            np.testing.assert_allclose(r.maps["gradient"][s, i], J[c], atol=1e-5)


def test_randomising_the_top_layer_changes_the_logits_maps():
    model, engine = _engine()
    x = random_images(4)
    r = engine.sanity_check(x, methods=["gradient", GUIDED_BACKPROP], layers=["fc2"],
                            classes=[0, 1, 2, 3])
    assert r.layers == ("fc2",)
    for m in ("gradient", GUIDED_BACKPROP):
        assert np.abs(r.maps[m][0] - r.original[m]).max() > 1e-3 * np.abs(r.original[m]).max()
    assert np.nanmax(r.rank[0, 0]) < 1.0                   # the gradient's maps moved


def test_a_map_compared_with_itself_scores_one():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 1, 12, 10, generator=g).numpy()
    for k, v in similarities(a, a).items():
        np.testing.assert_allclose(v, 1.0, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(rank_correlation(a, -a, absolute=False), -1.0)
    np.testing.assert_allclose(rank_correlation(a, -a, absolute=True), 1.0)
    assert np.isnan(rank_correlation(np.zeros((1, 1, 5, 5)), a[:1, :, :5, :5], True)).all()
    assert ssim(a[0], 2 * a[0] + 1) == pytest.approx(1.0)    # normalised to [0, 1] first
    assert ssim(a[0], a[1]) < 0.5
    assert np.isnan(ssim(a[0, :, :2, :2], a[1, :, :2, :2]))  # no 3 x 3 window fits
    _, engine = _engine()
    x = random_images(3)
    same = engine.sanity_check_data(x, engine, methods=["gradient", "gradcam", "deconvnet"])
    for metric in ("rank_abs", "rank", "ssim"):
        vals = same.similarity(metric)
        np.testing.assert_allclose(vals[~np.isnan(vals)], 1.0, atol=1e-9)


def test_the_original_rows_self_similarity_is_what_the_measures_give():
    """The original model's row is scored against itself without running the measures (their
    first run loads scipy and scikit-image: 0.6 s before the first row): the same values."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 3, 12, 10, generator=g).numpy()
    a[1] = 0.5                                                   # a constant map: nan ranks
    for maps in (a, a[:, :1], a[:, :, :2, :2]):                  # one channel; no 3 x 3 window
        want, got = similarities(maps, maps), self_similarities(maps)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-12, err_msg=k)


def test_rank_correlation_is_scipys_spearman_per_image_ties_included():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 3, 6, 5, generator=g).numpy()
    b = (a + torch.randn(4, 3, 6, 5, generator=g).numpy()).round(0)      # many ties
    for absolute in (True, False):
        got = rank_correlation(a, b, absolute)
        f = np.abs if absolute else (lambda m: m)
        want = [spearmanr(f(p).sum(0).ravel(), f(q).sum(0).ravel())[0] for p, q in zip(a, b)]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_user_model_and_rng_untouched_after_success_error_and_stop():
    model, engine = _engine()
    x = random_images(3)
    state = torch.random.get_rng_state()
    with untouched(model):
        engine.sanity_check(x, methods=["gradient", "deconvnet_masks"])
        engine.sanity_check(x, methods="gradient", cascade=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    rows = []

    def fail(row):
        rows.append(row)
        if len(rows) == 3:
            raise RuntimeError("a failing viewer")

    with untouched(model), pytest.raises(RuntimeError, match="failing viewer"):
        engine.sanity_check(x, methods=["gradient"], control=Control(partial=fail))
    steps = []
    with untouched(model), pytest.raises(Cancelled):
        engine.sanity_check(x, control=Control(should_stop=lambda: len(steps) >= 4,
                                               report=lambda *a: steps.append(a)))
    raising = as_user_model(raising_lenet(0))
    _, boom = _engine(raising)
    raising.boom.armed = True
    with untouched(raising), pytest.raises(RuntimeError, match="boom"):
        boom.sanity_check(x, methods="gradient")


def test_progress_and_live_rows():
    _, engine = _engine()
    x = random_images(2)
    seen, steps = [], []
    r = engine.sanity_check(x, methods=["gradient", "deconvnet", "filter", "gradcam"],
                            control=Control(partial=seen.append, report=lambda *a: steps.append(a)))
    groups = 3                                   # the two reconstructions share one group
    assert [s[0] for s in steps] == list(range(1, (len(TOP_DOWN) + 1) * groups + 1))
    assert all(s[1] == (len(TOP_DOWN) + 1) * groups for s in steps)
    # each partial is the whole picture so far: the previous one and one more row
    assert [len(p) for p in seen] == list(range(1, len(seen) + 1))
    assert all(p[:-1] == q for p, q in zip(seen[1:], seen))
    rows = seen[-1]
    assert [(row.stage, row.method) for row in rows[:4]] == [(-1, m) for m in r.methods]
    for row in rows[4:]:
        k = r.methods.index(row.method)
        np.testing.assert_array_equal(row.maps, r.maps[row.method][row.stage])
        np.testing.assert_array_equal(row.rank_abs, r.rank_abs[k, row.stage])
        assert row.layer == r.layers[row.stage]
    assert len(rows) == (len(TOP_DOWN) + 1) * len(r.methods)


def test_a_watcher_that_sees_only_the_latest_partial_gets_every_row():
    """Issue 18: each partial was one SanityRow, so a job's watcher (it gets only the latest
    partial per interval) lost rows; the last partial is now every row."""
    from cnn_widgets.jobs import JobRunner
    _, engine = _engine()
    x = random_images(2)
    runner, seen = JobRunner(), []
    try:
        job = runner.submit(lambda control: engine.sanity_check(x, methods=["gradient", "gradcam"],
                                                                control=control),
                            on_partial=seen.append)
        assert job.wait(60) and job.state == "done"
    finally:
        runner.shutdown()
    r = job.result
    last = seen[-1]
    assert {(row.stage, row.method) for row in last} == {
        (s, m) for s in range(-1, len(r.layers)) for m in r.methods}
    for row in last[len(r.methods):]:
        np.testing.assert_array_equal(row.maps, r.maps[row.method][row.stage])


def test_seed_and_keep_maps():
    _, engine = _engine()
    x = random_images(2)
    a, b = (engine.sanity_check(x, methods="gradient", seed=s) for s in (0, 0))
    np.testing.assert_array_equal(a.maps["gradient"], b.maps["gradient"])
    c = engine.sanity_check(x, methods="gradient", seed=1, keep_maps=False)
    assert c.maps == {} and not np.array_equal(c.rank_abs, a.rank_abs)


def test_data_randomisation_compares_with_another_model_or_engine():
    model, engine = _engine()
    other = tiny_lenet(7)
    x = random_images(3)
    with untouched(model), untouched(other):
        r = engine.sanity_check_data(x, other, methods=["gradient", "gradcam"], classes=[0, 1, 2])
    assert r.layers == ("other model",) and r.maps["gradient"].shape == (1, 3, *TINY_SHAPE)
    ref = cpu_engine(other, TINY_SHAPE, mean=0.2, std=0.5)
    s = engine.sanity_check_data(x, ref, methods=["gradient", "gradcam"], classes=[0, 1, 2])
    np.testing.assert_array_equal(r.rank_abs, s.rank_abs)
    J = reference_jacobian(other, x[2], mean=0.2, std=0.5)
    np.testing.assert_allclose(r.maps["gradient"][0, 2], J[2], atol=1e-5)


@pytest.fixture(scope="module")
def digits_cascade():
    engine = zoo.lenet_digits()
    x = engine.dataset.images[:16]
    return engine.sanity_check(x, methods=["gradient", GUIDED_BACKPROP])


def test_gradient_changes_under_the_cascade_and_guided_backprop_less(digits_cascade):
    """The paper's headline on the digits LeNet: after each stage of the cascade guided
    backprop's maps stay closer to the original than the gradient's, by all three measures,
    and the gradient's signed rank correlation ends near 0 while guided backprop's does not."""
    r = digits_cascade
    g, gbp = r.methods.index("gradient"), r.methods.index(GUIDED_BACKPROP)
    for metric in ("rank_abs", "rank", "ssim"):
        mean = r.mean(metric)
        assert (mean[gbp] > mean[g]).all(), (metric, mean)
    rank = r.mean("rank")
    assert abs(rank[g, -1]) < 0.15 and rank[gbp, -1] > rank[g, -1] + 0.1
    assert r.mean("rank_abs")[gbp, :2].min() > 0.8           # the top layers barely matter


def test_the_shuffled_label_model_memorises_and_does_not_generalise():
    engine = zoo.lenet_digits_shuffled()
    card = engine.model_card
    assert card["shipped"] and card["train_accuracy"] > 0.95 and card["test_accuracy"] < 0.2
    r = zoo.lenet_digits().sanity_check_data(engine.dataset.images[:2], engine,
                                             methods="gradient")
    assert r.rank_abs.shape == (1, 1, 2)


BAD = [
    (lambda e, x: e.sanity_check(x, methods="magic"), InvalidArgument, "methods must be"),
    (lambda e, x: e.sanity_check(x, methods=[]), InvalidArgument, "methods is empty"),
    (lambda e, x: e.sanity_check(x, layers=["relu1"]), InvalidArgument, "among the layers"),
    (lambda e, x: e.sanity_check(x, layers="fc2"), InvalidType, "must be a list"),
    (lambda e, x: e.sanity_check(x, classes=[0]), InvalidArgument, "one class per image"),
    (lambda e, x: e.sanity_check(x, classes=[0, 9]), InvalidArgument, "out of range"),
    (lambda e, x: e.sanity_check(x, cascade="yes"), InvalidType, "cascade must be True or False"),
    (lambda e, x: e.sanity_check(x, seed=-1), InvalidArgument, "seed"),
    (lambda e, x: e.sanity_check(x[:, :, :4]), InputShapeError, "expected one image of shape"),
    (lambda e, x: e.sanity_check_data(x, "model"), InvalidType, "other must be an engine"),
    (lambda e, x: e.sanity_check_data(x, tiny_mlp(0, classes=3)), InputShapeError,
     "same inputs"),
    (lambda e, x: e.sanity_check(x, methods="gradient").mean("pearson"), InvalidArgument,
     "metric must be one of"),
]


@pytest.mark.parametrize("call,error,message", BAD)
def test_bad_inputs_say_what_was_expected(call, error, message):
    model, engine = _engine()
    with untouched(model), pytest.raises(error, match=message) as got:
        call(engine, random_images(2))
    assert isinstance(got.value, CnnWidgetsError)


def test_a_model_without_parameterised_layers_is_refused():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.ReLU())
    engine = cpu_engine(model, (1, 2, 3))
    with pytest.raises(NoSuitableLayer, match="reset_parameters"):
        engine.sanity_check(torch.rand(1, 1, 2, 3), methods="gradient")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_same_random_weights_and_maps_on_cuda(monkeypatch):
    """The random weights are drawn on a CPU copy of each layer: a CUDA engine randomises to the
    same weights, so its maps match the CPU engine's (TF32 off: fp32 rounding only)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = tiny_lenet(0).eval()
    x = random_images(3)
    cpu = cpu_engine(model, TINY_SHAPE).sanity_check(x, methods=["gradient", GUIDED_BACKPROP],
                                                     classes=[0, 1, 2])
    gpu_model = copy.deepcopy(model).cuda()
    with untouched(gpu_model):
        gpu = cpu_engine(gpu_model, TINY_SHAPE, device="cuda").sanity_check(
            x, methods=["gradient", GUIDED_BACKPROP], classes=[0, 1, 2])
    for m in ("gradient", GUIDED_BACKPROP):
        scale = np.abs(cpu.maps[m]).max()
        np.testing.assert_allclose(gpu.maps[m], cpu.maps[m], atol=1e-4 * scale, err_msg=m)


def test_the_original_maps_come_before_the_working_copy(monkeypatch):
    """Issue 17: the copy of the model and its analysis (a few forward passes of a ResNet-50)
    came before any map, so the first row waited for them."""
    from cnn_widgets.engine.sanity import check as sanity
    _, engine = _engine()
    seen, rows_before = [], []
    real = sanity.working_copy

    def spy(e, *args):
        rows_before.append(len(seen[-1]) if seen else 0)
        return real(e, *args)
    monkeypatch.setattr(sanity, "working_copy", spy)
    r = engine.sanity_check(random_images(2), methods=["gradient", "gradcam"],
                            control=Control(partial=seen.append))
    assert rows_before == [2] and len(seen[-1]) == 2 * (len(r.layers) + 1)


def test_a_stop_between_the_copy_and_its_analysis(monkeypatch):
    """The copy and the new engine's analysis are two units of work, with a Stop check between
    them."""
    from cnn_widgets.engine.sanity import randomize
    _, engine = _engine()
    analysed = []
    monkeypatch.setattr(randomize, "sibling", lambda *args: analysed.append(args))
    with pytest.raises(Cancelled):
        randomize.working_copy(engine, Control(should_stop=lambda: True).check)
    assert analysed == []


def test_the_gradients_stop_between_chunks_of_images(monkeypatch):
    """Issue 17: the gradient maps went in passes of batch_size images (32 images of a
    ResNet-50: 32 forward+backward passes) without a Stop check; now in the chunks of
    core.chunks.spans (one image first, doubling while a chunk stays short)."""
    from cnn_widgets.engine.sanity import maps
    model, engine = _engine()
    x, classes = random_images(5), np.arange(5) % 3
    want = np.stack([reference_jacobian(model, x[i], mean=0.2, std=0.5)[c]
                     for i, c in enumerate(classes)])
    sizes, real = [], engine.layer_output
    monkeypatch.setattr(engine, "layer_output",
                        lambda x, *a, **kw: (sizes.append(len(x)), real(x, *a, **kw))[1])
    asked = []
    got = maps._gradient(engine, engine.prepare(x), classes,
                         Control(should_stop=lambda: asked.append(len(sizes)) or False))
    assert sizes[0] == 1 and sum(sizes) == 5 and asked == list(range(1, len(sizes) + 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
