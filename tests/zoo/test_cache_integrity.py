"""A cache file that changed on disk, or no longer fits its model, warns and is retrained over;
every model the zoo trains comes back without ``.grad``s (tiny recipes: seconds each)."""
from pathlib import Path

import pytest
import torch

from cnn_widgets.engine import CacheCorrupt
from cnn_widgets.testing.data import write_digits_idx
from cnn_widgets.zoo import cache, digits, generator, lenet_digits, pretrained, two_class, vgg
from cnn_widgets.zoo.training import accuracy

TINY = {"epochs": 1, "batch_size": 64, "lr": 2e-3, "seed": 0, "augment_shift": 2}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A cache in tmp_path and one-epoch recipes for every digits model."""
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "RECIPE", TINY)
    monkeypatch.setattr(two_class, "RECIPE", TINY)
    monkeypatch.setattr(vgg, "DIGITS_RECIPE", TINY)
    monkeypatch.setattr(generator, "RECIPE", {"code_dim": 4, "epochs": 1, "batch_size": 256,
                                              "lr": 2e-3, "seed": 0})
    from test_two_class import unchecked_cifar  # torchvision reads the test files
    unchecked_cifar(monkeypatch)
    return tmp_path / "cache"


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def retrained_after(damage, match):
    """Train and cache the tiny LeNet, ``damage(path)`` its file, then load: the load must
    warn (naming the file and ``match``), retrain to the same bits, report the real accuracy,
    and overwrite the file atomically so that the next load is a clean hit."""
    first = lenet_digits(device="cpu")
    path = first.model_card["cache_file"]
    damage(path)
    with pytest.warns(UserWarning, match=match) as record:
        again = lenet_digits(device="cpu")
    assert any(path in str(w.message) for w in record)
    card = again.model_card
    assert not card["from_cache"]
    d = digits()
    assert card["test_accuracy"] == accuracy(again.model, d.x_test, d.y_test)
    assert card["test_accuracy"] == first.model_card["test_accuracy"]
    assert states_equal(first.model, again.model)
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]   # no temp file
    third = lenet_digits(device="cpu")
    assert third.model_card["from_cache"] and states_equal(first.model, third.model)


def test_flipped_bytes_warn_and_retrain_with_the_real_accuracy(tiny):
    def flip(path):
        data = bytearray(open(path, "rb").read())
        mid = len(data) // 2
        data[mid:mid + 4096] = bytes(b ^ 0xFF for b in data[mid:mid + 4096])   # same length
        open(path, "wb").write(data)
    retrained_after(flip, "does not match its content hash")


def test_a_wrong_shaped_tensor_warns_and_retrains(tiny):
    def reshape(path):
        payload = torch.load(path, weights_only=True)
        payload["state_dict"]["conv1.weight"] = torch.zeros(6, 1, 3, 3)
        cache.save("lenet-digits", payload["recipe"], payload["state_dict"], payload["meta"])
    retrained_after(reshape, "size mismatch for conv1.weight")


def test_missing_and_unexpected_keys_warn_and_retrain(tiny):
    def rename(path):
        payload = torch.load(path, weights_only=True)
        state = payload["state_dict"]
        state["fc9.weight"] = state.pop("fc3.weight")
        cache.save("lenet-digits", payload["recipe"], state, payload["meta"])
    retrained_after(rename, "does not fit the model")


def test_a_truncated_file_warns_and_retrains(tiny):
    def truncate(path):
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    retrained_after(truncate, "unreadable")


def test_load_names_each_fault(tiny):
    recipe = {"model": "m"}
    assert cache.load("m", recipe) is None                     # no file: a plain miss
    path = cache.save("m", recipe, {"w": torch.arange(6.0)}, {"test_accuracy": 0.5})
    state, meta = cache.load("m", recipe)
    assert torch.equal(state["w"], torch.arange(6.0)) and meta == {"test_accuracy": 0.5}
    # the hash covers the metadata too: a model card cannot claim another accuracy
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "meta": {"test_accuracy": 0.98}}, path)
    with pytest.raises(CacheCorrupt, match="content hash"):
        cache.load("m", recipe)
    torch.save({k: v for k, v in payload.items() if k != "sha256"}, path)
    with pytest.raises(CacheCorrupt, match="no content hash"):
        cache.load("m", recipe)
    torch.save({**payload, "recipe": {"model": "other"}}, path)
    with pytest.raises(CacheCorrupt, match="another recipe"):
        cache.load("m", recipe)
    torch.save([1, 2], path)
    with pytest.raises(CacheCorrupt, match=str(path)):
        cache.load("m", recipe)


def test_content_hash_sees_dtype_shape_and_every_byte():
    base = {"w": torch.arange(6.0)}
    h = cache.content_hash({}, {}, base)
    assert cache.content_hash({}, {}, {"w": torch.arange(6.0)}) == h
    assert cache.content_hash({}, {}, {"w": torch.arange(6.0).view(2, 3)}) != h
    assert cache.content_hash({}, {}, {"w": torch.arange(6.0).double()}) != h
    assert cache.content_hash({}, {}, {"v": torch.arange(6.0)}) != h
    flipped = torch.arange(6.0)
    flipped.view(torch.int32)[3] ^= 1                          # one bit of one float
    assert cache.content_hash({}, {}, {"w": flipped}) != h
    assert cache.content_hash({"a": 1}, {}, base) != h
    assert cache.content_hash({}, {"test_accuracy": 0.5}, base) != h
    assert cache.content_hash({}, {}, {"b": torch.tensor(True), "h": torch.ones(2).bfloat16()})


def _lenet(root):
    return lenet_digits(device="cpu")


def _two_digits(root):
    return two_class.two_digits((3, 8))


def _vgg_digits(root):
    return vgg.vgg_digits()


def _lenet_mnist(root):
    from cnn_widgets.zoo import lenet_mnist
    if not (root / "mnist").exists():
        write_digits_idx(root / "mnist", "MNIST")
    return lenet_mnist(root / "mnist", epochs=1, limit=200, device="cpu")


def _cifar(root):
    from test_two_class import write_cifar

    if not (root / "cifar").exists():
        write_cifar(root / "cifar", n=10)
    return two_class.cifar_two_class(root / "cifar", ("cat", "dog"), epochs=1, device="cpu")


@pytest.mark.parametrize("build", [_lenet, _two_digits, _vgg_digits, _lenet_mnist, _cifar])
def test_freshly_trained_models_have_no_grads(build, tiny, tmp_path):
    fresh = build(tmp_path)
    assert not fresh.model_card["from_cache"]
    assert all(p.grad is None for p in fresh.model.parameters())
    loaded = build(tmp_path)
    assert loaded.model_card["from_cache"]
    assert all(p.grad is None for p in loaded.model.parameters())


def test_freshly_trained_generator_has_no_grads(tiny):
    g = generator.digits_generator()
    assert not g.model_card["from_cache"]
    assert all(p.grad is None for p in g.parameters())
