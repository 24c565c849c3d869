"""The weights shipped in the package: listed with their hashes, loaded before anything is
trained (an empty cache trains nothing), damaged files warn and fall back to the recipe, and
the cheapest recipe rebuilds its shipped bits exactly."""
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from cnn_widgets.zoo import cache, digits, ship, two_class
from cnn_widgets.zoo.training import accuracy

TINY = {"epochs": 1, "batch_size": 64, "lr": 2e-3, "seed": 0, "augment_shift": 2}
WEIGHTS = cache.shipped_dir()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.SHIPPED_ENV, raising=False)
    return tmp_path / "cache"


def manifest():
    return json.loads((WEIGHTS / cache.MANIFEST).read_text())


def test_every_shipped_model_is_listed_with_matching_hashes_and_small():
    files = manifest()["files"]
    assert sorted(v["model"] for v in files.values()) == sorted(ship.SHIPPED)
    assert sorted(p.name for p in WEIGHTS.glob("*.pt")) == sorted(files)
    for name, e in files.items():
        data = (WEIGHTS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"], name
        payload = torch.load(WEIGHTS / name, weights_only=True)
        assert cache.weights_hash(payload["state_dict"]) == e["weights_sha256"], name
        assert name == cache.cache_path(name.rsplit("-", 1)[0], payload["recipe"]).name
    assert sum(e["bytes"] for e in files.values()) < 3e6


def test_pyproject_ships_the_weights_as_package_data():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    root = WEIGHTS.parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["cnn_widgets.zoo"]
    assert "weights/*.pt" in patterns and f"weights/{cache.MANIFEST}" in patterns


def test_an_empty_cache_loads_the_shipped_weights_and_trains_nothing(empty_cache, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained although the weights are shipped")
    monkeypatch.setattr(two_class, "train_classifier", no_training)
    engine = two_class.two_digits((3, 8))
    card = engine.model_card
    assert card["from_cache"] and card["shipped"]
    assert not empty_cache.exists()                     # nothing written either
    entry = manifest()["files"][cache.cache_path("two-digits-38", card["recipe"]).name]
    assert cache.weights_hash(engine.model.state_dict()) == entry["weights_sha256"]
    x, y = engine.dataset.images, engine.dataset.labels
    assert card["test_accuracy"] == accuracy(engine.model, x, y) >= 0.9


def test_the_zoo_defaults_all_come_from_the_package(empty_cache):
    for name, make in ship.SHIPPED.items():
        card = make().model_card
        assert card["shipped"] and card["from_cache"], name
    assert not empty_cache.exists()


def test_retrain_and_the_off_switch_train(empty_cache, monkeypatch):
    monkeypatch.setattr(two_class, "RECIPE", TINY)     # cheap; shipped as if it were the default
    fake = empty_cache.parent / "weights"
    monkeypatch.setattr(cache, "shipped_dir", lambda: fake)
    _ship_tiny_two_digits(fake, empty_cache)
    assert two_class.two_digits((3, 8)).model_card["shipped"]
    retrained = two_class.two_digits((3, 8), retrain=True).model_card
    assert not retrained["from_cache"] and not retrained["shipped"]
    monkeypatch.setenv(cache.SHIPPED_ENV, "0")
    assert not two_class.two_digits((3, 8)).model_card["shipped"]     # the cache file now


def _ship_tiny_two_digits(fake, cache_dir):
    """Train the (patched) two-digits recipe and ship it in ``fake`` as ship.write would."""
    fake.mkdir()
    path = Path(two_class.two_digits((3, 8)).model_card["cache_file"])
    shutil.move(path, fake / path.name)
    files = {path.name: ship.entry("two-digits-38", fake / path.name)}
    (fake / cache.MANIFEST).write_text(json.dumps({"files": files}))
    return fake / path.name


@pytest.mark.parametrize("damage", ["flip", "delete", "manifest"])
def test_a_damaged_shipped_file_warns_and_trains_by_the_recipe(damage, empty_cache, monkeypatch):
    monkeypatch.setattr(two_class, "RECIPE", TINY)
    fake = empty_cache.parent / "weights"
    monkeypatch.setattr(cache, "shipped_dir", lambda: fake)
    path = _ship_tiny_two_digits(fake, empty_cache)
    good = torch.load(path, weights_only=True)["state_dict"]
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "delete":
        path.unlink()
    else:
        (fake / cache.MANIFEST).write_text("{not json")
    with pytest.warns(UserWarning, match=r"shipped weights .*|manifest\.json is unreadable"):
        engine = two_class.two_digits((3, 8))
    card = engine.model_card
    assert not card["from_cache"] and not card["shipped"]
    assert cache.weights_hash(engine.model.state_dict()) == cache.weights_hash(good)
    d = digits()
    keep = (d.y_test == 3) | (d.y_test == 8)
    assert card["test_accuracy"] == accuracy(engine.model, d.x_test[keep], (d.y_test[keep] == 8).long())


def test_the_cheapest_recipe_rebuilds_its_shipped_bits(tmp_path):
    """two-digits-18 (a LeNet on ~290 images, about a second): retrained from an empty cache
    with the shipped weights ignored, its tensors are the shipped tensors, byte for byte."""
    m = manifest()
    if m["cpu_capability"] != torch.backends.cpu.get_cpu_capability():
        pytest.skip(f"shipped weights made with {m['cpu_capability']} kernels, this CPU runs "
                    f"{torch.backends.cpu.get_cpu_capability()}: float rounding may differ")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)          # the recipe pins one thread: the caller's setting is moot
    try:
        path = ship.build("two-digits-18", tmp_path)
    finally:
        torch.set_num_threads(threads)
    shipped = next(v for v in m["files"].values() if v["model"] == "two-digits-18")
    assert path.name in m["files"]
    assert ship.entry("two-digits-18", path)["weights_sha256"] == shipped["weights_sha256"]
    assert ship.check(["two-digits-18"]) == []
