"""Regularisers: the formulas of Sec. 2.4, and each one lowers its own term."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.visualization.regularizers import (
    AlphaNorm,
    GradientTrick,
    TotalVariation,
    gaussian_blur,
    rotate,
)
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet


def test_alpha_norm_and_tv_follow_the_paper():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    a = x.numpy().astype(np.float64)
    centred = a - a.mean(axis=(2, 3), keepdims=True)
    want = (np.abs(centred) ** 6).reshape(2, -1).mean(1)
    np.testing.assert_allclose(AlphaNorm(alpha=6).penalty(x).numpy(), want, rtol=1e-4)
    tv = np.zeros(2)
    for n in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(5):
                    d = (a[n, c, i, j + 1] - a[n, c, i, j]) ** 2 + (a[n, c, i + 1, j] - a[n, c, i, j]) ** 2
                    tv[n] += d ** (1.5 / 2)
    np.testing.assert_allclose(TotalVariation(beta=1.5).penalty(x).numpy(), tv / (3 * 4 * 5),
                               rtol=1e-4)


@pytest.mark.parametrize("reg", [AlphaNorm(0.05, alpha=6), TotalVariation(0.5, beta=2),
                                 TotalVariation(0.5, beta=1)])
def test_each_regulariser_lowers_its_own_term(reg):
    e = Engine(tiny_lenet(0), TINY_SHAPE, device="cpu")
    x0 = random_images(2, TINY_SHAPE, seed=5)
    free = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05)
    held = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05, regularizers=[reg])
    off = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05,
                     regularizers=[type(reg)(**{**reg.__dict__, "enabled": False})])
    pen = lambda r: reg.penalty(torch.as_tensor(r.images)).numpy()   # noqa: E731
    assert (pen(held) < pen(free)).all()
    np.testing.assert_array_equal(off.images, free.images)          # switched off = absent


def test_gradient_trick_pieces():
    g = torch.zeros(1, 1, 9, 9)
    g[0, 0, 4, 4] = 1.0
    b = gaussian_blur(g, 1.0)
    assert b.sum().item() == pytest.approx(1.0, rel=1e-5) and b[0, 0, 4, 4] < 0.5
    np.testing.assert_allclose(rotate(g, 0.0).numpy(), g.numpy(), atol=1e-6)
    r90 = rotate(torch.arange(81.0).view(1, 1, 9, 9), 90.0)
    np.testing.assert_allclose(r90[0, 0].numpy(), np.rot90(np.arange(81.0).reshape(9, 9), 1),
                               atol=1e-3)
    shifted = GradientTrick(blur=0, translate=2, rotate=0).apply(g, torch.Generator().manual_seed(1))
    assert shifted.sum().item() == pytest.approx(1.0) and shifted.max().item() == 1.0
