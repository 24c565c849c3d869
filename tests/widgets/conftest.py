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
