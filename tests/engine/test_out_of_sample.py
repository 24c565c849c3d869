"""Out-of-sample table: shares are the predicted classes counted by hand."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets.engine.visualization.out_of_sample import out_of_sample
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet


def test_shares_count_the_predictions():
    x = random_images(60, TINY_SHAPE, seed=8)
    e = Engine(tiny_lenet(3), TINY_SHAPE, dataset=(x, torch.zeros(60, dtype=torch.long)),
               device="cpu")
    imgs, labels = random_images(25, TINY_SHAPE, seed=9), np.arange(25) % 3 + 5
    r = e.out_of_sample(imgs, labels, names={5: "five", 6: "six", 7: "seven"}, n_noise=40)
    pred = e.predict(imgs).argmax(1)
    for row, k in enumerate([5, 6, 7]):
        want = np.bincount(pred[labels == k], minlength=5) / (labels == k).sum() * 100
        np.testing.assert_allclose(r.shares[row], want)
    assert r.rows == ("five", "six", "seven", "random noise")
    assert list(r.counts) == [9, 8, 8, 40]
    np.testing.assert_allclose(r.shares.sum(1), 100.0)
    assert "random noise" in r.table()
    with pytest.raises(ValueError, match="25 images but 3 labels"):
        out_of_sample(e, imgs, labels[:3])
