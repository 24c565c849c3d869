"""Objectives: composition, descriptions, checks against an engine, values against activations."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.core.errors import LayerNotFound, UnitOutOfRange
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet


@pytest.fixture
def engine():
    return Engine(tiny_lenet(0, inplace=False), TINY_SHAPE, device="cpu")


def test_descriptions_read_like_the_formula():
    o = O.logit(3) + 0.5 * O.channel("conv2", 4) - O.unit("fc1", 5)
    assert o.description == "logit[3] + 0.5·channel(conv2, 4) - unit(fc1, 5)"
    assert (-O.probability(1)).description == "-probability[1]"
    assert sum([O.logit(1), O.logit(2)]).description == "logit[1] + logit[2]"
    assert O.unit("conv1", (1, 2, 3)).description == "unit(conv1, 1:2:3)"
    assert (O.layer_mean("relu1") / 4).description == "0.25·mean(relu1)"


def test_values_match_the_activations(engine):
    x = random_images(6, TINY_SHAPE, seed=3)
    acts = engine.activations(x, ["conv2", "fc1", "fc2"])
    o = (O.logit(3) + 0.5 * O.channel("conv2", 4) - 2 * O.unit("conv2", (1, 2, 3))
         + O.unit("fc1", 7) + O.layer_mean("fc1") + O.probability(0))
    bound = o.bind(engine)
    outs = {k: torch.as_tensor(v) for k, v in acts.items()}
    got = bound.evaluate(outs).numpy()
    z = acts["fc2"]
    p0 = np.exp(z[:, 0]) / np.exp(z).sum(1)
    want = (z[:, 3] + 0.5 * acts["conv2"][:, 4].mean((1, 2)) - 2 * acts["conv2"][:, 1, 2, 3]
            + acts["fc1"][:, 7] + acts["fc1"].mean(1) + p0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert bound.description == o.description


def test_bind_names_what_was_expected(engine):
    with pytest.raises(LayerNotFound, match="conv1, relu1"):
        O.channel("nope", 0).bind(engine)
    with pytest.raises(UnitOutOfRange, match="0 <= class < 5"):
        O.logit(5).bind(engine)
    with pytest.raises(UnitOutOfRange, match="0 <= channel < 6"):
        O.channel("conv2", 6).bind(engine)
    with pytest.raises(UnitOutOfRange, match="0 <= c < 6"):
        O.unit("conv2", (6, 0, 0)).bind(engine)
    with pytest.raises(TypeError, match="objective"):
        O.as_objective("conv2")
    assert O.as_objective(("fc1", 3)).description == "unit(fc1, 3)"
