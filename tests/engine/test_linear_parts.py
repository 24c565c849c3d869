"""Linear parts that timm's CNNs are built from are recognised as such: a functional
BatchNorm with running statistics in eval mode (timm's ``BatchNormAct2d``), its shape check
``torch._assert(x.ndim == 4, ...)``, and upsampling (HRNet's fuse layers). Before, each made a
ReLU network "Jacobian only" (exact=False, Algorithm 1 refused). The claim is checked on the
numbers: Algorithm 1 equals the fast path and <W, x> + b reproduces the logits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_widgets.engine import NotPiecewiseLinear
from cnn_widgets.testing import TINY_CLASSES, TINY_SHAPE, random_images, untouched
from cnn_widgets.testing.reference import assert_same_map, cpu_engine


class BatchNormActNet(nn.Module):
    """conv -> shape check -> F.batch_norm with a BatchNorm module's statistics and
    parameters, as timm's BatchNormAct2d (batch statistics in train mode) -> ReLU -> upsample
    -> conv -> ReLU -> pool -> linear. ``own_parameters``: the norm's parameters are the
    model's own tensors instead (no module says they are a shift)."""

    def __init__(self, mode: str = "nearest", seed: int = 3, own_parameters: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, TINY_CLASSES)
        self.bn = nn.BatchNorm2d(4)
        with torch.no_grad():
            self.bn.weight.copy_(torch.rand(4, generator=g) + 0.5)
            self.bn.bias.copy_(torch.randn(4, generator=g) * 0.3)
            self.bn.running_mean.copy_(torch.randn(4, generator=g) * 0.3)
            self.bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        if own_parameters:
            self.shift = nn.Parameter(self.bn.bias.detach().clone())
        self.mode, self.own = mode, own_parameters

    def forward(self, x):
        x = self.conv1(x)
        torch._assert(x.ndim == 4, "expected a 4-D input")
        x = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                         self.shift if self.own else self.bn.bias, training=self.training)
        x = F.relu(F.max_pool2d(x, 2))
        x = F.interpolate(x, scale_factor=2, mode=self.mode)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_functional_batch_norm_shape_checks_and_upsampling_are_exact(mode):
    model = BatchNormActNet(mode).eval()
    x = random_images(3, TINY_SHAPE, seed=1)
    with torch.no_grad():
        logits = model(x).numpy()
    with untouched(model):
        engine = cpu_engine(model, TINY_SHAPE)
        assert engine.exactness() == (True, "ReLU/max-pool network: the affine map is exact "
                                            "near x"), engine.exactness()
        fast, paper = engine.etalons(x), engine.etalons(x, method="paper")
        assert fast.exact and paper.exact
        assert_same_map(paper.W, fast.W, "Algorithm 1 vs fast")
        np.testing.assert_allclose(paper.b, fast.b, rtol=1e-4, atol=1e-5)
        out = (fast.W * fast.x[:, None]).reshape(*fast.W.shape[:2], -1).sum(-1) + fast.b
        np.testing.assert_allclose(out, logits, rtol=1e-4, atol=1e-5)


def test_batch_statistics_and_value_comparisons_are_still_flagged():
    train = BatchNormActNet().train()
    engine = cpu_engine(train, TINY_SHAPE, eval_mode=False)
    exact, why = engine.exactness()
    assert not exact and "batch_norm" in why, why
    with pytest.raises(NotPiecewiseLinear):
        engine.etalons(random_images(1, TINY_SHAPE), method="paper")

    # a shift no BatchNorm module owns: Algorithm 1's bias-free copy would keep it
    exact, why = cpu_engine(BatchNormActNet(own_parameters=True), TINY_SHAPE).exactness()
    assert not exact and "'batch_norm'" in why, why

    class Thresholded(BatchNormActNet):
        def forward(self, x):                 # a comparison of values, not of sizes
            return super().forward(x * (x > 0.5).float())
    exact, why = cpu_engine(Thresholded(), TINY_SHAPE).exactness()
    assert not exact and "'gt'" in why, why
