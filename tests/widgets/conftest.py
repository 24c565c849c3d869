import threading

import pytest
import torch
from torch import nn

from cnn_widgets import Engine


def small_lenet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(200, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture
def engine():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 28, 28, generator=g)
    y = torch.arange(40) % 10
    return Engine(small_lenet(), (1, 28, 28), dataset=(x, y), device="cpu")


@pytest.fixture
def imagenet_like():
    """A tiny CNN with 1000 logits (class 517 named "tabby cat") and 40 RGB images of 28 px
    of 40 classes, the first labelled 5."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 14 * 14, 1000))
    x = torch.rand(40, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    names = [f"class {i}" if i != 517 else "tabby cat" for i in range(1000)]
    return Engine(model, (3, 28, 28), dataset=(x, (torch.arange(40) * 7 + 5) % 1000),
                  class_names=names, device="cpu")


class Held:
    """A held engine method: ``entered`` is set when a held call begins; calling releases."""

    def __init__(self):
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self):
        self.gate.set()


@pytest.fixture
def late(monkeypatch):
    """``late(engine, "method", when)`` makes the engine's method wait, on the calls ``when(*args,
    **kwargs)`` accepts (default: all), until the returned :class:`Held` is called: a result
    made to arrive after the widget's state changed, on purpose and not by timing luck."""
    helds = []

    def hold(engine, name, when=lambda *args, **kwargs: True):
        held, real = Held(), getattr(engine, name)
        helds.append(held)

        def method(*args, **kwargs):
            if when(*args, **kwargs):
                held.entered.set()
                assert held.gate.wait(30), f"{name} was never released"
            return real(*args, **kwargs)
        monkeypatch.setattr(engine, name, method)
        return held
    yield hold
    for held in helds:           # a failed test must not leave a worker waiting
        held()


def painted_on(widget, canvas, count) -> list:
    """The list that gets ``count()`` each time ``widget`` has painted ``canvas``."""
    painted, real = [], widget.paint
    widget.paint = lambda c, sheet: (real(c, sheet),
                                     painted.append(count()) if c is canvas else None)
    return painted


def stop_after(widget, show: str) -> None:
    """Make the widget's method ``show`` (which shows a partial result) press Stop after it."""
    real = getattr(widget, show)

    def then_stop(*args):
        real(*args)
        widget.stop()
    setattr(widget, show, then_stop)
