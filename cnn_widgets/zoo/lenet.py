"""LeNet-5 with ReLU, as in the etalon paper, built from named modules only."""
from __future__ import annotations

from torch import nn


class LeNet(nn.Module):
    """(N, 1, 28, 28) -> (N, 10) logits (no softmax).

    Every nonlinearity and pool is its own (not in-place) module, so the engine's hooks see
    each stage under a readable name: conv1, relu1, pool1, conv2, relu2, pool2, flatten,
    fc1, relu3, fc2, relu4, fc3.
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)     # 6 x 28 x 28
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)                   # 6 x 14 x 14
        self.conv2 = nn.Conv2d(6, 16, 5)               # 16 x 10 x 10
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)                   # 16 x 5 x 5
        self.flatten = nn.Flatten()                    # 400
        self.fc1 = nn.Linear(400, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)
