"""The same agreement on a GPU, when there is one (skipped otherwise)."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine import Engine
from cnn_widgets.testing import (
    TINY_SHAPE,
    as_user_model,
    assert_model_untouched,
    model_fingerprint,
    random_images,
    tiny_lenet,
)
from cnn_widgets.testing.reference import assert_same_map, cpu_engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(autouse=True)
def _no_tf32():
    """TF32 convolutions/matmuls (on by default for cuDNN) round to ~1e-3: compare in fp32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("layer,units", [(None, None), ("conv2", [(0, 1, 1), (5, 3, 2)])])
def test_fast_equals_paper_on_cuda(layer, units):
    model = tiny_lenet(1, batchnorm=True).cuda().eval()
    engine = Engine(model, TINY_SHAPE, device="cuda", mean=0.1307, std=0.3081)
    x = random_images(3, seed=2)
    fast = engine.etalons(x, layer=layer, units=units, method="fast")
    paper = engine.etalons(x, layer=layer, units=units, method="paper")
    assert_same_map(fast.W, paper.W, "W on cuda")
    np.testing.assert_allclose(fast.b, paper.b, rtol=1e-4, atol=1e-5)


def test_cpu_model_on_cuda_engine_is_copied_and_untouched():
    model = as_user_model(tiny_lenet(2), frozen=("conv1",))
    before = model_fingerprint(model)
    engine = Engine(model, TINY_SHAPE, device="cuda")
    assert engine.model is not model
    x = random_images(2, seed=3)
    gpu = engine.etalons(x)
    cpu = cpu_engine(model, TINY_SHAPE).etalons(x)
    assert_same_map(gpu.W, cpu.W, "cuda vs cpu", rel=1e-4)
    assert_model_untouched(model, before)


def test_cuda_model_with_default_device_is_used_in_place():
    """device=None means "cuda" (no index); a model on cuda:0 must not be copied for that."""
    model = tiny_lenet(4).cuda()
    before = model_fingerprint(model)
    engine = Engine(model, TINY_SHAPE)
    assert engine.model is model
    engine.etalons(random_images(1), method="paper")
    assert_model_untouched(model, before)
