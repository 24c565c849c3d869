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
