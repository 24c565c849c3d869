"""The inverse set's passes go in chunks with a Stop check after each (Stop is seen within one
chunk's forward or backward, counted in passes, not seconds), and a gradient taken in chunks
is the batched one."""
import numpy as np
import pytest
import torch
from torch import nn

from cnn_widgets import Engine
from cnn_widgets.engine.core import chunks
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.engine.inverse_set.objective import _Objective
from cnn_widgets.engine.inverse_set.passes import Passes
from cnn_widgets.engine.inverse_set.problem import build_problem, optimising, penalty
from cnn_widgets.engine.inverse_set.settings import InverseSetSettings as S
from cnn_widgets.testing.generators import TinyGenerator


@pytest.fixture(scope="module")
def setup(inverse_set_setup):
    return inverse_set_setup


class Watched(TinyGenerator):
    """G that notes each chunk of a step: its forward pass (codes with gradients) and its
    backward pass (the gradient reaching the chunk's images)."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def forward(self, c):
        x = super().forward(c)
        if x.requires_grad:
            self.events.append(("forward", len(c)))
            x.register_hook(lambda g: self.events.append(("backward", len(g))))
        return x


def run(engine, monkeypatch, stop_at=None, **kw):
    """Model passes (images), G's chunks and Stop checks of one inverse_set call, in order,
    with chunks of one code or image (as on a model where one pass takes longer than
    CHUNK_S)."""
    monkeypatch.setattr(chunks, "CHUNK_S", 0.0)
    events = []

    def should_stop():
        events.append("check")
        return stop_at is not None and stop_at(events)

    hook = engine.model[0].register_forward_pre_hook(
        lambda m, a: events.append(("model", len(a[0]))))
    try:
        engine.inverse_set(("9", 2), kw.pop("ranges", None), generator=Watched(events),
                           control=Control(should_stop), **kw)
    finally:
        hook.remove()
        kw["events"] = events
    return events


@pytest.mark.parametrize("default", [True, False])
def test_every_pass_goes_in_chunks_with_a_check_after_each(setup, monkeypatch, default):
    """The dataset's pass (default range, the diversity's scale), every seed step, the
    multipliers' update (outer iterations of two steps), every sampling step and the
    recheck: after each chunk's forward or backward pass, a Stop check."""
    engine, _, acts = setup
    given = dict(settings=S(inner_steps=2, max_outer=30),
                 ranges=tuple(np.percentile(acts["9"][:, 2], [30, 70])))
    events = run(engine, monkeypatch, K=4, n=12, **({} if default else given))
    work = [e for e in events if e != "check"]
    assert {n for _, n in work} == {1}                          # one image per chunk
    assert sum(1 for e in work if e[0] == "backward") >= 3 * 4  # seed and sampling steps
    assert sum(1 for e in work if e[0] == "model") >= len(engine.dataset) + 12
    between = 0
    for e in events[events.index("check"):]:     # before: the facade's now-and-then probe
        between = 0 if e == "check" else between + (e[0] != "forward")   # G's pass: the model's
        assert between <= 1, events


@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_stop_in_the_middle_of_a_step_ends_after_that_chunk(setup, monkeypatch, phase):
    """Stop pressed during the second step's pass (4 codes, one a chunk): the next check
    ends the run, nothing runs after it."""
    engine, _, _ = setup
    log = []

    def stop_at(events):
        log[:] = events
        return sum(1 for e in events if e != "check" and e[0] == phase) >= 6

    with pytest.raises(Cancelled):
        run(engine, monkeypatch, stop_at=stop_at, ranges=(0.0, 1e-3), K=4, n=12)
    assert sum(1 for e in log if e != "check" and e[0] == phase) == 6
    tail = [e for e in log if e == "check" or e[0] != "model"][-2:]
    assert tail == [(phase, 1), "check"], log[-8:]


def problem(engine, G, units, ranges):
    return build_problem(engine, units, ranges, G, None, 0.25)[0]


@pytest.mark.parametrize("pixels", [False, True])
def test_a_gradient_in_chunks_is_the_batched_one(setup, monkeypatch, pixels):
    engine, G, acts = setup
    monkeypatch.setattr(chunks, "CHUNK_S", 0.0)
    ranges = [tuple(np.percentile(acts["9"][:, 2], [40, 70]))]
    prob = problem(engine, None if pixels else G, [("9", 2)], ranges)
    with optimising(prob):
        z = (torch.rand(5, 1, 28, 28) if pixels else torch.randn(5, 8)).requires_grad_(True)
        obj = _Objective(prob, S(), 3.0)
        lam = torch.rand(5, 1, 2)
        previous = torch.randn(3, prob.forward(z)[2].shape[1])

        def loss(x, f, feats):
            return obj.loss(z, x, feats, previous) + penalty(prob.constraints(f), lam, 10.0)

        step = Passes(prob, Control()).with_graph(z)
        assert len(step.bounds) == 5                       # one code per chunk
        chunked = step.gradient(loss(step.x, step.f, step.feats))
        (batched,) = torch.autograd.grad(loss(*prob.forward(z)), [z])
    scale = float(batched.abs().max())
    np.testing.assert_allclose(chunked.numpy(), batched.numpy(), rtol=1e-4, atol=1e-6 * scale)
    assert float(batched.abs().max()) > 0


def test_a_model_in_its_own_modes_goes_in_one_batch(setup, monkeypatch):
    """eval_mode=False: batch norm may couple the rows, so no chunks."""
    monkeypatch.setattr(chunks, "CHUNK_S", 0.0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(1352, 3))
    engine = Engine(model, (1, 28, 28), device="cpu", eval_mode=False)
    prob = problem(engine, TinyGenerator(), [("3", 0)], [(0.0, 1.0)])
    with optimising(prob):
        passes = Passes(prob, Control())
        assert len(passes.with_graph(torch.randn(5, 8).requires_grad_(True)).bounds) == 1
        assert passes.forward(torch.randn(5, 8))[1].shape == (5, 1)


def test_chunks_are_sized_from_one_codes_pass(setup):
    """A clock that says every pass takes 0.1 s: forward chunks of CHUNK_S / 0.1 = 2 codes,
    gradient chunks (about three passes each) of one; a quick model goes in one batch."""
    engine, G, _ = setup
    prob = problem(engine, G, [("9", 2)], [(0.0, 1.0)])
    ticks = iter(np.arange(0.0, 1e4, 0.1))         # 0.1 s between two readings: one pass
    with optimising(prob):
        slow = Passes(prob, Control(), clock=lambda: float(next(ticks)))
        step = slow.with_graph(torch.randn(8, 8).requires_grad_(True))
        assert len(step.bounds) == 8 and slow.size["forward"] == 2
        quick = Passes(prob, Control(), clock=lambda: 0.0)
        assert len(quick.with_graph(torch.randn(8, 8).requires_grad_(True)).bounds) == 1
