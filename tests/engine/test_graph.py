"""The graph of the forward pass: one layer per module call and per functional gate/add/cat,
names users know, hooks on every call (also through ``hooked`` and direct calls), the
module-hook path for models torch.fx cannot trace, and the user's model never changed."""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_widgets.engine import InvalidArgument, NotAChain
from cnn_widgets.engine.core import hooks
from cnn_widgets.testing import TINY_SHAPE, UntraceableNet, no_leftover_hooks, random_images, untouched
from cnn_widgets.testing.reference import cpu_engine


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        out += x
        return self.relu(out)


class Toy(nn.Module):
    """A residual block (relu module called twice, an in-place add), a functional relu and
    max-pool, an inception-style concatenation."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.block = Block()
        self.a = nn.Conv2d(2, 2, 1)
        self.b = nn.Conv2d(2, 3, 3, padding=2, dilation=2)
        self.fc = nn.Linear(5 * 4 * 4, 3)
        with torch.no_grad():                     # some of every relu call on, some off
            self.stem.bias.fill_(0.1)
            self.block.conv2.bias.copy_(torch.tensor([0.3, -0.1]))

    def forward(self, x):
        h = self.block(F.relu(self.stem(x)))
        h = torch.cat([self.a(h), self.b(h)], 1)
        return self.fc(F.max_pool2d(h, 2).flatten(1))


NAMES = ["stem", "relu", "block.conv1", "block.relu", "block.conv2", "block.add",
         "block.relu:1", "a", "b", "cat", "max_pool2d", "fc"]


def reference_outputs(model, x):
    with torch.no_grad():
        h0 = F.relu(model.stem(x))
        c1 = model.block.conv1(h0)
        r1 = F.relu(c1)
        add = model.block.conv2(r1) + h0
        r2 = F.relu(add)
        cat = torch.cat([model.a(r2), model.b(r2)], 1)
        pool = F.max_pool2d(cat, 2)
        fc = model.fc(pool.flatten(1))
    return {"relu": h0, "block.relu": r1, "block.add": add, "block.relu:1": r2, "cat": cat,
            "max_pool2d": pool, "fc": fc}


def test_every_call_is_a_layer_in_forward_order_with_its_output():
    model = Toy().eval()
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.layer_names == NAMES
    assert [i.kind for i in engine.layers] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d",
                                               "add", "ReLU", "Conv2d", "Conv2d", "cat",
                                               "MaxPool2d", "Linear"]
    assert engine.layer("cat").output_shape == (5, 8, 8)
    assert engine.gate_layers == ["relu", "block.relu", "block.relu:1", "max_pool2d"]
    x = random_images(3)
    with untouched(model):
        acts = engine.activations(x, NAMES)
    for name, ref in reference_outputs(model, x).items():
        np.testing.assert_allclose(acts[name], ref.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)
    assert (acts["block.add"] < 0).any()           # captured before the in-place relu ran
    for name in ["relu", "block.relu", "block.relu:1"]:
        assert 0 < (acts[name] > 0).mean() < 1, name


def test_hooked_sees_the_named_call_through_the_graph_and_through_direct_calls():
    model = Toy().eval()
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2)
    ref = reference_outputs(model, x)
    seen = {}

    def keep(name):
        def hook(module, inputs, output):
            seen.setdefault(name, []).append(output.clone())
        return hook
    with engine.borrow(), untouched(model):
        with hooks.hooked(model, {n: keep(n) for n in ["block.relu", "block.relu:1"]}):
            model(engine.normalize(x))                           # a direct call: module hooks
            hooks.forward(model, engine.normalize(x))            # the graph: taps
        with hooks.hooked(model, {"cat": keep("cat")}):
            hooks.forward(model, engine.normalize(x))
            with pytest.raises(InvalidArgument, match="'cat'.*hooks.forward"):
                model(engine.normalize(x))
    no_leftover_hooks(model)
    for name in ["block.relu", "block.relu:1"]:
        assert len(seen[name]) == 2                              # once per pass, not per call
        for got in seen[name]:
            np.testing.assert_allclose(got.numpy(), ref[name].numpy(), rtol=1e-6, atol=1e-6)
    assert len(seen["cat"]) == 1


def test_taps_act_on_their_own_thread_only():
    model = Toy().eval()
    engine = cpu_engine(model, TINY_SHAPE)
    calls = []
    other = {}

    def run_elsewhere():
        other["out"] = hooks.forward(model, engine.normalize(random_images(1)))
    with engine.borrow():
        with hooks.hooked(model, {"block.relu:1": lambda m, i, o: calls.append(1),
                                  "cat": lambda m, i, o: calls.append(2)}):
            t = threading.Thread(target=run_elsewhere)
            t.start()
            t.join()
            assert calls == [] and other["out"].shape == (1, 3)
            hooks.forward(model, engine.normalize(random_images(1)))
    assert calls == [1, 2]


def test_layer_output_of_a_second_call_and_of_a_function_has_gradients():
    model = Toy().eval()
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(1).requires_grad_(True)
    with engine.borrow():
        for name in ["block.relu:1", "cat", "max_pool2d"]:
            out = engine.layer_output(x, name)
            (g,) = torch.autograd.grad(out.sum(), x)
            assert g.abs().sum() > 0, name


def test_an_untraceable_model_keeps_the_module_hook_path():
    model = UntraceableNet(3)
    with untouched(model):
        engine = cpu_engine(model, TINY_SHAPE)
        assert engine.graph is None and "could not be traced" in engine.graph_error
        assert engine.layer_names == ["conv1", "relu1", "fc1", "fc2"]
        assert engine.activations(random_images(2), ["relu1"])["relu1"].shape == (2, 3, 8, 8)
        assert engine.etalons(random_images(1)).exact is False
        with pytest.raises(NotAChain, match="could not be traced.*etalons .method='fast'.* still work"):
            engine.receptive_field("conv1", 0, 0)
    no_leftover_hooks(model)


def test_an_untraceable_model_still_names_every_module_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(64, 2)

        def forward(self, x):
            h = self.relu(self.conv(x))
            if h.sum() > 1e9:                    # data-dependent: torch.fx cannot trace it
                h = h * 0
            return self.fc(self.relu(self.conv(h)).flatten(1))
    model = Twice()
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.graph is None
    assert engine.layer_names == ["conv", "relu", "conv:1", "relu:1", "fc"]
    x = random_images(2)
    acts = engine.activations(x, ["relu", "relu:1"])
    with torch.no_grad():
        first = model.relu(model.conv(x))
        second = model.relu(model.conv(first))
    np.testing.assert_allclose(acts["relu"], first.numpy(), rtol=1e-6)
    np.testing.assert_allclose(acts["relu:1"], second.numpy(), rtol=1e-6)
    no_leftover_hooks(model)


def test_the_graph_shares_the_users_modules_and_changes_nothing():
    model = Toy().train()
    with untouched(model):
        engine = cpu_engine(model, TINY_SHAPE)
        runner = engine.graph.module
        assert runner.block.relu is model.block.relu and runner.stem.weight is model.stem.weight
        engine.reconstruct(random_images(1)[0], ("block.relu:1", 1, 4, 4), method="all")
        engine.etalons(random_images(1), method="paper")
        engine.activation_pattern(random_images(2))
    no_leftover_hooks(model)
    assert model.training


def test_maximize_gradcam_and_scans_accept_functional_layers_and_second_calls():
    """The views' own hooks (maximize's capture, Grad-CAM's keep) reach functional layers and
    second calls: maximize runs the graph (hooks.forward), not model(x)."""
    from cnn_widgets.engine.visualization.objectives import channel
    model = Toy().eval()
    x = random_images(12)
    engine = cpu_engine(model, TINY_SHAPE, dataset=(x, np.arange(12) % 3))
    with untouched(model):
        for layer in ["cat", "block.relu:1"]:
            r = engine.maximize(channel(layer, 1), steps=15, lr=0.1)
            assert r.values[0] > r.trace[0, 0], layer
            np.testing.assert_allclose(
                r.values[0], engine.activations(r.images, [layer])[layer][0, 1].mean(), rtol=1e-5)
        cam = engine.gradcam(x[:2], classes=[0, 1, 2], layer="block.add")
        assert cam.maps.shape == (2, 3, 8, 8) and np.abs(cam.maps).max() > 0
        top = engine.top_images(channel("max_pool2d", 1), k=3)
        acts = engine.activations(x, ["max_pool2d"])["max_pool2d"][:, 1].mean((1, 2))
        np.testing.assert_array_equal(top.indices, np.argsort(-acts, kind="stable")[:3])
    no_leftover_hooks(model)


def test_the_models_own_hooks_run_around_the_graph():
    """Hooks on the model itself run in the engine's forward passes as in model(x): a
    pre-hook changes every layer (before, the graph runner skipped it), and a model hooked
    before its engine is made is traced (before: "the traced graph does not reproduce the
    model's output", and the untraced fallback lost the functional layers)."""
    model = Toy().eval()
    x = random_images(2)
    seen = []
    halve = model.register_forward_pre_hook(lambda m, args: seen.append(m) or (args[0] * 0.5,))
    shift = model.register_forward_hook(lambda m, args, out: out * 2 + 1)
    engine = cpu_engine(model, TINY_SHAPE)
    assert engine.graph_error is None and "cat" in engine.layer_names
    ref = reference_outputs(model, x * 0.5)                # the modules called directly
    acts = engine.activations(x, ["cat", "fc"])
    np.testing.assert_allclose(acts["cat"], ref["cat"].numpy(), rtol=1e-5, atol=1e-6)
    e = engine.etalons(x, layer="fc")
    np.testing.assert_allclose(e.out, ref["fc"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((e.W * e.x[:, None]).reshape(2, 3, -1).sum(-1) + e.b, e.out,
                               rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(engine.predict(x), model(x).numpy(), rtol=1e-6)
    assert seen and all(m is model for m in seen)            # the hooks get the user's model
    halve.remove(), shift.remove()
    np.testing.assert_allclose(engine.etalons(x, layer="fc").out,
                               reference_outputs(model, x)["fc"].numpy(), rtol=1e-5, atol=1e-6)
    no_leftover_hooks(model)


def test_hooks_on_an_inlined_container_are_named_in_a_warning_once():
    model = Toy().eval()
    engine = cpu_engine(model, TINY_SHAPE)
    handle = model.block.register_forward_hook(lambda m, args, out: None)
    with pytest.warns(UserWarning, match="'block'"):
        engine.activations(random_images(1), ["cat"])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.activations(random_images(1), ["cat"])
    handle.remove()
