"""The activation index answers exactly what a direct scan answers (same rows, values to 1e-6,
equal histograms, counts, class means, region counts), resumes after Stop to the same bits,
refuses corrupted files clearly and is never used for other weights or data."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine import CacheCorrupt, Cancelled, InvalidArgument, LayerNotFound
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.hooks import hook_count
from cnn_widgets.engine.index.source import engine_transform
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, untouched

LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3", "fc2"]


def make_engine(seed=1, n=70):
    x = random_images(n, TINY_SHAPE, seed=2)
    return Engine(tiny_lenet(seed), TINY_SHAPE, dataset=(x, torch.arange(n) % 5),
                  device="cpu", batch_size=16)


@pytest.fixture
def engine():
    return make_engine()


def build(engine, root, **kw):
    kw = {"layers": LAYERS, "chunk_size": 32, "k": 6, "progress": False, "patterns": True, **kw}
    return engine.index(path=root, **kw)


def file_digests(index):
    return {f: m["blake2b"] for f, m in index.meta["files"].items()}


TARGETS = [O.channel("conv2", 3), O.channel("relu1", 1), O.logit(2), O.unit("fc1", 7),
           ("fc1", 4), O.channel("pool2", 5)]


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("k", [5, 20])          # inside the stored top list, and beyond it
def test_top_k_and_histogram_equal_the_scan(engine, tmp_path, target, k):
    scan_top, scan_hist = engine.top_images_and_histogram(target, k=k, bins=13)
    with untouched(engine.model):
        build(engine, tmp_path)
    top, hist = engine.top_images_and_histogram(target, k=k, bins=13)
    assert top.source == hist.source == str(next(tmp_path.iterdir())) and scan_top.source == "scan"
    np.testing.assert_array_equal(top.indices, scan_top.indices)
    np.testing.assert_allclose(top.values, scan_top.values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(top.images, scan_top.images)
    np.testing.assert_array_equal(top.labels, scan_top.labels)
    np.testing.assert_allclose(hist.values, scan_hist.values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(hist.counts, scan_hist.counts)
    np.testing.assert_allclose(hist.edges, scan_hist.edges, rtol=0, atol=1e-6)
    one = engine.top_images(target, k=k)
    np.testing.assert_array_equal(one.indices, top.indices)
    h = engine.activation_histogram(target, bins=13)
    np.testing.assert_array_equal(h.counts, hist.counts)


def test_spatial_max_top_list_moments_and_activity_equal_numpy(engine, tmp_path):
    index = build(engine, tmp_path)
    a = engine.activations(engine.dataset.images, ["conv2"])["conv2"]      # (N, C, H, W)
    layer = index.layer("conv2")
    flat = a.reshape(len(a), a.shape[1], -1)
    for c in range(a.shape[1]):
        mx = flat[:, c].max(1)
        rows, values = layer.top(c, 6, by="max")
        np.testing.assert_array_equal(rows, np.argsort(-mx, kind="stable")[:6])
        np.testing.assert_array_equal(values, mx[rows])
        np.testing.assert_array_equal(layer.values(c, "max"), mx)
    per_channel = a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1).astype(np.float64)
    np.testing.assert_allclose(layer.mean, per_channel.mean(1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.var, per_channel.var(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(layer.active_fraction, (per_channel > 0).mean(1))


def test_activation_stats_category_tree_and_regions_equal_the_scan(engine, tmp_path,
                                                                   monkeypatch):
    first = engine.dataset.images[:30]
    stats, tree, regions = engine.activation_stats(first), engine.category_tree(), \
        engine.count_regions()
    build(engine, tmp_path)
    got = engine.activation_stats(first)
    assert got.source != "scan" and got.layers == stats.layers
    for n in stats.layers:
        np.testing.assert_array_equal(got.counts[n], stats.counts[n])
    assert engine.activation_stats(engine.dataset.images[5:9]).source == "scan"  # not a prefix
    import cnn_widgets.engine.clustering.category_tree as ct
    import cnn_widgets.engine.engine as facade

    def no_scan(*a, **k):
        raise AssertionError("scanned although an index matches")
    monkeypatch.setattr(ct, "features", no_scan)
    monkeypatch.setattr(facade, "count_regions", no_scan)
    t = engine.category_tree()
    np.testing.assert_allclose(t.vectors, tree.vectors, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(t.counts, tree.counts)
    np.testing.assert_allclose(t.linkage, tree.linkage, rtol=1e-6, atol=1e-9)
    assert engine.count_regions() == regions
    monkeypatch.undo()
    assert engine.count_regions(layers=["relu3"]) == engine.count_regions(
        data=(engine.dataset.images, engine.dataset.labels), layers=["relu3"])


@pytest.mark.parametrize("how", ["stop", "ctrl-c"])
def test_stop_loses_at_most_one_chunk_and_resume_gives_the_same_bits(tmp_path, how):
    whole = build(make_engine(), tmp_path / "whole")
    engine, seen = make_engine(), []

    def report(done, total, msg):
        seen.append(done)
        if how == "ctrl-c" and len(seen) >= 3:
            raise KeyboardInterrupt
    control = Control(should_stop=lambda: len(seen) >= 3, report=report)   # 48 of 70 images
    before = hook_count(engine.model)
    with untouched(engine.model), pytest.raises(Cancelled if how == "stop" else KeyboardInterrupt):
        build(engine, tmp_path / "part", control=control)
    assert hook_count(engine.model) == before
    partial = next((tmp_path / "part").glob("*.partial"))
    assert sorted(p.name for p in partial.glob("chunk-*")) == ["chunk-000000.npz"]  # 32 of 48
    steps = []
    resumed = build(engine, tmp_path / "part", control=Control(report=lambda d, t, m: steps.append(d)))
    assert steps[0] == 32 + 16                  # the saved chunk was not scanned again
    assert file_digests(resumed) == file_digests(whole)
    assert not partial.exists()


def test_a_finished_index_is_opened_not_rebuilt(engine, tmp_path):
    first = build(engine, tmp_path)
    steps = []
    second = build(engine, tmp_path, control=Control(report=lambda d, t, m: steps.append(d)))
    assert second.path == first.path and steps == []


def test_a_corrupted_file_is_refused_with_a_clear_message(engine, tmp_path):
    index = build(engine, tmp_path)
    f = index.path / "L3__mean.npy"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    fresh = make_engine()
    with pytest.raises(CacheCorrupt, match="L3__mean.npy does not match its content hash.*build "
                                           "the index again"):
        fresh.open_index(index.path)
    f.unlink()
    with pytest.raises(CacheCorrupt, match="L3__mean.npy is missing"):
        fresh.open_index(index.path)
    (index.path / "meta.json").write_text("{not json")
    with pytest.raises(CacheCorrupt, match="meta.json is unreadable"):
        fresh.open_index(index.path)
    with pytest.raises(InvalidArgument, match="not an activation index"):
        fresh.open_index(tmp_path)


def test_other_weights_or_data_never_use_the_index(engine, tmp_path):
    index = build(engine, tmp_path)
    target = O.channel("conv2", 3)
    assert engine.top_images(target, k=3).source == str(index.path)
    with torch.no_grad():
        engine.model.conv1.weight[0, 0, 0, 0] += 0.5          # changed in place
    assert engine.top_images(target, k=3).source == "scan"
    with torch.no_grad():
        engine.model.conv1.weight[0, 0, 0, 0] -= 0.5
    assert engine.top_images(target, k=3).source == str(index.path)
    engine.model.conv2.weight.data = engine.model.conv2.weight.data.clone() + 0.1   # replaced
    assert engine.top_images(target, k=3).source == "scan"
    other = make_engine(seed=2)
    with pytest.raises(InvalidArgument, match="other weights"):
        other.open_index(index.path)
    shifted = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=16,
                     dataset=(random_images(70, TINY_SHAPE, seed=3), torch.arange(70) % 5))
    with pytest.raises(InvalidArgument, match="other data"):
        shifted.open_index(index.path)
    relabelled = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=16,
                        dataset=(random_images(70, TINY_SHAPE, seed=2), torch.arange(70) % 3))
    with pytest.raises(InvalidArgument, match="other data"):
        relabelled.open_index(index.path)
    same = make_engine()
    assert same.open_index(index.path).path == index.path
    assert same.top_images(target, k=3, data=(same.dataset.images, same.dataset.labels)
                           ).source == "scan"               # explicit data is scanned
    assert same.top_images(O.channel("conv2", 3) * 2.0, k=3).source == "scan"


def test_an_image_folder_is_indexed_with_the_engine_preprocessing(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(
                tmp_path / "imgs" / c / f"{i}.png")
    engine = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=4)
    index = engine.index(str(tmp_path / "imgs"), LAYERS, path=tmp_path / "ix", k=3,
                         progress=False)
    top = engine.top_images(O.channel("conv2", 1), k=4)
    assert top.source == str(index.path)
    from torchvision.datasets import ImageFolder
    ds = ImageFolder(str(tmp_path / "imgs"), transform=engine_transform(engine))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    scan = engine.top_images(O.channel("conv2", 1), k=4, data=(x, torch.tensor(ds.targets)))
    np.testing.assert_array_equal(top.indices, scan.indices)
    np.testing.assert_allclose(top.values, scan.values, atol=1e-6)
    np.testing.assert_array_equal(top.images, scan.images)
    reopened = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu")
    reopened.open_index(index.path, data=str(tmp_path / "imgs"))
    assert reopened.top_images(O.channel("conv2", 1), k=4).source == str(index.path)


def test_bad_requests_say_what_was_expected(engine, tmp_path):
    with pytest.raises(LayerNotFound, match="layers in forward order"):
        engine.index(layers=["nope"], path=tmp_path, progress=False)
    with pytest.raises(InvalidArgument, match="folder|directory"):
        engine.index("/no/such/folder", path=tmp_path, progress=False)
    index = build(engine, tmp_path)
    with pytest.raises(LayerNotFound, match="indexed layers"):
        index.layer("conv9")
    with pytest.raises(InvalidArgument, match="k must be in 1..70"):
        engine.top_images(O.channel("conv2", 1), k=71)


class ResidualToy(torch.nn.Module):
    """One ReLU module called twice (the second call after a residual add), a functional relu
    and a max-pool: every gate call is a layer of its own."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(4, 3, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(48, 5)

    def forward(self, x):
        h = self.act(self.conv1(x))
        h = self.act(self.conv2(h) + h)
        return self.fc(self.pool(torch.nn.functional.relu(self.conv3(h))).flatten(1))


def residual_engine():
    """10 images, 7 slightly noisy copies each: leaving out any one gate call changes the
    region count (43 distinct patterns; 29..37 without one of the four)."""
    g = torch.Generator().manual_seed(0)
    x = random_images(10, TINY_SHAPE, seed=3).repeat(7, 1, 1, 1)
    x = (x + 3e-3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return Engine(ResidualToy(), TINY_SHAPE, dataset=(x, torch.arange(70) % 5), device="cpu",
                  batch_size=16)


def test_every_gate_call_is_indexed_and_answers_as_the_scan(tmp_path, monkeypatch):
    e = residual_engine()
    from cnn_widgets.engine.index import default_layers
    assert {"act", "act:1", "relu", "pool"} <= set(default_layers(e))      # act:1: stage output
    scans = {t: e.top_images_and_histogram(t, k=9, bins=11)
             for t in (O.channel("act:1", 2), O.channel("relu", 1), O.channel("act", 0))}
    stats, regions = e.activation_stats(e.dataset.images[:40]), e.count_regions()
    assert regions.layers == tuple(e.gate_layers) and regions.total == 43
    with untouched(e.model):
        index = e.index(path=tmp_path, chunk_size=32, k=6, progress=False, patterns=True)
    assert index.meta["settings"]["gates"] == ["act", "act:1", "relu", "pool"]
    for t, (scan_top, scan_hist) in scans.items():
        top, hist = e.top_images_and_histogram(t, k=9, bins=11)
        assert top.source == str(index.path)
        np.testing.assert_array_equal(top.indices, scan_top.indices)
        np.testing.assert_allclose(top.values, scan_top.values, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(hist.counts, scan_hist.counts)
        np.testing.assert_allclose(hist.edges, scan_hist.edges, rtol=0, atol=1e-6)
    got = e.activation_stats(e.dataset.images[:40])
    assert got.source != "scan" and got.layers == stats.layers
    for n in stats.layers:
        np.testing.assert_array_equal(got.counts[n], stats.counts[n])
    import cnn_widgets.engine.engine as facade
    monkeypatch.setattr(facade, "count_regions", lambda *a, **k: 1 / 0)   # must not scan
    assert e.count_regions() == regions


def test_an_index_of_one_later_call_stops_there(tmp_path):
    e = residual_engine()
    index = e.index(layers=["act:1"], path=tmp_path, k=4, progress=False)
    a = e.activations(e.dataset.images, ["act:1"])["act:1"]
    np.testing.assert_array_equal(index.layer("act:1").values(3, "max"),
                                  a[:, 3].reshape(len(a), -1).max(1))


def test_a_terminal_gets_a_tqdm_bar(engine, tmp_path, capsys):
    build(engine, tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "index" in err and "70/70" in err


def test_the_partitioned_top_list_is_numpys_stable_sort():
    from cnn_widgets.engine.index.stats import top_order
    rng = np.random.default_rng(0)
    for trial in range(200):
        c, m, k = rng.integers(1, 6), rng.integers(1, 40), rng.integers(1, 45)
        v = rng.integers(-2, 3, (c, m)).astype(np.float32)       # many ties, zeros included
        if trial % 2:
            v = np.maximum(rng.standard_normal((c, m)).astype(np.float32), 0)
        np.testing.assert_array_equal(top_order(v, k), np.argsort(-v, axis=1, kind="stable")[:, :k])
