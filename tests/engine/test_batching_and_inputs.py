"""Chunking never changes results; every documented input form gives the same answer."""
import numpy as np
import pytest
import torch

from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, tiny_mlp
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


@pytest.fixture(scope="module")
def engines():
    model = tiny_lenet(3, batchnorm=True).eval()
    small = cpu_engine(model, TINY_SHAPE, batch_size=3, mean=0.2, std=0.6)
    big = cpu_engine(model, TINY_SHAPE, batch_size=256, mean=0.2, std=0.6)
    return model, small, big


def test_predict_and_activations_same_for_any_batch_size(engines):
    model, small, big = engines
    x = random_images(10, seed=1)
    np.testing.assert_allclose(small.predict(x), big.predict(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(small.predict(x),
                               reference_unit_values(model, x, "", mean=0.2, std=0.6),
                               rtol=1e-5, atol=1e-6)
    a, b = small.activations(x, ["pool1", "fc1"]), big.activations(x, ["pool1", "fc1"])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(small.activation_pattern(x), big.activation_pattern(x))


@pytest.mark.parametrize("layer,units", [(None, None), ("conv2", [(0, 0, 0), (5, 3, 3), (2, 1, 2),
                                                                  (4, 2, 0)])])
def test_etalons_same_for_any_batch_size(engines, layer, units):
    _, small, big = engines
    x = random_images(10, seed=2)
    a = small.etalons(x, layer=layer, units=units)
    b = big.etalons(x, layer=layer, units=units)
    assert np.abs(a.W).max() > 0
    np.testing.assert_allclose(a.W, b.W, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.b, b.b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.out, b.out, rtol=1e-6, atol=1e-6)


def test_paper_same_for_any_batch_size(engines):
    _, small, big = engines
    x = random_images(10, seed=3)
    a = small.etalons(x, units=[0, 3], method="paper")
    b = big.etalons(x, units=[0, 3], method="paper")
    np.testing.assert_allclose(a.W, b.W, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.b, b.b, rtol=1e-6, atol=1e-6)


def test_regions_same_for_any_batch_size(engines):
    _, small, big = engines
    x = random_images(10, seed=4)
    labels = np.arange(10) % 2
    assert small.count_regions((x, labels)) == big.count_regions((x, labels))


def _forms(img):
    """img: (8, 8) numpy float64. Every form of one or several 1-channel images."""
    t = torch.as_tensor(img, dtype=torch.float32)
    return {
        "HW-numpy": (img, 1), "HW-torch": (t, 1),
        "CHW-numpy": (img[None], 1), "CHW-torch": (t[None], 1),
        "NCHW-numpy": (np.stack([img, img])[:, None], 2), "NCHW-torch": (t[None, None], 1),
        "float64-torch": (torch.as_tensor(img)[None, None], 1),
        "list": (img.tolist(), 1),
    }


def test_input_forms_give_the_same_answer():
    model = tiny_lenet(5)
    engine = cpu_engine(model, TINY_SHAPE)
    img = random_images(1, seed=6)[0, 0].double().numpy()
    want = reference_unit_values(model, img[None, None], "")[0]
    W_want = engine.etalons(img[None, None]).W[0]
    for name, (x, n) in _forms(img).items():
        got = engine.predict(x)
        assert got.shape == (n, 5), name
        np.testing.assert_allclose(got, np.repeat(want[None], n, 0), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        et = engine.etalons(x)
        assert et.W.shape == (n, 5, *TINY_SHAPE), name
        np.testing.assert_allclose(et.W[0], W_want, rtol=1e-6, atol=1e-7, err_msg=name)
        assert engine.activation_pattern(x).shape[0] == n, name


def test_three_channel_forms():
    model = tiny_mlp(6, shape=(3, 8, 8))
    engine = cpu_engine(model, (3, 8, 8), mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.4])
    x = random_images(2, shape=(3, 8, 8), seed=7)
    want = reference_unit_values(model, x, "",
                                 mean=torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1),
                                 std=torch.tensor([0.2, 0.3, 0.4]).view(3, 1, 1))
    np.testing.assert_allclose(engine.predict(x.numpy()), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(engine.predict(x[1]), want[1:], rtol=1e-5, atol=1e-6)
