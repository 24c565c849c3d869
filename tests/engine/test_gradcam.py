"""Grad-CAM against the formula computed by hand on a split copy of the model."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_widgets import Engine
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.engine.visualization.gradcam import gradcam
from cnn_widgets.testing import TINY_SHAPE, as_user_model, random_images, tiny_lenet, untouched


def test_gradcam_is_the_formula_and_leaves_the_model():
    model = tiny_lenet(2)                          # in-place relu1: must not corrupt A
    e = Engine(model, TINY_SHAPE, device="cpu")
    x = random_images(3, TINY_SHAPE, seed=4)
    with untouched(model):
        got = gradcam(e, x, classes=[1, 3], layer="conv2")
    ref = copy.deepcopy(model).eval()
    head, tail = ref[:4], ref[4:]                  # conv1..conv2 | relu2..fc2
    for j, c in enumerate([1, 3]):
        A = head(x).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(tail(A)[:, c].sum(), [A])
        cam = F.relu((g.mean((2, 3), keepdim=True) * A).sum(1, keepdim=True))
        want = F.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
        np.testing.assert_allclose(got.maps[:, j], want.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert got.layer == "conv2" and got.classes == (1, 3)
    norm = got.normalized()
    assert norm.max() <= 1.0 and (norm >= 0).all()


def test_gradcam_defaults_and_errors():
    e = Engine(tiny_lenet(0), TINY_SHAPE, device="cpu")
    r = e.gradcam(random_images(2, TINY_SHAPE))
    assert r.layer == "pool2" and r.classes == (-1,) and r.maps.shape == (2, 1, 8, 8)
    with pytest.raises(Exception, match=r"\(C, h, w\)"):
        gradcam(e, random_images(1, TINY_SHAPE), layer="fc1")
    with pytest.raises(ValueError, match="0 <= class < 5"):
        gradcam(e, random_images(1, TINY_SHAPE), classes=[7])
    user = as_user_model(tiny_lenet(0), frozen=["conv1"])
    stopped = Engine(user, TINY_SHAPE, device="cpu")
    with untouched(user), pytest.raises(Cancelled):
        stopped.gradcam(random_images(2, TINY_SHAPE), classes=[1, 2],
                        control=Control(should_stop=lambda: True))
