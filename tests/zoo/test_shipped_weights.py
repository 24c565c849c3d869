"""The weights shipped in the package: listed with their hashes, loaded before anything is
trained (an empty cache trains nothing), damaged files warn and fall back to the recipe, and
the cheapest recipe rebuilds its shipped weights: the same bits for the kernel family
the manifest records, within a tolerance and with the same accuracy elsewhere."""
import hashlib
import json
import os
import shutil
import subprocess
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


def _rebuild_and_compare(tmp_path, env=None) -> tuple[dict, dict]:
    """Retrain two-digits-18 (a LeNet on ~290 images, about a second) from an empty cache in a
    fresh process (``env`` added: kernel choices are fixed at import) and compare it with the
    shipped file: (this process's kernel family, :func:`ship.compare`)."""
    code = ("import json, pathlib, sys; from cnn_widgets.zoo import ship; "
            "p = ship.build('two-digits-18', pathlib.Path(sys.argv[1])); "
            "print(json.dumps([ship.kernel_family(), ship.compare('two-digits-18', p)]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, check=True)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _assert_the_guarantee(family: dict, got: dict) -> None:
    """Bytes equal where the kernel family is the manifest's; elsewhere equal to
    REBUILD_RTOL with the same test accuracy (within one of its 142 test images)."""
    if family == manifest()["kernel_family"]:
        assert got["same_bits"], got
    else:
        assert got["max_rel"] <= ship.REBUILD_RTOL, got
        assert abs(got["accuracy"] - got["shipped_accuracy"]) <= 1 / 142 + 1e-9, got


def test_the_cheapest_recipe_rebuilds_its_shipped_weights(tmp_path):
    """On this machine, whatever its CPU model: the guarantee the manifest states."""
    _assert_the_guarantee(*_rebuild_and_compare(tmp_path))


@pytest.mark.parametrize("env", [
    {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},   # torch still AVX512
    {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
], ids=["same-capability", "avx2"])
def test_other_kernels_rebuild_within_the_tolerance(tmp_path, env):
    """AVX2 kernels forced in the math libraries stand in for another CPU model (the first
    case is the one that failed: same torch capability, other bits): the bits may differ,
    the tensors and the accuracy may not (measured: 4e-5 of each tensor's scale)."""
    family, got = _rebuild_and_compare(tmp_path, env)
    assert family["overrides"] == env
    _assert_the_guarantee(family, got)
    assert got["max_rel"] <= ship.REBUILD_RTOL


def test_the_manifest_names_the_kernel_family_it_was_made_with():
    family = manifest()["kernel_family"]
    assert set(family) >= {"torch", "cpu_capability"} and family["torch"]
    assert "overrides" not in family and set(ship.kernel_family()) == set(family)


def test_loading_prints_no_machine_path(empty_cache, capsys):
    """Stored notebooks print what ``verbose`` loading says: the file's name and whether it came
    from the package or the cache, never a folder of the machine that ran them."""
    from cnn_widgets.zoo.pretrained import lenet_digits, lenet_engine
    shipped = lenet_digits(verbose=True)                               # from the package
    first = capsys.readouterr().out
    data = digits()
    recipe = {"model": "LeNet", "train": TINY, "data": {"name": "a test"}}
    make = lambda: lenet_engine("tiny-lenet", "tiny LeNet", recipe, data.x_train[:64], data.y_train[:64],  # noqa: E731
                                data.x_test[:8], data.y_test[:8], train_device=None, device="cpu",
                                retrain=False, verbose=True)
    make()                                                             # trained, then cached
    again = make()                                                     # loaded from the cache
    out = first + capsys.readouterr().out
    for folder in (WEIGHTS, empty_cache, Path.home()):
        assert str(folder) not in out, out
    assert f"shipped weights ({Path(shipped.model_card['cache_file']).name})" in first
    assert f"cache ({Path(again.model_card['cache_file']).name})" in out
