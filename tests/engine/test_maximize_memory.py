"""Gradient ascent on a network with large activations differentiates its starts in chunks
(memory: one chunk's autograd graph at a time) and gives the same images, values and traces
as one batched pass; small networks keep the single batched pass."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.visualization import maximize as mx
from cnn_widgets.engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet, untouched


def engine_and_batches():
    model = tiny_lenet(0)
    sizes = []
    # on the first layer: the engine runs the model's traced graph, not model.__call__
    model.conv1.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    x = random_images(20, TINY_SHAPE, seed=1)
    return Engine(model, TINY_SHAPE, dataset=(x, torch.arange(20) % 5), device="cpu"), sizes


REGS = [AlphaNorm(1e-3), TotalVariation(1e-2), GradientTrick(0.8, 1, 5.0), Jitter(2)]


@pytest.mark.parametrize("objective,regs", [(O.channel("conv2", 1), []),
                                            (O.logit(0) - O.logit(1), REGS)])
def test_chunked_starts_match_one_batch(objective, regs, monkeypatch):
    e, sizes = engine_and_batches()
    whole = e.maximize(objective, steps=12, n_starts=3, seed=2, regularizers=regs)
    assert max(sizes) == 3                                   # small: one batched pass
    monkeypatch.setattr(mx, "_GRAD_FLOATS", 1)               # as if each image were huge
    sizes.clear()
    with untouched(e.model):
        parts = e.maximize(objective, steps=12, n_starts=3, seed=2, regularizers=regs)
    gradient_passes = sizes[:-1]                             # the last: final scores, no grad
    assert gradient_passes and max(gradient_passes) == 1     # one image per pass
    np.testing.assert_allclose(parts.images, whole.images, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.trace, whole.trace, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.logits, whole.logits, rtol=1e-5, atol=1e-6)

