"""Etalons within the engine's memory budget (issue 16): the work goes in chunks of images and
units that fit it, with the same numbers as one pass; a W larger than the budget allows lives
in a disk-backed array; only when one unit at one image cannot fit is the call refused, with
both sizes in the message. (Peak memory itself is measured in benchmarks/memory.py.)"""
import numpy as np
import pytest
import torch

from cnn_widgets.engine import InvalidArgument, InvalidType, MemoryBudgetExceeded
from cnn_widgets.engine.core import memory
from cnn_widgets.engine.etalons import affine_map
from cnn_widgets.engine.etalons.budget import fast_costs, fast_plan
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, untouched
from cnn_widgets.testing.reference import cpu_engine

X = random_images(6, seed=3)
M = 4 * int(np.prod(TINY_SHAPE))         # bytes of one image (and of one unit's W at it)
BIG = 1 << 34


@pytest.fixture
def engine():
    return cpu_engine(tiny_lenet(0), TINY_SHAPE)


def costs(e):
    return fast_costs(e, e.default_layer)


def ram_budget(e, n, p, images, units):
    """A budget whose plan is ``images`` per forward pass and ``units`` per backward pass,
    with x and W held in RAM."""
    forward, backward = costs(e)
    return n * M + n * p * M + images * (forward + units * backward)


@pytest.fixture
def plans(monkeypatch):
    """The (images, units) plan of every fast etalons call."""
    got = []

    def spy(*args, **kwargs):
        got.append(fast_plan(*args, **kwargs))
        return got[-1]
    monkeypatch.setattr(affine_map, "fast_plan", spy)
    return got


def test_the_budget_is_an_engine_setting():
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE, memory_budget=10**9)
    assert e.memory_budget == 10**9
    e.memory_budget = None                                    # back to the default share
    assert 0 < e.memory_budget <= memory.available(e.device)
    for bad, error in ((0, InvalidArgument), (-5, InvalidArgument), (1.5, InvalidType),
                       ("1GB", InvalidType)):
        with pytest.raises(error, match="memory_budget"):
            e.memory_budget = bad


def test_units_in_chunks_equal_one_pass(engine, plans):
    whole = engine.etalons(X)
    engine.memory_budget = ram_budget(engine, 6, 5, 6, 2)
    parts = engine.etalons(X)
    assert plans[-1] == (6, 2)                              # 3 backward passes, not 1
    np.testing.assert_array_equal(parts.out, whole.out)     # the same forward pass
    np.testing.assert_allclose(parts.W, whole.W, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(parts.b, whole.b, rtol=1e-5, atol=1e-6)


def test_images_in_chunks_equal_their_own_calls(engine, plans):
    engine.memory_budget = ram_budget(engine, 6, 5, 1, 1)
    parts = engine.etalons(X)
    assert plans[-1] == (1, 1)
    engine.memory_budget = BIG
    for i in range(6):
        alone = engine.etalons(X[i])
        np.testing.assert_allclose(parts.W[i], alone.W[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(parts.b[i], alone.b[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(parts.out[i], alone.out[0])


def test_a_result_larger_than_the_budget_allows_is_disk_backed_and_complete(engine, plans):
    """500 classes at 1024x1024 used to allocate their 6.3 GB W up front."""
    x = random_images(60, seed=4)
    forward, backward = costs(engine)
    engine.memory_budget = 60 * M + int(2.2 * (forward + backward))
    assert 60 * 5 * M > engine.memory_budget / 2                       # W: more than half
    with untouched(engine.model):
        e = engine.etalons(x)
    assert isinstance(e.W, np.memmap) and plans[-1][0] == 2
    engine.memory_budget = BIG
    ref = np.stack([engine.etalons(x[i]).W[0] for i in range(60)])
    np.testing.assert_allclose(e.W, ref, rtol=1e-5, atol=1e-7)
    # derived views stay out of RAM too, and keep the identity out = <W, x> + b
    votes = e.contributions
    assert isinstance(votes, np.memmap)
    np.testing.assert_array_equal(votes, np.asarray(e.W) * e.x[:, None])
    np.testing.assert_allclose(e.linear_part + e.b, e.out, rtol=1e-4, atol=1e-4)
    e.W[0, 0, 0, 0, 0] = 123.0                   # copy-on-write: the array works like any other
    assert e.W[0, 0, 0, 0, 0] == 123.0


def test_result_array_on_disk_holds_exactly_what_was_written():
    rng = np.random.default_rng(0)
    blocks = rng.standard_normal((3, 4, 2, 5)).astype(np.float32)
    arrays = [memory.ResultArray((3, 4, 2, 5), np.float32, on_disk=d) for d in (False, True)]
    for a in arrays:
        for i in range(3):
            a.write(i, 0, blocks[i, :3])
            a.write(i, 3, blocks[i, 3:])
    ram, disk = (a.array() for a in arrays)
    assert isinstance(disk, np.memmap) and not isinstance(ram, np.memmap)
    np.testing.assert_array_equal(disk, blocks)
    np.testing.assert_array_equal(ram, blocks)


@pytest.mark.parametrize("method", ["fast", "paper"])
def test_one_unit_that_cannot_fit_is_refused_with_both_sizes(engine, method):
    engine.memory_budget = 6 * M + 100
    with untouched(engine.model), pytest.raises(MemoryBudgetExceeded) as info:
        engine.etalons(X, method=method)
    msg = str(info.value)
    assert "one" in msg and "memory_budget" in msg and "budget of" in msg, msg
    assert isinstance(info.value, MemoryError)


def test_paper_within_a_small_budget_equals_paper_in_one_go(engine):
    whole = engine.etalons(X[:2], method="paper")
    sizes = [4 * i.n_units for i in engine.layers]
    engine.memory_budget = 2 * M + 4 * (3 * max(sizes) + 3 * M)       # a few images a pass
    parts = engine.etalons(X[:2], method="paper")
    np.testing.assert_allclose(parts.W, whole.W, rtol=1e-5, atol=1e-7)
    # passes of 1 image vs 64 rows: the kernels (and their sums' order) may differ
    np.testing.assert_allclose(parts.b, whole.b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.out, whole.out, rtol=1e-5, atol=1e-6)


def test_gradcam_in_chunks_within_the_budget_equals_each_images_own(engine, monkeypatch):
    """Grad-CAM used to run every image through one forward pass and stack every map twice."""
    from cnn_widgets.engine.visualization import gradcam as gc
    x = random_images(12, seed=5)
    layer = engine.default_layer_for("gradcam")
    forward = memory.grad_costs(engine, engine.default_layer)[0]
    backward = memory.grad_costs(engine, layer)[1]
    engine.memory_budget = 12 * M + forward + backward + 4 * M        # maps (3 x 12 M) on disk
    chunks, plan = [], gc._plan
    monkeypatch.setattr(gc, "_plan", lambda *a: chunks.append(plan(*a)) or chunks[-1])
    with untouched(engine.model):
        parts = engine.gradcam(x, classes=[0, 2, 4], layer=layer)
    assert chunks == [(1, True)] and isinstance(parts.maps, np.memmap)
    engine.memory_budget = BIG
    for i in range(12):
        alone = engine.gradcam(x[i], classes=[0, 2, 4], layer=layer)
        np.testing.assert_allclose(parts.maps[i], alone.maps[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(parts.logits[i], alone.logits[0])
    engine.memory_budget = 12 * M + 100
    with pytest.raises(MemoryBudgetExceeded, match="Grad-CAM of one image"):
        engine.gradcam(x, classes=[0])


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_a_containers_limit_bounds_the_memory_available(tmp_path, version):
    """A 2 GB Binder reports the host's memory in /proc/meminfo; its cgroup knows better."""
    mb = 2 ** 20
    if version == "v2":
        (tmp_path / "memory.max").write_text(f"{2048 * mb}\n")
        (tmp_path / "memory.current").write_text(f"{1800 * mb}\n")
        (tmp_path / "memory.stat").write_text(f"anon 1\ninactive_file {300 * mb}\n")
    else:
        (tmp_path / "memory").mkdir()
        (tmp_path / "memory/memory.limit_in_bytes").write_text(f"{2048 * mb}\n")
        (tmp_path / "memory/memory.usage_in_bytes").write_text(f"{1800 * mb}\n")
        (tmp_path / "memory/memory.stat").write_text(f"total_inactive_file {300 * mb}\n")
    assert memory._cgroup_available(tmp_path) == (2048 - 1800 + 300) * mb
    (tmp_path / ("memory.max" if version == "v2" else "memory/memory.limit_in_bytes")
     ).write_text("max\n" if version == "v2" else f"{2 ** 63 - 4096}\n")
    assert memory._cgroup_available(tmp_path) is None


def test_the_default_budget_is_half_of_what_is_available(engine, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device: 3 * 10**9)
    engine.memory_budget = None
    assert engine.memory_budget == 1.5 * 10**9
    monkeypatch.undo()
    assert memory.available(torch.device("cpu")) > 0


def test_the_heap_is_trimmed_between_chunks_only(engine, monkeypatch):
    """malloc_trim gives the heap's free pages back; after the last chunk it only made the
    next call fault every page in again (LeNet's ten etalons took 1.9x as long)."""
    trims = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: trims.append(pad))
    engine.etalons(X)                                           # one chunk
    engine.gradcam(X)
    assert trims == []
    engine.memory_budget = ram_budget(engine, 6, 5, 6, 2)       # 3 backward passes
    engine.etalons(X)
    assert len(trims) == 2                                      # between them, not after
