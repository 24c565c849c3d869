"""Images and models in forms users have: channels-last and uint8 images, inputs that require
grad, float64 / bfloat16 models, calls under torch.inference_mode()."""
import numpy as np
import pytest
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine import InputShapeError, InvalidArgument, InverseSetSettings
from cnn_widgets.testing import (
    TINY_SHAPE,
    assert_model_untouched,
    model_fingerprint,
    random_images,
    tiny_lenet,
    tiny_mlp,
)
from cnn_widgets.testing.reference import cpu_engine

RGB = (3, 8, 8)


@pytest.fixture(scope="module")
def rgb():
    """(engine, images (N, 3, 8, 8) in [0, 1], labels)."""
    x, y = random_images(12, shape=RGB, seed=3), torch.arange(12) % 5
    return cpu_engine(tiny_mlp(1, shape=RGB), RGB, dataset=(x, y)), x, y


def test_channels_last_images_are_converted_with_a_warning(rgb):
    engine, x, y = rgb
    want = engine.predict(x)
    for form in (x.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1).numpy()):
        with pytest.warns(UserWarning, match=r"channels-last"):
            got = engine.predict(form)
        np.testing.assert_array_equal(got, want)
    with pytest.warns(UserWarning, match=r"channels-last"):
        np.testing.assert_allclose(engine.predict(x[1].permute(1, 2, 0)), want[1:2], rtol=1e-5,
                                   atol=1e-6)


def test_channels_last_dataset_is_converted_not_scrambled(rgb):
    engine, x, y = rgb
    with pytest.warns(UserWarning, match=r"\(H, W, C\)"):
        other = cpu_engine(engine.model, RGB, dataset=(x.permute(0, 2, 3, 1).numpy(), y))
    torch.testing.assert_close(other.dataset.images, x, rtol=0, atol=0)
    a = engine.top_images(O.logit(1), k=3)
    with pytest.warns(UserWarning, match=r"channels-last"):
        b = engine.top_images(O.logit(1), k=3, data=(x.permute(0, 2, 3, 1), y))
    np.testing.assert_array_equal(a.indices, b.indices)


def test_ambiguous_layout_is_read_as_channels_first():
    """C == H == W: (N, C, H, W) wins, no transposition."""
    shape = (4, 4, 4)
    engine = cpu_engine(tiny_mlp(2, shape=shape), shape)
    x = random_images(3, shape=shape, seed=4)
    a = engine.predict(x)
    assert not np.allclose(a, engine.predict(x.permute(0, 2, 3, 1)))   # a different input
    np.testing.assert_array_equal(a, engine.predict(x.numpy()))


@pytest.mark.parametrize("shape", [(12, 8, 3, 8), (12, 192), (12, 3, 64)])
def test_other_shapes_are_refused_not_reshaped(rgb, shape):
    engine, x, y = rgb
    with pytest.raises(InputShapeError, match=r"expected .*\(3, 8, 8\)"):
        cpu_engine(engine.model, RGB, dataset=(np.zeros(shape, np.float32), y))
    with pytest.raises(InputShapeError, match=r"expected .*\(3, 8, 8\)"):
        engine.top_images(O.logit(0), k=2, data=(np.zeros(shape, np.float32), y))


def test_uint8_images_are_scaled_to_unit_range(rgb):
    engine, x, y = rgb
    u8 = (x * 255).round().to(torch.uint8)
    np.testing.assert_allclose(engine.predict(u8), engine.predict(u8.float() / 255), rtol=0, atol=0)
    np.testing.assert_allclose(engine.predict(u8.numpy()), engine.predict(x), atol=1e-2)
    with pytest.warns(UserWarning, match="channels-last"):
        other = cpu_engine(engine.model, RGB, dataset=(u8.permute(0, 2, 3, 1).numpy(), y))
    assert float(other.dataset.images.max()) <= 1.0
    torch.testing.assert_close(other.dataset.images, u8.float() / 255, rtol=0, atol=0)


def test_one_channel_uint8_stack_as_a_dataset():
    """MNIST as it comes: (N, 28, 28)-like uint8."""
    model = tiny_lenet(0)
    x = random_images(6, seed=5)
    u8 = (x[:, 0] * 255).round().to(torch.uint8)
    engine = cpu_engine(model, TINY_SHAPE, dataset=(u8.numpy(), np.arange(6) % 5))
    torch.testing.assert_close(engine.dataset.images, u8[:, None].float() / 255)


def test_empty_dataset_is_refused():
    with pytest.raises(InvalidArgument, match="empty"):
        cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(np.zeros((0, 1, 8, 8)), np.zeros(0)))


def test_inputs_that_require_grad_are_detached():
    x, y = random_images(6, seed=6), torch.arange(6) % 5
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(x.clone().requires_grad_(True), y))
    xg = x.clone().requires_grad_(True)
    np.testing.assert_array_equal(engine.predict(xg), engine.predict(x))
    assert engine.etalons(xg[:2]).W.shape == (2, 5, *TINY_SHAPE)
    assert engine.top_images(O.logit(0), k=2, data=(xg, y)).images.shape == (2, *TINY_SHAPE)
    assert engine.gradcam(xg[:2]).maps.shape[0] == 2
    assert xg.grad is None


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_float64_and_half_models(dtype):
    model = tiny_lenet(0).to(dtype)
    before = model_fingerprint(model)
    x, y = random_images(8, seed=7), torch.arange(8) % 5
    with pytest.warns(UserWarning, match=str(dtype)):
        engine = cpu_engine(model, TINY_SHAPE, dataset=(x, y))
    reference = cpu_engine(tiny_lenet(0).to(dtype).float(), TINY_SHAPE, dataset=(x, y))
    np.testing.assert_allclose(engine.predict(x), reference.predict(x), rtol=1e-6, atol=1e-6)
    for method in ("fast", "paper"):
        np.testing.assert_allclose(engine.etalons(x[:2], method=method).W,
                                   reference.etalons(x[:2], method=method).W, atol=1e-6)
    np.testing.assert_array_equal(engine.top_images(O.logit(2), k=3).indices,
                                  reference.top_images(O.logit(2), k=3).indices)
    assert engine.maximize(O.logit(1), steps=3).images.dtype == np.float32
    assert_model_untouched(model, before)
    assert next(model.parameters()).dtype == dtype


SHORT = InverseSetSettings(inner_steps=5, max_outer=2)


def test_grad_capabilities_work_under_inference_mode():
    model = tiny_lenet(0)
    x, y = random_images(10, seed=8), torch.arange(10) % 5
    engine = cpu_engine(model, TINY_SHAPE, dataset=(x, y))
    want = {
        "maximize": engine.maximize(O.logit(1), steps=4).images,
        "gradcam": engine.gradcam(x[:2]).maps,
        "fool": engine.fool(1, steps=3, n_starts=2).end,
        "etalons": engine.etalons(x[:2]).W,
        "reconstruct": engine.reconstruct(x[0], ("conv2", 0, 1, 1), method="all").images["filter"],
        "inverse_set": engine.inverse_set(("fc2", 1), (0.0, 5.0), K=2, n=2, settings=SHORT
                                          ).images,
    }
    with torch.inference_mode():
        xi = random_images(10, seed=8)
        inf_engine = cpu_engine(model, TINY_SHAPE, dataset=(xi, y))
        got = {
            "maximize": inf_engine.maximize(O.logit(1), steps=4).images,
            "gradcam": inf_engine.gradcam(xi[:2]).maps,
            "fool": inf_engine.fool(1, steps=3, n_starts=2).end,
            "etalons": inf_engine.etalons(xi[:2]).W,
            "reconstruct": inf_engine.reconstruct(xi[0], ("conv2", 0, 1, 1),
                                                  method="all").images["filter"],
            "inverse_set": inf_engine.inverse_set(("fc2", 1), (0.0, 5.0), K=2, n=2,
                                                  settings=SHORT).images,
        }
        steps = list(inf_engine.iterate_maximize(O.logit(1), steps=4, every=2))
        assert torch.is_inference_mode_enabled()
    assert [s.step for s in steps] == [0, 2, 4]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)
