"""Etalons row by row: each input's own top-k units, the rows done so far handed to
``control.partial`` as they are final, and a step (a chance to stop) after every backward pass."""
import numpy as np
import pytest

from cnn_widgets.engine import Cancelled, InvalidArgument
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.etalons import budget
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def test_top_k_gives_each_input_its_own_highest_units_highest_first():
    model = tiny_lenet(5)                       # one whose inputs do not all agree on the top 3
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(6, seed=4)
    et = engine.etalons(x, top_k=3)
    logits = reference_unit_values(model, x, "")
    assert et.units == () and len(et.row_units) == 6 and et.W.shape == (6, 3, *TINY_SHAPE)
    for i in range(6):
        want = np.argsort(-logits[i])[:3]
        assert [u[0] for u in et.units_of(i)] == want.tolist()
        np.testing.assert_allclose(et.out[i], logits[i, want], rtol=1e-5, atol=1e-6)
        alone = engine.etalons(x[i], units=list(et.units_of(i)))     # the same, asked one by one
        np.testing.assert_allclose(et.W[i], alone.W[0], rtol=1e-5, atol=1e-7)   # batch 6 vs 1
        np.testing.assert_allclose(et.b[i], alone.b[0], atol=1e-6)
    assert len({et.units_of(i) for i in range(6)}) > 1             # the rows differ here


def test_top_k_on_a_conv_layer_names_coordinates():
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    x = random_images(2, seed=5)
    et = engine.etalons(x, layer="conv2", top_k=4)
    act = engine.activations(x, ["conv2"])["conv2"]
    for i in range(2):
        values = [act[i][u] for u in et.units_of(i)]
        assert values == sorted(values, reverse=True) and values[0] == act[i].max()
        np.testing.assert_allclose(et.out[i], values, rtol=1e-6)


def test_top_k_by_the_papers_algorithm_agrees_with_the_fast_path():
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    x = random_images(3, seed=6)
    steps = []
    fast = engine.etalons(x, top_k=2)
    paper = engine.etalons(x, top_k=2, method="paper", one_hot_batch=16,
                           control=Control(report=lambda d, t, m: steps.append((d, t))))
    assert paper.row_units == fast.row_units
    assert np.abs(fast.W - paper.W).max() <= 1e-5 * np.abs(paper.W).max()
    np.testing.assert_allclose(fast.b, paper.b, atol=1e-5)
    done = [d for d, _ in steps]
    assert done == sorted(done) and steps[-1][0] == steps[-1][1]       # one progress for all rows


@pytest.mark.parametrize("kw,message", [
    ({"top_k": 2, "units": [0, 1]}, "units or top_k, not both"),
    ({"top_k": 6}, r"top_k must be an integer in 1\.\.5; got 6"),
    ({"top_k": 0}, r"top_k must be an integer in 1\.\.5; got 0"),
])
def test_bad_top_k_is_refused(kw, message):
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    with pytest.raises(InvalidArgument, match=message):
        engine.etalons(random_images(1), **kw)


def test_the_rows_done_go_to_partial_final_and_in_order():
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE, batch_size=2)
    x = random_images(5, seed=7)
    parts = []
    result = engine.etalons(x, units=[0, 2, 4], control=Control(partial=parts.append))
    assert [len(p.x) for p in parts] == [2, 4]          # after each chunk of inputs but the last
    for p in parts:
        n = len(p.x)
        assert p.units == result.units and p.layer == result.layer
        for name in ("W", "b", "out", "x"):
            np.testing.assert_array_equal(getattr(p, name), getattr(result, name)[:n])
    top = engine.etalons(x, top_k=2, control=Control(partial=parts.append))
    assert parts[-1].row_units == top.row_units[:4]


def test_a_step_after_every_backward_pass_of_at_most_a_batch():
    """Stop acts between passes of at most ``batch_size`` (input, unit) pairs."""
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE, batch_size=4)
    x = random_images(6, seed=8)
    done = []
    engine.etalons(x, control=Control(report=lambda d, t, m: done.append(d)))
    assert done[-1] == 6 * 5 and np.diff([0] + done).max() <= 4
    asked = []

    def stop_after_first(d, t, m):
        asked.append(d)
    with pytest.raises(Cancelled):
        engine.etalons(x, control=Control(lambda: bool(asked), stop_after_first))
    assert len(asked) == 1


def test_a_large_model_goes_one_image_and_one_unit_per_pass():
    """Issue 17: a ResNet-50 at 224 px (~270 MB of layer outputs kept per image, ~180 MB per
    backward row) ran 4 rows x 5 units as one pass: no row before all were done, no Stop check
    for ~16 forward+backward passes. A pass goes through at most STEP_BYTES now; a small
    model's whole grid still fits one."""
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    mb = 2 ** 20
    big = 1 << 40
    assert budget.fast_plan(engine, 10, 5, engine.default_layer, big, big) == (10, 5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(budget, "fast_costs", lambda e, layer: (271 * mb, 182 * mb))
        assert budget.fast_plan(engine, 4, 5, engine.default_layer, big, big) == (1, 1)


def test_rows_one_by_one_when_a_row_fills_a_step(monkeypatch):
    """With a step of one image and one unit, each row is a partial of its own, a step comes
    after each backward pass, and the numbers are those of one pass."""
    engine = cpu_engine(tiny_lenet(3), TINY_SHAPE)
    x = random_images(4, seed=9)
    whole = engine.etalons(x, top_k=3)
    monkeypatch.setattr(budget, "STEP_BYTES", sum(budget.fast_costs(engine, engine.default_layer)))
    parts, done = [], []
    got = engine.etalons(x, top_k=3, control=Control(partial=parts.append,
                                                     report=lambda d, t, m: done.append(d)))
    assert [len(p.x) for p in parts] == [1, 2, 3]
    assert [p.row_units for p in parts] == [whole.row_units[:k] for k in (1, 2, 3)]
    assert np.diff([0] + done).tolist() == [1] * 12
    assert got.row_units == whole.row_units
    np.testing.assert_allclose(got.W, whole.W, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.b, whole.b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.out, whole.out, rtol=1e-6)
