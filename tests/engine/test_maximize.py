"""Gradient ascent on the input: it raises the objective, only the input gets gradients, the
model is untouched, starts are independent, Stop stops it."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.engine.visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation
from cnn_widgets.engine.visualization.scan import objective_values
from cnn_widgets.testing import TINY_SHAPE, as_user_model, random_images, tiny_lenet, untouched


def make_engine(inplace=True):
    model = as_user_model(tiny_lenet(0, inplace=inplace), frozen=["conv1"])
    x = random_images(30, TINY_SHAPE, seed=1)
    return Engine(model, TINY_SHAPE, dataset=(x, torch.arange(30) % 5), device="cpu")


@pytest.mark.parametrize("objective", [O.logit(2), O.probability(4), O.channel("conv2", 1),
                                       O.unit("relu1", (2, 3, 3)), O.layer_mean("fc1"),
                                       O.logit(1) - O.logit(0)])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_ascent_raises_the_objective_and_leaves_the_model(objective, optimizer):
    e = make_engine()
    with untouched(e.model):
        r = e.maximize(objective, steps=30, n_starts=2, lr=0.05, optimizer=optimizer)
    assert all(p.grad is None for p in e.model.parameters())
    # the final values, recomputed by the dataset scan (another code path), beat the start
    again = objective_values(e, objective, data=r.images)
    start = objective_values(e, objective, data=r.start)
    np.testing.assert_allclose(r.values, again, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.trace[0], start, rtol=1e-4, atol=1e-5)
    assert (again > start).all(), (objective.description, start, again)
    assert r.trace.shape == (30, 2) and r.images.shape == (2, *TINY_SHAPE)


def test_streaming_steps_and_the_final_one():
    e = make_engine()
    steps = list(e.iterate_maximize(O.logit(1), steps=10, every=4, start="dataset",
                                    indices=[3, 7]))
    assert [s.step for s in steps] == [0, 4, 8, 10]
    np.testing.assert_allclose(steps[0].images, e.dataset.images[[3, 7]].numpy())
    np.testing.assert_allclose(steps[0].logits, e.predict(e.dataset.images[[3, 7]]), rtol=1e-5)
    assert steps[-1].final and steps[-1].trace.shape == (10, 2)
    np.testing.assert_allclose(steps[1].values, steps[-1].trace[4], rtol=1e-6)
    assert steps[1].logits is not None and steps[-1].probabilities.sum(1) == pytest.approx(1)
    none = list(e.iterate_maximize(O.channel("conv1", 0), steps=3, every=None, predict=False))
    assert len(none) == 1 and none[0].logits is not None


def test_a_paused_stream_holds_nothing_of_the_model():
    e = make_engine()
    with untouched(e.model):             # checked while the generator waits between yields
        stream = e.iterate_maximize(O.logit(1), steps=10, every=3)
        assert next(stream).step == 0 and next(stream).step == 3
    stream.close()


def test_starts_batched_are_independent():
    e = make_engine()
    x = random_images(3, TINY_SHAPE, seed=9)
    both = e.maximize(O.channel("conv2", 2), steps=15, start=x)
    one = e.maximize(O.channel("conv2", 2), steps=15, start=x[1])
    np.testing.assert_allclose(both.images[1], one.images[0], rtol=1e-4, atol=1e-5)


def test_noise_start_has_the_dataset_statistics():
    e = make_engine()
    from cnn_widgets.engine.visualization.maximize import start_images
    x = start_images(e, "noise", n_starts=200, seed=0)
    assert x.mean().item() == pytest.approx(e.dataset.images.mean().item(), abs=0.02)
    assert x.std().item() == pytest.approx(e.dataset.images.std().item(), rel=0.05)


def test_regularised_run_with_tricks_still_ascends_and_is_deterministic():
    e = make_engine()
    regs = [AlphaNorm(1e-3), TotalVariation(1e-2), GradientTrick(0.8, 1, 5.0), Jitter(2)]
    a = e.maximize(O.logit(0), steps=25, regularizers=regs, seed=4)
    b = e.maximize(O.logit(0), steps=25, regularizers=regs, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.values[0] > a.trace[0, 0]


def test_stop_and_errors_leave_the_model():
    e = make_engine()
    calls = []
    control = Control(should_stop=lambda: len(calls) >= 5, report=lambda *a: calls.append(a))
    with untouched(e.model), pytest.raises(Cancelled):
        e.maximize(O.logit(0), steps=100, control=control)
    assert len(calls) == 5
    with pytest.raises(ValueError, match="'adam' or 'sgd'"):
        e.maximize(O.logit(0), steps=2, optimizer="lbfgs")
    with pytest.raises(IndexError, match="0 <= i < 30"):
        e.maximize(O.logit(0), steps=2, start="dataset", indices=[30])
    with pytest.raises(TypeError, match="regulariser"):
        e.maximize(O.logit(0), steps=2, regularizers=["tv"])


def test_a_watched_run_hands_on_live_steps_and_ascends_the_same():
    """Issue 17: live results come from the capability (FOVExplorer's best input paints them):
    the first step at once, later ones as the live share of the run's time allows; each
    partial is the whole state before an update, and watching changes nothing."""
    e = make_engine()
    x0 = random_images(2, TINY_SHAPE, seed=3)
    parts = []
    kw = dict(steps=6, start=x0, lr=0.1, optimizer="sgd", predict=False)
    watched = e.maximize(O.channel("conv2", 1), control=Control(partial=parts.append), **kw)
    plain = e.maximize(O.channel("conv2", 1), **kw)
    np.testing.assert_array_equal(watched.images, plain.images)
    steps = [p.step for p in parts]
    assert steps[0] == 0 and steps == sorted(set(steps)) and steps[-1] < 6
    assert not any(p.final for p in parts)
    np.testing.assert_array_equal(parts[0].images, x0.numpy())
    for p in parts:
        np.testing.assert_array_equal(p.trace, watched.trace[:p.step + 1])   # and its value
        assert p.logits is None


def test_forward_stops_at_the_objective_layer(monkeypatch):
    from cnn_widgets.engine.core import change
    monkeypatch.setattr(change, "PROBE_SHARE", 1e-12)   # no freshness probe (it reaches fc2)
    e = make_engine(inplace=False)
    seen = []
    h = e.model.fc2.register_forward_hook(lambda *a: seen.append(1))
    try:
        list(e.iterate_maximize(O.channel("conv2", 0), steps=3, every=None, predict=False))
        assert len(seen) == 1          # only the final step's class scores reach the logits
    finally:
        h.remove()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_ascent_scan_and_gradcam_on_cuda():
    from cnn_widgets.engine.visualization.gradcam import gradcam
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        x = random_images(30, TINY_SHAPE, seed=1)
        data = (x, torch.arange(30) % 5)
        cpu = Engine(tiny_lenet(0), TINY_SHAPE, dataset=data, device="cpu")
        gpu = Engine(tiny_lenet(0), TINY_SHAPE, dataset=data, device="cuda")
        regs = [AlphaNorm(1e-3), TotalVariation(1e-2), GradientTrick(), Jitter(2)]
        a, b = (e.maximize(O.channel("conv2", 1), steps=10, regularizers=regs) for e in (cpu, gpu))
        np.testing.assert_allclose(a.images, b.images, rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(cpu.top_images(("fc1", 2), k=5).indices,
                                      gpu.top_images(("fc1", 2), k=5).indices)
        np.testing.assert_allclose(gradcam(cpu, x[:2]).maps, gradcam(gpu, x[:2]).maps,
                                   rtol=1e-3, atol=1e-5)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_sgd_is_plain_gradient_ascent():
    """optimizer="sgd" (the papers' choice) is x <- x + lr * dΦ/dx, one step and several; Adam's
    first step is lr * sign(g) instead (the difference issue 12 asks notebooks to state)."""
    e = make_engine()
    x0 = random_images(2, TINY_SHAPE, seed=7)
    obj = O.unit("relu1", (2, 3, 3)) + O.logit(3)

    def grad(x):
        x = torch.as_tensor(x).clone().requires_grad_(True)
        with torch.enable_grad():
            v = e.model(e.normalize(x))[:, 3] + e.model[:2](e.normalize(x))[:, 2, 3, 3]
            return torch.autograd.grad(v.sum(), [x])[0].numpy()

    lr = 0.3
    one = e.maximize(obj, steps=1, start=x0, lr=lr, optimizer="sgd")
    np.testing.assert_allclose(one.images, x0.numpy() + lr * grad(x0), rtol=1e-5, atol=1e-6)
    x = x0.numpy()
    for _ in range(3):
        x = x + lr * grad(x)
    np.testing.assert_allclose(e.maximize(obj, steps=3, start=x0, lr=lr, optimizer="sgd").images,
                               x, rtol=1e-4, atol=1e-5)
    adam = e.maximize(obj, steps=1, start=x0, lr=lr, optimizer="adam")
    g = grad(x0)
    np.testing.assert_allclose(adam.images[g != 0], (x0.numpy() + lr * np.sign(g))[g != 0],
                               rtol=1e-4, atol=1e-4)
