"""torchvision's ResNet-18, DenseNet-121 and GoogLeNet (random init, small inputs) through the
graph: receptive fields = the support of the input gradient, filter = autograd's gradient,
every reconstruction zero outside the field, deconvnets = Captum (ResNet-18) or an independent
reference that swaps every relu call of the user's own forward (TorchFunctionMode), and
Algorithm 1 = the fast path."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from test_receptive_field import gradient_box
from torch.overrides import TorchFunctionMode

from cnn_widgets.testing import random_images, untouched
from cnn_widgets.testing.reference import assert_same_map, autograd_gradient, cpu_engine

MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None, num_classes=10), 64),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None, num_classes=10), 32),
    # DenseNet-121's code (functional relu, concatenations, transitions), 4 blocks of 2 layers
    "densenet_small": (lambda: torchvision.models.DenseNet(8, (2, 2, 2, 2), 16, bn_size=2,
                                                           num_classes=10), 32),
    "googlenet": (lambda: torchvision.models.googlenet(weights=None, num_classes=10,
                                                       aux_logits=False, init_weights=True), 32),
}
BIG = ["resnet18", "densenet121", "googlenet"]
_ENGINES: dict = {}


def engine_for(name):
    if name not in _ENGINES:
        make, size = MODELS[name]
        torch.manual_seed(0)
        model = make().eval()
        _ENGINES[name] = (model, cpu_engine(model, (3, size, size), mean=0.4, std=0.3))
    return _ENGINES[name]


def probe_layers(engine, k=6):
    """k spatial layers spread over the network, always with an add/cat and a second call."""
    spatial = [i.name for i in engine.layers if len(i.output_shape) == 3 and i.output_shape[1] > 1]
    picks = set(spatial[::max(1, len(spatial) // k)])
    picks |= {n for n in spatial if n.endswith((".add", ".cat", ":1"))}
    return [n for n in spatial if n in picks][:k + 3]


@pytest.mark.parametrize("name", BIG)
def test_layers_name_every_call(name):
    _, engine = engine_for(name)
    names = engine.layer_names
    assert len(names) == len(set(names))
    if name == "resnet18":
        i = names.index("layer1.0.relu")
        assert names[i:i + 5] == ["layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2",
                                  "layer1.0.add", "layer1.0.relu:1"]
        assert engine.layer("layer4.1.relu:1").output_shape == (512, 2, 2)
    if name == "densenet121":
        assert "relu" in names and engine.layer("relu").kind == "ReLU"      # F.relu at the top
        assert engine.layer("features.denseblock1.denselayer2.cat").output_shape == (96, 8, 8)
    if name == "googlenet":
        assert engine.layer("inception3a.cat").output_shape == (256, 4, 4)
    assert engine.graph is not None and engine.gate_layers


@pytest.mark.parametrize("name", BIG)
def test_fields_are_the_gradient_support(name):
    _, engine = engine_for(name)
    checked = 0
    for layer in probe_layers(engine):
        _, gh, gw = engine.layer(layer).output_shape
        for y, x in {(0, 0), (gh - 1, gw - 1), (gh // 2, gw // 2)}:
            f = engine.receptive_field(layer, y, x)
            assert (f.top, f.left, f.bottom, f.right) == gradient_box(engine, layer, None, y, x,
                                                                      n=6), (layer, y, x)
            checked += 1
    assert checked >= 15


class _Guided(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, masks):
        ctx.save_for_backward(h > 0)
        ctx.masks = masks
        return h.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        g = g.clamp(min=0)
        return (g * mask if ctx.masks else g), None


class GuidedRelus(TorchFunctionMode):
    """Every relu the user's own forward calls (nn.ReLU goes through F.relu too) rectifies the
    backward signal: deconvnet (masks=False) or guided backprop (masks=True)."""

    def __init__(self, masks):
        super().__init__()
        self.masks = masks

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_):
            return _Guided.apply(args[0], self.masks)
        return func(*args, **kwargs)


class _Stop(Exception):
    pass


def first_call_unit(model, h, module_name, flat):
    """(N, 1): unit ``flat`` of module ``module_name``'s first call in the user's own forward,
    with one plain forward hook (no graph)."""
    got = {}

    def hook(module, inputs, output):
        got["out"] = output
        raise _Stop
    handle = dict(model.named_modules())[module_name].register_forward_hook(hook)
    try:
        model(h)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["out"].flatten(1)[:, flat:flat + 1]


def reference_flow(model, engine, x, layer, flat, masks):
    """Deconvnet (masks=False) or guided backprop (masks=True) on the user's own forward."""
    xg = torch.as_tensor(x)[None].clone().requires_grad_(True)
    with GuidedRelus(masks):
        value = first_call_unit(model, engine.normalize(xg), layer, flat).sum()
    (g,) = torch.autograd.grad(value, xg)
    return g[0].numpy()


def module_layer(engine, model):
    """The deepest probed layer that is a module's first call (a plain hook can stop there)."""
    modules = dict(model.named_modules())
    return [n for n in probe_layers(engine, k=3) if n in modules][-1]


@pytest.mark.parametrize("name", BIG)
def test_reconstructions_on_real_graphs(name):
    model, engine = engine_for(name)
    x = random_images(1, engine.input_shape, seed=5)[0].numpy()
    with untouched(model):
        for layer in probe_layers(engine, k=3):
            c, gh, gw = engine.layer(layer).output_shape
            coords = (c // 2, gh // 2, gw // 3)
            r = engine.reconstruct(x, (layer, coords), method="all")
            g = autograd_gradient(engine, x, layer, coords)
            np.testing.assert_allclose(r.images["filter"], g, rtol=1e-5,
                                       atol=1e-5 * max(np.abs(g).max(), 1e-6))
            outside = np.ones(x.shape[1:], bool)
            outside[r.field.slices] = False
            for method, img in r.images.items():
                assert np.abs(img[:, outside]).max(initial=0) == 0, (layer, method)
        layer = module_layer(engine, model)
        c, gh, gw = engine.layer(layer).output_shape
        coords = (c // 2, gh // 2, gw // 2)
        flat = int(np.ravel_multi_index(coords, (c, gh, gw)))
        r = engine.reconstruct(x, (layer, coords), method=["deconvnet", "deconvnet_masks"])
        with engine.borrow():
            for method, masks in (("deconvnet", False), ("deconvnet_masks", True)):
                ref = reference_flow(model, engine, x, layer, flat, masks)
                assert np.abs(ref).max() > 0
                np.testing.assert_allclose(r.images[method], ref, rtol=1e-4,
                                           atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("method,captum_name", [("deconvnet", "Deconvolution"),
                                                ("deconvnet_masks", "GuidedBackprop")])
def test_resnet18_deconvnets_match_captum(method, captum_name):
    """Captum hooks ReLU modules; ResNet's ``relu`` modules are called twice per block, and
    the flow from layer3.0.conv1 goes back through eight such pairs of calls."""
    import captum.attr
    model, engine = engine_for("resnet18")
    x = random_images(1, engine.input_shape, seed=6)[0]
    layer, coords = "layer3.0.conv1", (5, 2, 1)
    r = engine.reconstruct(x, (layer, coords), method=method)
    flat = int(np.ravel_multi_index(coords, engine.layer(layer).output_shape))

    class Unit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, h):
            return first_call_unit(model, engine.normalize(h), layer, flat)
    with engine.borrow():
        ref = getattr(captum.attr, captum_name)(Unit()).attribute(x[None].clone(), target=0)
    assert float(ref.abs().max()) > 0
    np.testing.assert_allclose(r.image, ref[0].detach().numpy(), rtol=1e-4,
                               atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize("name,size", [
    ("resnet18", 16), ("googlenet", 16), ("densenet_small", 32),
    pytest.param("densenet121", 32, marks=pytest.mark.skipif(
        not os.environ.get("CNN_WIDGETS_FULL"), reason="70 s on a busy 2-core CPU; "
        "densenet_small runs the same code (CNN_WIDGETS_FULL=1 runs it)"))])
def test_paper_equals_fast(name, size):
    """One logit at the smallest input each accepts (a DenseNet needs 32x32): Algorithm 1
    replays every gate call (ResNet's reused relus, DenseNet's F.relu and concatenations,
    GoogLeNet's ceil-mode pools) and matches the fast path."""
    model, engine = engine_for(name)
    small = cpu_engine(model, (3, size, size)) if engine.input_shape[1] != size else engine
    x = random_images(1, (3, size, size), seed=7)
    fast = small.etalons(x, units=[3])
    paper = small.etalons(x, units=[3], method="paper", one_hot_batch=3 * size * size)
    assert fast.exact and paper.exact
    assert_same_map(paper.W, fast.W, f"{name} paper vs fast")
    np.testing.assert_allclose(paper.b, fast.b, rtol=1e-4, atol=1e-4 * np.abs(fast.b).max())
    pattern = small.activation_pattern(x)
    assert pattern.shape[0] == 1 and pattern.shape[1] > 1000
