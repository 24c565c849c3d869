"""Errors say what was expected: assertions on the message, not just the type."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine import (
    CnnWidgetsError,
    Engine,
    InputShapeError,
    LayerNotFound,
    ModelOutputError,
    UnitOutOfRange,
)
from cnn_widgets.testing import (
    TINY_LENET_LAYERS,
    TINY_SHAPE,
    ImageOutputNet,
    TupleOutputNet,
    random_images,
    tiny_lenet,
    tiny_mlp,
)
from cnn_widgets.testing.reference import cpu_engine


@pytest.fixture(scope="module")
def engine():
    return cpu_engine(tiny_lenet(0), TINY_SHAPE)


def test_wrong_channel_count_names_both_counts(engine):
    with pytest.raises(InputShapeError) as info:
        engine.etalons(np.zeros((2, 3, 8, 8), np.float32))
    msg = str(info.value)
    assert "takes 1 channel" in msg and "has 3" in msg, msg


def test_one_channel_image_for_a_three_channel_model():
    engine = cpu_engine(tiny_mlp(0, shape=(3, 8, 8)), (3, 8, 8))
    with pytest.raises(InputShapeError) as info:
        engine.predict(np.zeros((1, 8, 8)))
    msg = str(info.value)
    assert "(3, 8, 8)" in msg and "(1, 8, 8)" in msg, msg


def test_rgb_image_for_a_one_channel_model_names_the_channels(engine):
    """(3, H, W) for a 1-channel model is refused, not guessed to be 3 images."""
    with pytest.raises(InputShapeError) as info:
        engine.predict(np.zeros((3, 8, 8)))
    msg = str(info.value)
    assert "1 channel(s)" in msg and "has 3" in msg and "x[:, None]" in msg, msg


@pytest.mark.parametrize("shape", [(1, 9, 9), (8,), (2, 1, 8, 7), (1, 1, 1, 8, 8)])
def test_wrong_size_names_expected_and_got(engine, shape):
    with pytest.raises(InputShapeError) as info:
        engine.predict(np.zeros(shape))
    msg = str(info.value)
    assert "(1, 8, 8)" in msg and str(shape) in msg, msg


def test_empty_batch(engine):
    with pytest.raises(InputShapeError, match="empty"):
        engine.predict(np.zeros((0, 1, 8, 8)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input(engine, bad):
    x = random_images(2)
    x[1, 0, 2, 5] = bad
    with pytest.raises(InputShapeError) as info:
        engine.etalons(x)
    msg = str(info.value)
    assert "NaN/inf" in msg and "(1, 0, 2, 5)" in msg and "1 NaN" in msg, msg


def test_unknown_layer_lists_valid_names_in_order(engine):
    with pytest.raises(LayerNotFound) as info:
        engine.etalons(random_images(1), layer="conv9")
    msg = str(info.value)
    assert "conv9" in msg
    assert ", ".join(name for name, _, _ in TINY_LENET_LAYERS) in msg, msg
    assert not msg.startswith('"'), "KeyError-style quoting"
    assert isinstance(info.value, KeyError) and isinstance(info.value, CnnWidgetsError)


def test_flat_unit_out_of_range(engine):
    with pytest.raises(UnitOutOfRange) as info:
        engine.etalons(random_images(1), units=[5])
    msg = str(info.value)
    assert "0 <= unit < 5" in msg and "fc2" in msg, msg
    with pytest.raises(UnitOutOfRange):
        engine.etalons(random_images(1), units=-1)


@pytest.mark.parametrize("unit", [(6, 0, 0), (0, 4, 0), (0, 0, -1), (0, 0)])
@pytest.mark.parametrize("listed", [True, False], ids=["in a list", "bare tuple"])
def test_tuple_unit_out_of_range_names_the_ranges(engine, unit, listed):
    """A tuple of ints is one coordinate, bare or in a list: (0, 0) on a (c, y, x) layer is
    a coordinate with a missing axis, never two flat indices."""
    with pytest.raises(UnitOutOfRange) as info:
        engine.etalons(random_images(1), layer="conv2", units=[unit] if listed else unit)
    msg = str(info.value)
    assert "0 <= c < 6, 0 <= y < 4, 0 <= x < 4" in msg and "(6, 4, 4)" in msg, msg


def test_units_empty_or_too_many_by_default():
    engine = cpu_engine(tiny_mlp(0, shape=(1, 40, 40)), (1, 40, 40))
    with pytest.raises(UnitOutOfRange, match="empty"):
        engine.etalons(np.zeros((40, 40)), layer="fc1", units=[])
    with pytest.raises(UnitOutOfRange) as info:
        engine.etalons(np.zeros((40, 40)), layer="flatten")
    assert "1600 units" in str(info.value) and "units=[" in str(info.value)


def test_bad_method_lists_the_methods(engine):
    with pytest.raises(ValueError) as info:
        engine.etalons(random_images(1), method="exact")
    msg = str(info.value)
    assert "'exact'" in msg and "fast" in msg and "paper" in msg, msg


@pytest.mark.parametrize("model,needle", [(ImageOutputNet(), "(1, 2, 8, 8)"),
                                          (TupleOutputNet(), "tuple")])
def test_model_output_must_be_two_dimensional(model, needle):
    with pytest.raises(ModelOutputError) as info:
        cpu_engine(model, TINY_SHAPE)
    msg = str(info.value)
    assert "2-D" in msg and needle in msg, msg


def test_constructor_arguments():
    model = tiny_lenet(0)
    with pytest.raises(TypeError, match="nn.Module"):
        Engine(lambda x: x, TINY_SHAPE, device="cpu")
    with pytest.raises(InputShapeError, match=r"\(C, H, W\)"):
        cpu_engine(model, (8, 8))
    with pytest.raises(InputShapeError, match="1 or 1 values"):
        cpu_engine(model, TINY_SHAPE, mean=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="positive"):
        cpu_engine(model, TINY_SHAPE, std=0.0)
    with pytest.raises(ValueError, match="5 outputs"):
        cpu_engine(model, TINY_SHAPE, class_names=["a", "b"])


def test_paper_input_validation_matches_fast(engine):
    """Both methods validate before touching the model."""
    for method in ("fast", "paper"):
        with pytest.raises(InputShapeError):
            engine.etalons(torch.zeros(1, 2, 8, 8), method=method)
