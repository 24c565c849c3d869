"""One noise (issue 12, defect 7): Algorithm 1's noise category, Table 1's noise row and the
bias explanation all use core.noise.gaussian_noise, so the same seed gives the same images."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine.core.noise import channel_stats, gaussian_noise
from cnn_widgets.testing.data import labelled_engine
from cnn_widgets.testing.reference import reference_unit_values


def test_category_tree_and_table_1_see_the_same_noise():
    """Regression: the noise category used uniform [0, 1] images while Table 1 used Gaussian
    ones with the data's statistics."""
    engine, model = labelled_engine(30, model_seed=3, image_seed=4)
    noise = gaussian_noise(engine, 9, seed=5)
    tree = engine.category_tree(include_noise=True, n_noise=9, seed=5)
    np.testing.assert_allclose(tree.vectors[-1],
                               reference_unit_values(model, noise, "pool2").mean(0),
                               rtol=1e-5, atol=1e-6)
    table = engine.out_of_sample(engine.dataset.images[:3], [0, 0, 0], n_noise=9, seed=5)
    pred = model(noise).argmax(1).numpy()
    np.testing.assert_allclose(table.shares[-1], 100 * np.bincount(pred, minlength=5) / 9)
    mean, std = channel_stats(engine)
    np.testing.assert_allclose(mean, engine.dataset.images.mean((0, 2, 3)), rtol=1e-5)
    assert torch.equal(noise, gaussian_noise(engine, 9, seed=5))
    assert not torch.equal(noise, gaussian_noise(engine, 9, seed=6))


def test_noise_explanation_is_the_etalon_identity_on_table_1s_noise():
    engine, model = labelled_engine(30, model_seed=2, image_seed=1)
    ex = engine.noise_explanation(n=12, seed=3)
    noise = gaussian_noise(engine, 12, seed=3)
    np.testing.assert_allclose(ex.logits, model(noise).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ex.linear + ex.bias, ex.logits, rtol=1e-4, atol=1e-4)
    # the effective bias is Algorithm 1's b = f_p(0) with x's masks, computed independently
    paper = engine.etalons(noise, method="paper")
    np.testing.assert_allclose(ex.bias, paper.b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ex.last_bias, model.fc2.bias.detach().numpy(), rtol=1e-6)
    table = engine.out_of_sample(engine.dataset.images[:1], [0], n_noise=12, seed=3)
    np.testing.assert_allclose(ex.share, table.shares[-1])
    winners = ex.logits.argmax(1)
    np.testing.assert_array_equal(ex.bias_wins, ex.bias.argmax(1) == winners)
    np.testing.assert_array_equal(ex.last_bias_wins,
                                  int(model.fc2.bias.argmax()) == winners)
    assert "effective bias" in ex.table() and len(ex.table().splitlines()) == 5 + 2
    with pytest.raises(ValueError):
        engine.noise_explanation(n=0)
