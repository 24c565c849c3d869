"""Pixel fooling flips the prediction of the default two-class model with small changes."""
import numpy as np
import pytest

from cnn_widgets.engine.visualization.fooling import fool
from cnn_widgets.testing import untouched
from cnn_widgets.zoo import two_digits


def test_fooling_flips_the_two_class_model():
    e = two_digits()
    rows = np.flatnonzero(e.dataset.labels.numpy() == 0)[:4]
    with untouched(e.model):
        f = e.fool(1, steps=100, every=10)           # default: images of the other class
    np.testing.assert_array_equal(f.start, e.dataset.images[rows].numpy())
    assert (f.predictions_start == 0).all() and f.flipped.all()
    np.testing.assert_allclose(f.probabilities[0], _softmax(e.predict(f.start)), rtol=1e-4)
    np.testing.assert_allclose(f.probabilities[-1], _softmax(e.predict(f.end)), rtol=1e-4)
    assert list(f.steps) == list(range(0, 101, 10)) and f.classes == (0, 1)
    np.testing.assert_allclose(f.diff ** 2, ((f.end - f.start) ** 2).sum(1), rtol=1e-5)
    assert np.abs(f.end - f.start).max() < 1.0            # the digit is still a digit
    assert f.cam_start.shape == f.cam_end.shape == (4, 2, 28, 28)


def test_until_flip_ends_each_image_at_its_first_flip():
    e = two_digits()
    rows = np.flatnonzero(e.dataset.labels.numpy() == 0)[:4]
    full = e.fool(1, indices=rows, steps=150, lr=0.01)
    with untouched(e.model):
        f = e.fool(1, indices=rows, steps=150, lr=0.01, until_flip=True)
    assert (f.flip_step > 0).all() and f.flipped.all()
    np.testing.assert_array_equal(f.flip_step, full.flip_step)
    # the run stops once the last image has flipped
    assert f.steps[-1] == f.flip_step.max() and len(f.probabilities) == f.flip_step.max() + 1
    for i, k in enumerate(f.flip_step):
        at = e.fool(1, indices=rows, steps=int(k), lr=0.01).end[i]   # the image after k updates
        np.testing.assert_allclose(f.end[i], at, atol=1e-6)
        assert full.probabilities[k - 1, i].argmax() == 0 and full.probabilities[k, i].argmax() == 1
    np.testing.assert_allclose(f.diff ** 2, ((f.end - f.start) ** 2).sum(1), rtol=1e-5)
    # an image that never flips keeps its last image and -1
    never = e.fool(1, indices=rows, steps=2, lr=1e-4, until_flip=True)
    assert (never.flip_step == -1).all()
    np.testing.assert_array_equal(never.end, e.fool(1, indices=rows, steps=2, lr=1e-4).end)


def test_fooling_refuses_a_source_equal_to_the_target():
    e = two_digits()
    with pytest.raises(ValueError, match="must differ from the target 1"):
        fool(e, 1, source=1)
    with pytest.raises(ValueError, match="0 <= target < 2"):
        e.fool(2)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)
