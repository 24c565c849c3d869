"""Backward reconstructions: the exact filter is the autograd input gradient; deconvnet and
deconvnet-with-masks agree with Captum's independent Deconvolution and GuidedBackprop; every
reconstruction is zero outside the receptive field; the model is left untouched."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_widgets.engine import NotAChain
from cnn_widgets.engine.core.errors import InputShapeError, NotPiecewiseLinear, UnitOutOfRange
from cnn_widgets.engine.probing.reconstruct import METHODS, _random_weights
from cnn_widgets.testing import no_leftover_hooks, random_images, smooth_conv_net, tiny_lenet, untouched
from cnn_widgets.testing.reference import autograd_gradient, cpu_engine

MEAN, STD = 0.3, 0.7
UNITS = [("conv1", 1, 2, 5), ("relu1", 3, 7, 0), ("pool1", 2, 1, 1), ("conv2", 4, 3, 2),
         ("relu2", 5, 0, 3), ("fc1", 7), ("fc2", 2)]


def engine_and_image(seed=0, **kw):
    engine = cpu_engine(tiny_lenet(seed, **kw), (1, 8, 8), mean=MEAN, std=STD)
    return engine, random_images(1, seed=seed + 1)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filter_is_the_input_gradient_of_the_unit(seed):
    engine, x = engine_and_image(seed)
    nonzero = 0
    for layer, *coords in UNITS:
        r = engine.reconstruct(x, (layer, *coords), method="filter")
        g = autograd_gradient(engine, x, layer, tuple(coords))
        np.testing.assert_allclose(r.image, g, rtol=1e-5, atol=1e-6 * max(np.abs(g).max(), 1e-6))
        nonzero += bool(np.abs(g).max() > 0)
        assert r.exact
    assert nonzero >= 4                      # not all units dead: the check has teeth


def test_filter_through_a_smooth_activation_is_the_jacobian_flagged_not_exact():
    engine = cpu_engine(smooth_conv_net("tanh"), (1, 8, 8))
    x = random_images(1, seed=4)[0]
    r = engine.reconstruct(x, ("fc1", 3), method="filter")
    np.testing.assert_allclose(r.image, autograd_gradient(engine, x, "fc1", (3,)), rtol=1e-5,
                               atol=1e-7)
    assert not r.exact and "Tanh" in r.reason
    with pytest.raises(NotPiecewiseLinear, match="Tanh 'act'.*method='filter'"):
        engine.reconstruct(x, ("fc1", 3), method="deconvnet")


@pytest.mark.parametrize("method,captum_name", [("deconvnet", "Deconvolution"),
                                                 ("deconvnet_masks", "GuidedBackprop")])
def test_deconvnets_agree_with_captum(method, captum_name):
    """Captum overrides the ReLU backward with hooks: Deconvolution passes R(g) (eq. 4-5),
    GuidedBackprop r ⊙ R(g) (eq. 6-7). Units at the logits, with normalisation inside."""
    captum = pytest.importorskip("captum.attr")
    engine, x = engine_and_image(0, inplace=False)
    model = engine.model

    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, z):
            return self.net((z - MEAN) / STD)
    algo = getattr(captum, captum_name)(Normalised().eval())
    checked = 0
    for k in range(5):
        ours = engine.reconstruct(x, ("fc2", k), method=method).image
        theirs = algo.attribute(x[None].clone().requires_grad_(True), target=k)[0].detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * np.abs(theirs).max())
        checked += np.abs(theirs).max() > 0
    assert checked == 5
    filt = engine.reconstruct(x, ("fc2", 0), method="filter").image
    assert np.abs(filt - engine.reconstruct(x, ("fc2", 0), method=method).image).max() > 1e-4


@pytest.mark.parametrize("seed", [0, 3])
def test_every_reconstruction_is_zero_outside_the_receptive_field(seed):
    engine, x = engine_and_image(seed)
    seen = {m: 0 for m in METHODS}
    for layer, c, y, xx in [u for u in UNITS if len(u) == 4]:
        r = engine.reconstruct(x, (layer, c, y, xx), method="all")
        outside = np.ones(x.shape[1:], bool)
        outside[r.field.slices] = False
        assert outside.any(), layer
        for m, img in r.images.items():
            assert np.abs(img[:, outside]).max() == 0.0, (layer, m)
            seen[m] += np.abs(img).max() > 0
            assert r.crop(m).shape == (1, r.field.height, r.field.width)
    assert all(v >= 2 for v in seen.values()), seen


def test_all_methods_share_one_call_and_match_single_calls():
    engine, x = engine_and_image(1)
    unit = ("relu2", 5, 1, 2)
    both = engine.reconstruct(x, unit, method="all", seed=4)
    for m in METHODS:
        alone = engine.reconstruct(x, unit, method=m, seed=4)
        np.testing.assert_allclose(alone.image, both.images[m], rtol=1e-6, atol=1e-7)
    assert both.activation == pytest.approx(float(engine.activations(x, ["relu2"])["relu2"][0, 5, 1, 2]))


def test_random_weights_are_seeded_and_match_the_learned_statistics():
    engine, x = engine_and_image(2)
    unit = ("relu2", 1, 1, 1)
    a = engine.reconstruct(x, unit, method="random_masks", seed=0).image
    b = engine.reconstruct(x, unit, method="random_masks", seed=0).image
    c = engine.reconstruct(x, unit, method="random_masks", seed=1).image
    masks = engine.reconstruct(x, unit, method="deconvnet_masks").image
    assert np.array_equal(a, b) and not np.allclose(a, c) and not np.allclose(a, masks)
    big = cpu_engine(nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(), nn.Flatten(),
                                   nn.Linear(64 * 12 * 12, 2)), (3, 16, 16))
    with big.borrow():
        w = _random_weights(big, 7)["0"]
    learned = big.model[0].weight.detach()
    assert w.shape == learned.shape and not torch.equal(w, learned)
    assert abs(float(w.mean() - learned.mean())) < 0.05 * float(learned.std())
    assert float(w.std()) == pytest.approx(float(learned.std()), rel=0.05)


def test_model_untouched_and_no_hooks_left_even_after_errors():
    engine, x = engine_and_image(0)
    with untouched(engine.model):
        engine.reconstruct(x, ("conv2", 1, 1, 1), method="all")
        with pytest.raises(UnitOutOfRange):
            engine.reconstruct(x, ("conv2", 9, 1, 1))
        with pytest.raises(InputShapeError, match="one image"):
            engine.reconstruct(random_images(2), ("conv2", 1, 1, 1))
        with pytest.raises(ValueError, match="method must be one of"):
            engine.reconstruct(x, ("conv2", 1, 1, 1), method="guided")
    no_leftover_hooks(engine.model)


def test_leaky_relu_is_refused_by_the_deconvnets_but_not_by_filter():
    engine = cpu_engine(tiny_lenet(0, leaky=True), (1, 8, 8))
    x = random_images(1)[0]
    with pytest.raises(NotPiecewiseLinear, match="LeakyReLU 'relu2'"):
        engine.reconstruct(x, ("fc1", 0), method="deconvnet_masks")
    r = engine.reconstruct(x, ("fc1", 0), method="filter")
    np.testing.assert_allclose(r.image, autograd_gradient(engine, x, "fc1", (0,)), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_reconstructions_on_cuda_equal_the_cpu_ones():
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    engine, x = engine_and_image(1)
    gpu = cpu_engine(tiny_lenet(1), (1, 8, 8), mean=MEAN, std=STD, device="cuda")
    for unit in [("relu2", 5, 1, 2), ("fc2", 3)]:
        a = engine.reconstruct(x, unit, method="all")
        b = gpu.reconstruct(x, unit, method="all")
        for m in METHODS:
            np.testing.assert_allclose(b.images[m], a.images[m], rtol=1e-4,
                                       atol=1e-5 * max(np.abs(a.images[m]).max(), 1e-6))


def odd_relu_net():
    """Strided, dilated, 'same'-padded convs, a ceil-mode pool with padding, BatchNorm and
    adaptive average pooling, with ReLUs: every box the backward flow keeps is exercised."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(4, 4, (5, 3), stride=2, padding=(2, 0)), nn.BatchNorm2d(4).eval(), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Conv2d(4, 6, 3, dilation=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(24, 3))


def test_strided_dilated_padded_nets_filter_and_field():
    engine = cpu_engine(odd_relu_net(), (2, 23, 21), mean=0.2, std=0.5)
    x = random_images(1, (2, 23, 21), seed=6)[0] * 2 - 1
    checked = 0
    for layer in ["1", "4", "5", "7", "8", "10"]:
        shape = engine.layer(layer).output_shape
        for coords in [tuple(s // 2 for s in shape), tuple(s - 1 for s in shape)]:
            r = engine.reconstruct(x, (layer, coords), method="all")
            g = autograd_gradient(engine, x, layer, coords)
            np.testing.assert_allclose(r.images["filter"], g, rtol=1e-5,
                                       atol=1e-6 * max(np.abs(g).max(), 1e-6))
            outside = np.ones(x.shape[1:], bool)
            outside[r.field.slices] = False
            assert all(np.abs(img[:, outside]).max(initial=0) == 0 for img in r.images.values())
            checked += np.abs(g).max() > 0
    assert checked >= 6


def test_circular_padding_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                          nn.Flatten(), nn.Linear(128, 2))
    engine = cpu_engine(model, (1, 8, 8))
    with pytest.raises(NotAChain, match="circular"):
        engine.reconstruct(random_images(1)[0], ("1", 0, 3, 3))


def masked_flow_reference(engine, x, layer, coords, weights):
    """eq. 6-7 written with autograd on tiny_lenet, independently of reconstruct's own loop:
    every conv/linear goes forward with its learned weights but backward through ``weights``
    (name -> tensor), and a hook rectifies the flow arriving at every ReLU's output before
    autograd applies the forward mask: r ⊙ R(W^T ...), unpooling with autograd's switches."""
    xg = torch.as_tensor(x)[None].clone().requires_grad_(True)
    h = (xg - MEAN) / STD
    for name, m in engine.model.named_children():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            op = (lambda z, w, b=None: F.conv2d(z, w, b, m.stride, m.padding)) \
                if isinstance(m, nn.Conv2d) else F.linear
            back = weights[name]                 # forward value learned, backward W = back
            h = op(h, m.weight, m.bias).detach() + op(h, back) - op(h, back).detach()
        elif isinstance(m, nn.ReLU):
            h = F.relu(h)
            h.register_hook(lambda g: g.clamp(min=0))
        else:
            h = m(h)
        if name == layer:
            break
    (g,) = torch.autograd.grad(h[(0, *coords)], xg)
    return g[0].numpy()


@pytest.mark.parametrize("seed", [0, 5])
def test_masked_methods_follow_eq_6_7_with_learned_and_with_random_weights(seed):
    """deconvnet_masks with the learned weights, random_masks with the seeded Gaussian ones
    (the masks and switches of the real forward pass in both), against the reference above."""
    engine, x = engine_and_image(seed)
    learned = {n: m.weight.detach() for n, m in engine.model.named_children()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    checked = 0
    for layer, *coords in UNITS:
        with engine.borrow():
            random = _random_weights(engine, seed)
        for method, weights in [("deconvnet_masks", learned), ("random_masks", random)]:
            want = masked_flow_reference(engine, x, layer, tuple(coords), weights)
            got = engine.reconstruct(x, (layer, *coords), method=method, seed=seed).image
            np.testing.assert_allclose(got, want, rtol=1e-5,
                                       atol=1e-6 * max(np.abs(want).max(), 1e-6))
            checked += np.abs(want).max() > 0
    assert checked >= 6


def test_a_unit_that_sees_only_zero_padding_has_an_empty_field_and_zero_reconstructions():
    """A 1x1 convolution with padding 2: its border units read nothing but padding."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1, padding=2), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(2 * 12 * 12, 2))
    engine = cpu_engine(model, (1, 8, 8))
    x = random_images(1, seed=2)[0]
    # (top, left, bottom, right): conv "2" at row 1 reads rows 0-2 of "0", of which only row 2
    # (input row 0) sees a pixel
    for layer, coords, box in [("0", (0, 0, 0), None), ("2", (1, 0, 5), None),
                               ("2", (1, 1, 5), (0, 2, 1, 5)), ("0", (1, 2, 9), (0, 7, 1, 8))]:
        f = engine.receptive_field(layer, *coords[1:])
        r = engine.reconstruct(x, (layer, *coords), method="all")
        g = autograd_gradient(engine, x, layer, coords)
        np.testing.assert_allclose(r.images["filter"], g, rtol=1e-5, atol=1e-7)
        if box is None:
            assert f.height == 0 or f.width == 0, (layer, coords, f)
            assert 0 <= f.top <= f.bottom <= 8 and 0 <= f.left <= f.right <= 8
            assert r.crop("filter").size == 0 and np.abs(g).max() == 0
            assert all(np.abs(img).max() == 0 for img in r.images.values())
        else:
            assert (f.top, f.left, f.bottom, f.right) == box, (layer, coords, f)
