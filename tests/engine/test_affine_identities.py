"""The etalon identities, checked against forward passes that do not go through the engine.

- Algorithm 1 builds W from coordinate images and b from the zero image; nothing forces
  <W, x> + b to equal f(x) unless the recorded masks and pool choices are replayed correctly.
- The contribution map W * x sums to out - b.
- Inside x's linear region (same activation pattern) f is exactly the affine map; outside it
  is not, which shows the check below can fail.
"""
import numpy as np
import pytest
import torch

from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import NORMALISATIONS, cpu_engine, max_abs, reference_unit_values

LAYERS = [
    pytest.param(None, None, "", id="logits"),
    pytest.param("fc1", [1, 8, 15], "fc1", id="hidden-linear"),
    pytest.param("conv2", [(0, 0, 0), (3, 2, 1), (5, 3, 3)], "conv2", id="conv2-cyx"),
    pytest.param("pool2", [(1, 0, 1), (4, 1, 1)], "pool2", id="pool2-cyx"),
]


def _affine(et, x):
    """<W, x> + b in float64, (N, P)."""
    x = np.asarray(x, np.float64)
    W = et.W.astype(np.float64)
    return (W * x[:, None]).reshape(W.shape[0], W.shape[1], -1).sum(-1) + et.b


def _flat_units(engine, layer, units):
    idx = engine.flat_index(engine.layer(layer).name, units).cpu().numpy()
    return idx


@pytest.mark.parametrize("norm", list(NORMALISATIONS), ids=list(NORMALISATIONS))
@pytest.mark.parametrize("layer,units,ref_layer", LAYERS)
def test_paper_affine_map_reproduces_forward(layer, units, ref_layer, norm):
    mean, std = NORMALISATIONS[norm]
    model = tiny_lenet(7)
    x = random_images(3, seed=11)
    engine = cpu_engine(model, TINY_SHAPE, mean=mean, std=std)
    et = engine.etalons(x, layer=layer, units=units, method="paper")
    ref = reference_unit_values(model, x, ref_layer, mean=mean, std=std)
    ref = ref[:, _flat_units(engine, layer, et.units)]
    assert max_abs(ref) > 0
    scale = max(max_abs(ref), max_abs(et.W) * float(np.abs(x.numpy()).sum(axis=(1, 2, 3)).max()))
    got = _affine(et, x.numpy())
    assert max_abs(got - ref) <= 1e-5 * scale, (got, ref)
    # The contribution map (the "votes" the widgets draw) sums to out - b.
    votes = et.contributions.reshape(len(x), len(et.units), -1).sum(-1)
    assert max_abs(votes - (ref - et.b)) <= 1e-5 * scale
    assert et.contributions.shape == (3, len(et.units), *TINY_SHAPE)


def test_fast_contributions_sum_to_out_minus_b():
    engine = cpu_engine(tiny_lenet(8), TINY_SHAPE, mean=0.4, std=0.3)
    x = random_images(2, seed=12)
    et = engine.etalons(x, method="fast")
    ref = reference_unit_values(tiny_lenet(8), x, "", mean=0.4, std=0.3)
    np.testing.assert_allclose(et.out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(et.contributions.reshape(2, 5, -1).sum(-1) + et.b, ref,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(et.linear_part, et.contributions.reshape(2, 5, -1).sum(-1),
                               rtol=1e-6, atol=1e-6)


def _direction(seed):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn((1, *TINY_SHAPE), generator=g)
    return d / d.abs().max()


@pytest.mark.parametrize("method", ["fast", "paper"])
@pytest.mark.parametrize("norm", list(NORMALISATIONS), ids=list(NORMALISATIONS))
def test_affine_map_is_exact_inside_the_region_and_only_there(method, norm):
    mean, std = NORMALISATIONS[norm]
    model = tiny_lenet(9)
    engine = cpu_engine(model, TINY_SHAPE, mean=mean, std=std)
    x = random_images(1, seed=13)
    et = engine.etalons(x, method=method)
    pattern = engine.activation_pattern(x)
    d = _direction(14)

    # small step: shrink until the activation pattern (every ReLU state and pool choice) holds
    for eps in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4):
        near = x + eps * d
        if np.array_equal(engine.activation_pattern(near), pattern):
            break
    else:
        pytest.fail("no step down to 1e-4 keeps the activation pattern")
    f_near = reference_unit_values(model, near, "", mean=mean, std=std)
    scale = max_abs(f_near)
    assert max_abs(_affine(et, near.numpy()) - f_near) <= 1e-5 * scale
    # same region, same etalons
    et_near = engine.etalons(near, method="fast")
    assert max_abs(et_near.W - et.W) <= 1e-5 * max_abs(et.W)

    # large step: the pattern changes and the affine map of x no longer predicts f
    far = x + 2.0 * d
    assert not np.array_equal(engine.activation_pattern(far), pattern)
    f_far = reference_unit_values(model, far, "", mean=mean, std=std)
    assert max_abs(_affine(et, far.numpy()) - f_far) > 1e-2 * max_abs(f_far), \
        "a different region should have a measurably different affine map"


def test_hidden_conv_unit_is_affine_in_its_region():
    """Same check for a conv unit behind an in-place ReLU and a max-pool."""
    model = tiny_lenet(10)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(1, seed=15)
    unit = (2, 1, 2)
    et = engine.etalons(x, layer="conv2", units=[unit])
    pattern = engine.activation_pattern(x)
    d = _direction(16)
    for eps in (3e-2, 1e-2, 3e-3, 1e-3, 3e-4):
        near = x + eps * d
        if np.array_equal(engine.activation_pattern(near), pattern):
            break
    else:
        pytest.fail("no small step keeps the activation pattern")
    flat = _flat_units(engine, "conv2", [unit])
    f_near = reference_unit_values(model, near, "conv2")[:, flat]
    assert max_abs(_affine(et, near.numpy()) - f_near) <= 1e-5 * max(max_abs(f_near), 1e-3)
