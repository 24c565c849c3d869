"""The offline zoo: digits data, LeNet, the training recipe, the weight cache, and MNIST
read from IDX files written here."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from cnn_widgets import Engine
from cnn_widgets.engine import CacheCorrupt
from cnn_widgets.testing.data import write_digits_idx
from cnn_widgets.zoo import LeNet, cache, digits, lenet_digits, lenet_mnist, train, train_classifier
from cnn_widgets.zoo.pretrained import fresh_lenet
from cnn_widgets.zoo.training import accuracy, random_shift

LENET_LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1",
                "relu3", "fc2", "relu4", "fc3"]


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_VAR, str(root))
    monkeypatch.setenv(cache.SHIPPED_ENV, "0")   # these tests train: not the shipped weights
    return root


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


# -- digits ------------------------------------------------------------------------------
def test_digits_shapes_range_and_labels():
    d = digits()
    n = len(load_digits().target)
    assert d.x_train.shape[1:] == d.x_test.shape[1:] == (1, 28, 28)
    assert d.x_train.shape[0] + d.x_test.shape[0] == n
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.y_train.dtype == d.y_test.dtype == torch.int64
    for x in (d.x_train, d.x_test):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert float(x.max()) > 0.9   # ink reaches full intensity, as in MNIST
        frame = torch.ones(28, 28, dtype=torch.bool)
        frame[4:24, 4:24] = False
        assert float(x[:, 0][:, frame].abs().max()) == 0.0   # digit inside a centred 20x20 box
    for y in (d.y_train, d.y_test):
        assert sorted(torch.unique(y).tolist()) == list(range(10))
    assert list(d.class_names) == [str(i) for i in range(10)]
    images, labels = d.test_pair()
    assert images is d.x_test and labels is d.y_test
    images, labels = d.train_pair()
    assert images is d.x_train and labels is d.y_train


def test_digits_split_is_fixed_disjoint_stratified_and_faithful():
    a, b = digits(), digits()
    assert np.array_equal(a.train_index, b.train_index)
    assert np.array_equal(a.test_index, b.test_index)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert not set(a.train_index) & set(a.test_index)

    raw = load_digits()
    assert sorted(np.concatenate([a.train_index, a.test_index]).tolist()) == \
        list(range(len(raw.target)))
    assert np.array_equal(a.y_test.numpy(), raw.target[a.test_index])
    assert np.array_equal(a.y_train.numpy(), raw.target[a.train_index])
    test_counts = np.bincount(a.y_test.numpy(), minlength=10)
    all_counts = np.bincount(raw.target, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)   # stratified 80/20
    # Each 28x28 image is its 8x8 source: shrinking the 20x20 box back matches it closely.
    back = F.adaptive_avg_pool2d(a.x_test[:, :, 4:24, 4:24], 8)[:, 0].numpy()
    source = raw.images[a.test_index] / 16.0
    corr = [np.corrcoef(p.ravel(), q.ravel())[0, 1] for p, q in zip(back, source)]
    assert min(corr) > 0.9


# -- LeNet ---------------------------------------------------------------------------------
def test_lenet_is_the_paper_architecture_with_named_modules():
    model = LeNet()
    assert [name for name, _ in model.named_children()] == LENET_LAYERS
    assert all(not m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
             for n, m in model.named_children()]
    model(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert shapes["pool1"] == (1, 6, 14, 14) and shapes["pool2"] == (1, 16, 5, 5)
    assert shapes["fc1"] == (1, 120) and shapes["fc2"] == (1, 84)
    assert sum(p.numel() for p in model.parameters()) == 61706   # LeNet-5's parameter count
    engine = Engine(model, (1, 28, 28), device="cpu")
    assert engine.layer_names == LENET_LAYERS


# -- training recipe -----------------------------------------------------------------------
def test_random_shift_moves_whole_images_within_bounds():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    moved = set()
    for img in out[:, 0]:
        rows, cols = torch.nonzero(img, as_tuple=True)
        dy, dx = int(rows.min()) - 10, int(cols.min()) - 10
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert torch.equal(img, torch.roll(x[0, 0], (dy, dx), (0, 1)))
        moved.add((dy, dx))
    assert len(moved) > 10   # shifts vary per image


def test_training_is_deterministic_and_keeps_global_state():
    d = digits()
    short = {"epochs": 1, "batch_size": 64, "lr": 2e-3, "augment_shift": 2}
    rng_before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    first = fresh_lenet(0)
    train_classifier(first, d.x_train, d.y_train, seed=0, **short)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before
    assert not first.training
    again = fresh_lenet(0)
    train_classifier(again, d.x_train, d.y_train, seed=0, **short)
    assert state_equal(first, again)
    other = fresh_lenet(0)
    train_classifier(other, d.x_train, d.y_train, seed=1, **short)
    assert not state_equal(first, other)


# -- cache -----------------------------------------------------------------------------------
def test_cache_roundtrip_keys_and_bad_files(cache_root):
    recipe = {"model": "LeNet", "train": {"epochs": 1, "lr": 0.5}}
    state = {"w": torch.arange(6.0).view(2, 3)}
    assert cache.load("m", recipe) is None
    path = cache.save("m", recipe, state, {"test_accuracy": 0.5})
    assert path.parent == cache_root and [p.name for p in cache_root.iterdir()] == [path.name]
    loaded, meta = cache.load("m", recipe)
    assert torch.equal(loaded["w"], state["w"]) and meta == {"test_accuracy": 0.5}
    changed = {"model": "LeNet", "train": {"epochs": 2, "lr": 0.5}}
    assert cache.cache_path("m", changed) != path and cache.load("m", changed) is None
    path.write_bytes(path.read_bytes()[:20])   # truncated file -> a named fault, not a crash
    with pytest.raises(CacheCorrupt, match="unreadable"):
        cache.load("m", recipe)


def test_cache_dir_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / ".cache" / "cnn_widgets"


# -- the default model -------------------------------------------------------------------
def test_lenet_digits_trains_caches_reloads_and_reproduces(cache_root, capsys):
    trained = lenet_digits(device="cpu")
    card = trained.model_card
    assert not card["from_cache"]
    assert card["test_accuracy"] >= 0.95
    d = digits()
    assert torch.equal(trained.dataset.images, d.x_test)
    assert torch.equal(trained.dataset.labels, d.y_test)
    assert trained.class_names == [str(i) for i in range(10)]
    assert trained.layer_names == LENET_LAYERS
    # the stored accuracy is what the model really scores on the held-out split
    assert accuracy(trained.model, d.x_test, d.y_test) == card["test_accuracy"]

    loaded = lenet_digits(device="cpu")
    assert loaded.model_card["from_cache"]
    assert loaded.model_card["test_accuracy"] == card["test_accuracy"]
    assert state_equal(trained.model, loaded.model)

    train.main()   # the reproduce command retrains from scratch: same bits
    out = capsys.readouterr().out
    assert f"{card['test_accuracy']:.2%}" in out
    retrained = lenet_digits(device="cpu")
    assert state_equal(trained.model, retrained.model)
    print(f"\nlenet_digits: training {card['trained_seconds']:.1f} s, "
          f"test accuracy {card['test_accuracy']:.2%}")


# -- MNIST from IDX files ------------------------------------------------------------------
@pytest.fixture
def mnist_root(tmp_path):
    """Real handwriting in MNIST's on-disk layout: the digits, 28x28 uint8 0..255."""
    write_digits_idx(tmp_path / "mnist", "MNIST")
    return tmp_path / "mnist"


def test_lenet_mnist_reads_idx_files_trains_and_caches(mnist_root, cache_root):
    d = digits()
    engine = lenet_mnist(mnist_root, epochs=3, limit=1000, device="cpu")
    card = engine.model_card
    assert not card["from_cache"]
    assert card["recipe"]["data"]["root"] == str(mnist_root.resolve())
    assert card["recipe"]["data"]["n_train"] == 1000
    assert card["recipe"]["data"]["n_test"] == d.x_test.shape[0]
    images, labels = engine.dataset.images, engine.dataset.labels
    assert images.shape == d.x_test.shape and images.dtype == torch.float32
    assert torch.equal(labels, d.y_test)
    assert float((images - d.x_test).abs().max()) <= 0.5 / 255 + 1e-6   # uint8 round trip
    assert card["test_accuracy"] >= 0.6   # chance is 0.1
    assert accuracy(engine.model, images, labels) == card["test_accuracy"]

    again = lenet_mnist(mnist_root, epochs=3, limit=1000, device="cpu")
    assert again.model_card["from_cache"] and state_equal(engine.model, again.model)
    other = lenet_mnist(mnist_root, epochs=1, limit=200, device="cpu")
    assert not other.model_card["from_cache"]
    assert other.model_card["cache_file"] != card["cache_file"]


def test_lenet_mnist_without_files_and_no_download_says_so(tmp_path, cache_root):
    with pytest.raises(RuntimeError, match="download=True"):
        lenet_mnist(tmp_path / "empty")
