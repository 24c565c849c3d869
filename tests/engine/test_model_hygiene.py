"""The engine borrows the user's model and gives it back bitwise unchanged: parameters,
buffers, every module's train/eval flag, requires_grad, .grad, and no hooks left behind, after
success and after every kind of failure."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine import Cancelled, Control, InputShapeError, LayerNotFound, UnitOutOfRange
from cnn_widgets.testing import (
    TINY_SHAPE,
    as_user_model,
    assert_model_untouched,
    hook_count,
    model_fingerprint,
    raising_lenet,
    random_images,
    tiny_lenet,
    untouched,
)
from cnn_widgets.testing.reference import cpu_engine


class ModeSpy:
    """A forward hook the *user* put on the model: records the model's mode at each call."""

    def __init__(self, model):
        self.modes = []
        self.handle = model.register_forward_hook(lambda m, i, o: self.modes.append(m.training))


def _user_model(make=tiny_lenet, seed=0, **kw):
    """Train mode, conv1 frozen (requires_grad False), the rest trainable, plus one user hook."""
    model = as_user_model(make(seed, **kw), frozen=("conv1",))
    assert model.training and not model.conv1.weight.requires_grad
    assert model.fc2.weight.requires_grad
    return model


def _data(n=12, seed=0):
    x = random_images(n, seed=seed)
    return x, torch.arange(n) % 3


def _everything(engine, x, labels):
    engine.predict(x)
    engine.activations(x, ["conv1", "relu1", "fc2"])
    engine.etalons(x[:2], method="fast")
    engine.etalons(x[:2], layer="conv2", units=[(1, 2, 3)], method="fast")
    engine.etalons(x[:1], method="paper")
    engine.etalons(x[:1], layer="relu1", units=[(0, 0, 0)], method="paper")
    engine.activation_pattern(x)
    engine.count_regions((x, labels))


def test_success_leaves_model_untouched_and_uses_it_in_eval_mode():
    model = _user_model(batchnorm=True)
    spy = ModeSpy(model)
    before = model_fingerprint(model)
    assert before["hooks"] == 1
    engine = cpu_engine(model, TINY_SHAPE, mean=0.1, std=0.4)
    assert engine.model is model, "a CPU model with device='cpu' must be used in place"
    x, labels = _data()
    _everything(engine, x, labels)
    assert_model_untouched(model, before)
    assert hook_count(model) == 1
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model.fc2.weight.requires_grad
    assert not model.conv1.weight.requires_grad
    assert spy.modes and not any(spy.modes), "the engine ran the model in train mode"


def test_existing_gradients_are_kept():
    model = _user_model()
    model(random_images(2)).sum().backward()           # the user has gradients lying around
    assert model.fc2.weight.grad is not None and model.conv1.weight.grad is None
    before = model_fingerprint(model)
    engine = cpu_engine(model, TINY_SHAPE)
    engine.etalons(random_images(2), method="fast")
    engine.etalons(random_images(1), method="paper")
    assert_model_untouched(model, before)


def test_engine_sees_later_changes_to_the_model():
    """No hidden copy on the CPU: editing the user's model changes the engine's answers."""
    model = tiny_lenet(1)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2)
    p0 = engine.predict(x)
    with torch.no_grad():
        model.fc2.bias += 1.0
    np.testing.assert_allclose(engine.predict(x), p0 + 1.0, rtol=1e-5, atol=1e-5)


def test_grad_mode_of_the_caller_is_kept():
    engine = cpu_engine(tiny_lenet(2), TINY_SHAPE)
    x = random_images(1)
    with torch.no_grad():
        et = engine.etalons(x, method="fast")         # needs autograd inside
        assert not torch.is_grad_enabled()
    assert np.abs(et.W).max() > 0


BAD_CALLS = [
    pytest.param(lambda e, x: e.etalons(x.clone().index_fill_(2, torch.tensor([3]), float("nan"))),
                 InputShapeError, id="nan-etalons"),
    pytest.param(lambda e, x: e.predict(x.clone().fill_(float("inf"))), InputShapeError,
                 id="inf-predict"),
    pytest.param(lambda e, x: e.etalons(x, layer="conv2", units=[(6, 0, 0)]), UnitOutOfRange,
                 id="bad-unit"),
    pytest.param(lambda e, x: e.etalons(x, layer="nope"), LayerNotFound, id="bad-layer"),
    pytest.param(lambda e, x: e.etalons(x, method="magic"), ValueError, id="bad-method"),
    pytest.param(lambda e, x: e.etalons(x, control=Control(should_stop=lambda: True)), Cancelled,
                 id="cancel-fast"),
    pytest.param(lambda e, x: e.etalons(x, method="paper", one_hot_batch=8,
                                        control=Control(should_stop=lambda: True)), Cancelled,
                 id="cancel-paper"),
    pytest.param(lambda e, x: e.count_regions((x, torch.zeros(len(x))),
                                              control=Control(should_stop=lambda: True)),
                 Cancelled, id="cancel-regions"),
]


@pytest.mark.parametrize("call,error", BAD_CALLS)
def test_errors_leave_model_untouched(call, error):
    model = _user_model()
    ModeSpy(model)
    engine = cpu_engine(model, TINY_SHAPE, batch_size=2)
    with untouched(model):
        with pytest.raises(error):
            call(engine, random_images(3))
    assert hook_count(model) == 1


FAILING_FORWARDS = {
    "etalons-fast": lambda e, x: e.etalons(x, method="fast"),
    "etalons-fast-conv": lambda e, x: e.etalons(x, layer="conv2", units=[(0, 0, 0)]),
    "etalons-paper": lambda e, x: e.etalons(x, method="paper"),
    "predict": lambda e, x: e.predict(x),
    "activations": lambda e, x: e.activations(x, ["conv1", "fc1"]),
    "activation_pattern": lambda e, x: e.activation_pattern(x),
    "count_regions": lambda e, x: e.count_regions((x, torch.zeros(len(x)))),
}


@pytest.mark.parametrize("name", list(FAILING_FORWARDS))
def test_exception_inside_the_model_mid_forward(name):
    """A module after the in-place relu1 and pool1 raises: hooks already registered (and some
    already fired) must come off, modes and requires_grad must be restored."""
    model = _user_model(make=raising_lenet)
    ModeSpy(model)
    engine = cpu_engine(model, TINY_SHAPE)
    model.boom.armed = True
    with untouched(model):
        with pytest.raises(RuntimeError, match="boom"):
            FAILING_FORWARDS[name](engine, random_images(2))
    assert hook_count(model) == 1
    model.boom.armed = False
    engine.etalons(random_images(1), method="paper")    # and the engine still works


def test_cancel_after_first_batch_of_regions_leaves_model_untouched():
    model = _user_model()
    engine = cpu_engine(model, TINY_SHAPE, batch_size=4)
    x, labels = _data(12)
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 1

    with untouched(model):
        with pytest.raises(Cancelled):
            engine.count_regions((x, labels), control=Control(should_stop=should_stop))
    assert len(calls) == 1, "should_stop is polled after each batch"
