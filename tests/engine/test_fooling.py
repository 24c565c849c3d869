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


def test_fooling_refuses_a_source_equal_to_the_target():
    e = two_digits()
    with pytest.raises(ValueError, match="must differ from the target 1"):
        fool(e, 1, source=1)
    with pytest.raises(ValueError, match="0 <= target < 2"):
        e.fool(2)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)
