"""The noise images the papers feed a network: uniform in [0, 1], or Gaussian with the data's
per-channel statistics. Both seeded and on the CPU."""
from __future__ import annotations

import torch


def uniform_noise(input_shape, n: int, seed: int = 0) -> torch.Tensor:
    """(n, *input_shape) uniform in [0, 1] (the clustering paper's noise category)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand(int(n), *input_shape, generator=g)


def channel_stats(host) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (C,) of the host's dataset in its input space, else its
    normalisation mean/std (CPU)."""
    if host.dataset is not None:
        imgs = host.dataset.images.transpose(0, 1).reshape(host.input_shape[0], -1)
        return imgs.mean(1), imgs.std(1)
    return host.mean.reshape(-1).cpu(), host.std.reshape(-1).cpu()


def gaussian_noise(host, n: int, seed: int = 0) -> torch.Tensor:
    """(n, C, H, W) Gaussian noise with :func:`channel_stats`' mean and std (unclipped)."""
    mean, std = channel_stats(host)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(int(n), *host.input_shape, generator=gen)
    return noise * std.view(-1, 1, 1) + mean.view(-1, 1, 1)
