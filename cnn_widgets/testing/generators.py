"""A tiny untrained generator for tests of the inverse-set sampler (no training, no cache)."""
from __future__ import annotations

import torch
from torch import nn


class TinyGenerator(nn.Module):
    """Random decoder, fixed by ``seed``: (N, code_dim) codes -> (N, 1, 28, 28) in [0, 1]."""

    def __init__(self, seed: int = 0, code_dim: int = 8):
        super().__init__()
        self.code_dim = int(code_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(code_dim, 7 * 7 * 8), nn.ReLU(),
                                     nn.Unflatten(1, (8, 7, 7)), nn.Upsample(scale_factor=4),
                                     nn.Conv2d(8, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, c):
        return self.net(c)
