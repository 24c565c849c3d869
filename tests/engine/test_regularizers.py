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
from cnn_widgets.testing.data import labelled_engine


def _alpha_loop(a, alpha, mean=None):
    """R_α by a plain loop: mean over values of |x - m|^α, m the given per-channel mean or
    each image's own per-channel mean."""
    n, c, h, w = a.shape
    out = np.zeros(n)
    for i in range(n):
        for k in range(c):
            m = mean[k] if mean is not None else sum(a[i, k, y, x] for y in range(h)
                                                     for x in range(w)) / (h * w)
            for y in range(h):
                for x in range(w):
                    out[i] += abs(a[i, k, y, x] - m) ** alpha
    return out / (c * h * w)


def test_alpha_norm_and_tv_follow_the_paper():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0)) + 0.4
    a = x.numpy().astype(np.float64)
    np.testing.assert_allclose(AlphaNorm(alpha=6, center="image").penalty(x).numpy(),
                               _alpha_loop(a, 6), rtol=1e-4)
    mean = (0.1, 0.5, -0.2)
    np.testing.assert_allclose(AlphaNorm(alpha=3, mean=mean).penalty(x).numpy(),
                               _alpha_loop(a, 3, mean), rtol=1e-4)
    tv = np.zeros(2)
    for n in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(5):
                    d = (a[n, c, i, j + 1] - a[n, c, i, j]) ** 2 + (a[n, c, i + 1, j] - a[n, c, i, j]) ** 2
                    tv[n] += d ** (1.5 / 2)
    np.testing.assert_allclose(TotalVariation(beta=1.5).penalty(x).numpy(), tv / (3 * 4 * 5),
                               rtol=1e-4)


def test_alpha_norm_centres_on_the_dataset_mean():
    """Regression (issue 12, defect 6): the default centres on the dataset's channel mean, so a
    uniformly brightened image is penalised (per-image centring could not see it)."""
    e, _ = labelled_engine(20, image_seed=3)
    reg = AlphaNorm(alpha=4).bind(e)
    data_mean = e.dataset.images.mean((0, 2, 3)).numpy()
    np.testing.assert_allclose(reg.mean, data_mean, rtol=1e-5)
    x = random_images(2, seed=4)
    np.testing.assert_allclose(reg.penalty(x).numpy(),
                               _alpha_loop(x.numpy().astype(np.float64), 4, data_mean), rtol=1e-4)
    brighter = x + 0.5
    assert (reg.penalty(brighter) > reg.penalty(x)).all()
    per_image = AlphaNorm(alpha=4, center="image")
    np.testing.assert_allclose(per_image.penalty(brighter).numpy(), per_image.penalty(x).numpy(),
                               rtol=1e-4)
    with pytest.raises(ValueError, match="dataset's channel mean"):
        AlphaNorm().penalty(x)
    with pytest.raises(ValueError, match="'dataset' or 'image'"):
        AlphaNorm(center="pixel")
    # through maximize: the bound (dataset) penalty is what the trace records
    r = e.maximize(O.logit(1), steps=2, start=x, regularizers=[AlphaNorm(1.0, alpha=4)])
    np.testing.assert_allclose(r.penalty_trace[0], reg.penalty(x).numpy(), rtol=1e-4)


@pytest.mark.parametrize("reg", [AlphaNorm(0.05, alpha=6), AlphaNorm(0.05, alpha=6, center="image"),
                                 TotalVariation(0.5, beta=2),
                                 TotalVariation(0.5, beta=1)])
def test_each_regulariser_lowers_its_own_term(reg):
    e = Engine(tiny_lenet(0), TINY_SHAPE, device="cpu")
    x0 = random_images(2, TINY_SHAPE, seed=5)
    free = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05)
    held = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05, regularizers=[reg])
    off = e.maximize(O.logit(2), steps=40, start=x0, lr=0.05,
                     regularizers=[type(reg)(**{**reg.__dict__, "enabled": False})])
    bound = reg.bind(e) if hasattr(reg, "bind") else reg
    pen = lambda r: bound.penalty(torch.as_tensor(r.images)).numpy()   # noqa: E731
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
