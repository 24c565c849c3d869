"""Every answer is for the model the user has now: an edit between two calls (a submodule
replaced, a Python attribute or a global that forward reads, weights changed through ``.data``)
is seen by the next call, by every engine on the model and by the activation index; what cannot
be analysed any more is refused clearly."""
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine import InputShapeError, InvalidArgument, LayerNotFound, ModelOutputError
from cnn_widgets.engine.core import change
from cnn_widgets.engine.core.stamp import CHUNK, device_sums, weights_stamp
from cnn_widgets.engine.index import distributed as D
from cnn_widgets.testing import TINY_SHAPE, UntraceableNet, random_images, tiny_lenet, untouched


def engine_on(model, n=40, device="cpu"):
    x = random_images(n, TINY_SHAPE, seed=3)
    return Engine(model, TINY_SHAPE, dataset=(x, torch.arange(n) % 5), device=device,
                  batch_size=16)


def logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


def affine(et):
    """<W, x> + b of every etalon, (N, P)."""
    return (et.W * et.x[:, None]).reshape(*et.W.shape[:2], -1).sum(-1) + et.b


class Scaled(nn.Module):
    """conv -> relu -> [relu again if ``twice``] -> flatten * ``scale`` -> fc: ``scale`` and
    ``twice`` are plain attributes that forward reads (torch.fx bakes them into the graph)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(192, 5)
        self.scale, self.shift = 1.0, False

    def forward(self, x):
        x = F.relu(self.conv(x))
        if self.shift:
            x = F.relu(x - 0.1)
        return self.fc(x.flatten(1) * self.scale)


GAIN = 1.0          # a global that forward reads: no signature sees it, the probe does


class Global(Scaled):
    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1) * GAIN)


# -- the traced graph follows the model ------------------------------------------------------
def test_a_python_attribute_read_in_forward_is_seen_by_the_next_call():
    torch.manual_seed(0)
    model = Scaled()
    engine = engine_on(model)
    x = random_images(3, TINY_SHAPE, seed=5)
    engine.etalons(x)
    model.scale = 3.0
    et = engine.etalons(x)
    assert et.exact
    np.testing.assert_allclose(affine(et), logits(model, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(engine.predict(x), logits(model, x), rtol=1e-5, atol=1e-5)
    assert "relu:1" not in engine.layer_names
    model.shift = True                                  # a branch: one more layer
    assert "relu:1" in engine.layer_names
    np.testing.assert_allclose(affine(engine.etalons(x)), logits(model, x), rtol=1e-4, atol=1e-4)


def test_a_replaced_submodule_is_analysed_not_the_old_one():
    model = tiny_lenet(1)
    engine = engine_on(model)
    x = engine.dataset.images.numpy()
    engine.top_images(O.logit(2), k=4)
    torch.manual_seed(7)
    model.fc2 = nn.Linear(16, 5)
    with untouched(model):
        top = engine.top_images(O.logit(2), k=4)
        et = engine.etalons(x[:2])
    want = logits(model, x)[:, 2]
    np.testing.assert_allclose(top.values, np.sort(want)[::-1][:4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(affine(et), logits(model, x[:2]), rtol=1e-4, atol=1e-4)


def test_a_changed_model_that_cannot_be_analysed_is_refused_clearly():
    model = tiny_lenet(1)
    engine = engine_on(model)
    model.fc1 = nn.Linear(24, 12)                      # fc2 still expects 16 features
    with pytest.raises(RuntimeError):                  # the user's own edit fails by itself
        engine.predict(random_images(1))
    model.fc1, model.fc2 = nn.Linear(24, 12), nn.Linear(12, 7)
    with pytest.raises(ModelOutputError, match="now has 7 outputs.*5 classes"):
        engine.predict(random_images(1))
    model.fc2 = nn.Linear(12, 5)
    del model.relu3
    assert engine.predict(random_images(2)).shape == (2, 5)
    with pytest.raises(LayerNotFound, match="relu3"):
        engine.etalons(random_images(1), layer="relu3")
    model.conv1 = nn.Conv2d(3, 4, 3, padding=1)         # now takes RGB
    with pytest.raises(InputShapeError, match="expects 3 input channel"):
        engine.predict(random_images(1))


def test_a_global_read_in_forward_is_caught_by_the_probe(monkeypatch):
    monkeypatch.setattr(change, "PROBE_SHARE", float("inf"))     # probe at every call
    torch.manual_seed(0)
    model = Global()
    engine = engine_on(model)
    x = random_images(2, TINY_SHAPE, seed=5)
    engine.etalons(x)
    monkeypatch.setattr(sys.modules[__name__], "GAIN", -2.0)
    np.testing.assert_allclose(affine(engine.etalons(x)), logits(model, x), rtol=1e-4, atol=1e-4)


def test_a_new_engine_on_a_model_just_checked_does_not_probe_it_again(monkeypatch):
    """The probe's time belongs to the graph the engines share: a second engine's first call
    ran it again (two forward passes: a ResNet-50's receptive fields of a fresh engine took
    0.11 s instead of 0.01 s)."""
    monkeypatch.setattr(change, "PROBE_SHARE", 1e-12)            # one probe per ~forever
    model = tiny_lenet(2)
    calls = []
    handle = model.register_forward_pre_hook(lambda _m, _x: calls.append(1))
    try:
        a = engine_on(model)
        a.predict(random_images(1))                               # a's graph was just compared
        b = engine_on(model)
        before = len(calls)
        b.receptive_field(b.default_layer_for("probing"), 0, 0)   # no forward pass needed
        assert len(calls) == before, "the second engine compared the graph with the model again"
    finally:
        handle.remove()


def test_engines_sharing_a_model_all_see_one_retrace():
    model = tiny_lenet(2)
    a, b = engine_on(model), engine_on(model)
    assert a.graph is b.graph
    model.relu3 = nn.LeakyReLU(0.2)
    x = random_images(2)
    a.etalons(x)
    et = b.etalons(x)
    assert b.graph is a.graph and b.layer("relu3").kind == "LeakyReLU"
    np.testing.assert_allclose(affine(et), logits(model, x), rtol=1e-4, atol=1e-4)


def test_a_model_that_can_no_longer_be_traced_runs_directly_not_as_its_old_graph():
    model = tiny_lenet(4)
    engine = engine_on(model)
    assert engine.graph is not None

    def forward(self, x):
        for name, m in self.named_children():
            x = m(x)
            if name == "fc1":             # data-dependent: torch.fx cannot trace it
                x = -x if x.abs().sum() > 1e12 else x * 2
        return x
    model.forward = types.MethodType(forward, model)
    x = random_images(2)
    et = engine.etalons(x)
    assert engine.graph is None and "could not be traced" in engine.graph_error
    np.testing.assert_allclose(affine(et), logits(model, x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(engine.activations(x, ["fc2"])["fc2"], logits(model, x),
                               rtol=1e-5, atol=1e-5)


def test_an_untraceable_model_follows_a_replaced_module():
    model = UntraceableNet(0)
    engine = engine_on(model)
    assert engine.graph is None
    model.relu1 = nn.LeakyReLU(0.3)
    assert engine.layer("relu1").kind == "LeakyReLU"
    x = random_images(2)
    np.testing.assert_allclose(engine.predict(x), logits(model, x), rtol=1e-5, atol=1e-5)


# -- the index answers for the weights and architecture of now -------------------------------
def test_weights_edited_through_data_never_use_the_old_index(tmp_path):
    model = tiny_lenet(1)
    engine = engine_on(model)
    target = O.channel("conv2", 3)
    index = engine.index(layers=["conv2"], path=tmp_path, chunk_size=16, k=6, progress=False)
    assert engine.top_images(target, k=3).source == str(index.path)
    for p in model.parameters():
        p.data.mul_(-1)                                  # no version counter moves
    top = engine.top_images(target, k=3)
    assert top.source == "scan"
    np.testing.assert_array_equal(top.indices, engine.top_images(
        target, k=3, data=(engine.dataset.images, engine.dataset.labels)).indices)
    saved = model.conv2.weight.data[0, 0, 0, 0].clone()
    model.conv2.weight.data[0, 0, 0, 0] += 1.0           # one value
    assert engine.top_images(target, k=3).source == "scan"
    model.conv2.weight.data[0, 0, 0, 0] = saved
    for p in model.parameters():
        p.data.mul_(-1)
    assert engine.top_images(target, k=3).source == str(index.path)    # the same bytes again


def test_an_index_of_a_relu_network_never_answers_for_a_tanh_network(tmp_path):
    relu = tiny_lenet(1)
    engine = engine_on(relu)
    index = engine.index(layers=["fc1", "fc2"], path=tmp_path, chunk_size=16, k=6,
                         progress=False)
    tanh = tiny_lenet(1)
    tanh.relu2 = nn.Tanh()
    assert all(torch.equal(v, relu.state_dict()[k]) for k, v in tanh.state_dict().items())
    with pytest.raises(InvalidArgument, match="another architecture"):
        engine_on(tanh).open_index(index.path)
    relu.relu3 = nn.Tanh()                                # the attached index's own engine
    assert engine.top_images(O.logit(1), k=3).source == "scan"


def test_the_weights_stamp_sees_every_kind_of_edit():
    model = tiny_lenet(0)
    before = weights_stamp(model)
    assert weights_stamp(model) == before
    model.fc2.bias.data[:2] = model.fc2.bias.data[:2].flip(0)      # a swap
    assert weights_stamp(model) != before


@pytest.mark.parametrize("edit", ["one byte", "sign flip", "swap", "zero", "across chunks"])
def test_the_on_device_sums_see_every_kind_of_edit(edit):
    """The GPU path's arithmetic, run here on CPU tensors."""
    g = torch.Generator().manual_seed(0)
    small = torch.tensor([0.25, -0.5])                   # balanced signs: a flip keeps plain sums
    big = torch.randn(CHUNK // 4 + 3, generator=g)       # crosses a chunk boundary
    tensors = [small, big]
    before = device_sums(tensors)
    assert device_sums(tensors) == before
    if edit == "one byte":
        big.view(torch.uint8)[5] ^= 1
    elif edit == "sign flip":
        small.mul_(-1)
    elif edit == "swap":
        big[[10, 11]] = big[[11, 10]]
    elif edit == "zero":
        small.zero_()
    else:
        big[[0, -1]] = big[[-1, 0]]
    assert device_sums(tensors) != before


# -- torchrun ranks agree before anything is merged --------------------------------------------
def test_ranks_with_other_plans_are_named_and_nothing_is_merged(monkeypatch):
    engine = engine_on(tiny_lenet(1))
    from cnn_widgets.engine.index.build import plan_for
    from cnn_widgets.engine.index.source import as_source
    ds, desc = as_source(engine, None)
    plan = plan_for(engine, ds, desc, ["fc2"], 4, 16, False, True)
    other = engine_on(tiny_lenet(2))
    theirs = plan_for(other, ds, desc, ["fc2"], 4, 16, False, True)
    monkeypatch.setattr(D, "gather", lambda obj, world: [plan, plan, theirs, plan])
    with pytest.raises(InvalidArgument, match=r"ranks \[2\] of 4 differ.*fingerprint\.weights"):
        D.agree(plan, 4)
    monkeypatch.setattr(D, "gather", lambda obj, world: [plan, dict(plan, chunk=32)])
    with pytest.raises(InvalidArgument, match=r"ranks \[1\] of 2.*rank 1: chunk"):
        D.agree(plan, 2)
    monkeypatch.setattr(D, "gather", lambda obj, world: [plan, dict(plan)])
    D.agree(plan, 2)


# -- what an engine is made from ------------------------------------------------------------
def test_a_wrong_input_shape_says_what_the_first_layer_expects_without_a_traceback(capfd):
    from cnn_widgets.zoo import LeNet
    with pytest.raises(InputShapeError, match=r"'conv1' \(Conv2d\) expects 1 input channel"):
        Engine(LeNet(), (3, 28, 28), device="cpu")
    with pytest.raises(InputShapeError, match=r"input_shape=\(1, 32, 32\).*check H and W"):
        Engine(LeNet(), (1, 32, 32), device="cpu")
    assert "Traceback" not in capfd.readouterr().err


def test_devices_that_cannot_be_used_are_refused(monkeypatch):
    with pytest.raises(InvalidArgument, match="'tpu'"):
        engine_on(tiny_lenet(0), device="tpu")
    with pytest.raises(InvalidArgument, match="meta"):
        engine_on(tiny_lenet(0), device="meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidArgument, match="CUDA is not available"):
        Engine(tiny_lenet(0), TINY_SHAPE, device="cuda")


def test_a_model_on_the_meta_device_is_refused():
    model = tiny_lenet(0).to("meta")
    with pytest.raises(InvalidArgument, match="meta device.*load_state_dict"):
        Engine(model, TINY_SHAPE, device="cpu")


def test_a_compiled_model_is_analysed_through_its_module():
    model = tiny_lenet(3)
    engine = Engine(torch.compile(model), TINY_SHAPE, device="cpu")
    et = engine.etalons(random_images(2))
    assert et.exact and engine.graph is not None and engine.model is model
    np.testing.assert_allclose(affine(et), logits(model, et.x), rtol=1e-4, atol=1e-4)


def test_an_engine_on_a_copy_follows_edits_of_the_users_model():
    """A float64 model (or one on another device) is analysed as a float32 copy: an edit of
    the user's model, through ``.data`` too, reaches the copy at the next call."""
    model = tiny_lenet(1).double()
    x = random_images(3, TINY_SHAPE, seed=5)
    with pytest.warns(UserWarning, match="float32 copy"):
        engine = engine_on(model)
    assert engine.model is not model

    def expected():
        with torch.no_grad():
            return model.eval()(x.double()).float().numpy()
    np.testing.assert_allclose(engine.predict(x), expected(), rtol=1e-5, atol=1e-6)
    for p in model.parameters():
        p.data.mul_(-1)                                      # no version counter moves
    with pytest.warns(UserWarning, match="float32 copy"):
        got = engine.predict(x)
    np.testing.assert_allclose(got, expected(), rtol=1e-5, atol=1e-6)
    model.fc2 = nn.Linear(16, 5).double()                    # a replaced submodule
    with pytest.warns(UserWarning, match="float32 copy"):
        et = engine.etalons(x[:1])
    np.testing.assert_allclose(et.out, expected()[:1], rtol=1e-5, atol=1e-6)


def test_images_edited_through_data_never_use_the_old_index(tmp_path):
    engine = engine_on(tiny_lenet(1))
    target = O.channel("conv2", 3)
    index = engine.index(layers=["conv2"], path=tmp_path, chunk_size=16, k=6, progress=False)
    assert engine.top_images(target, k=3).source == str(index.path)
    best = int(engine.top_images(target, k=1).indices[0])
    engine.dataset.images.data[best] = 0.0                   # no version counter moves
    top = engine.top_images(target, k=3)
    assert top.source == "scan" and best not in top.indices[:1]
