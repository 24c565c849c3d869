"""The one noise image the papers feed a network, seeded and on the CPU.

The visualization-and-clustering paper defines one noise: "random Gaussian noise with the same
channel-wise mean and standard deviation" as the dataset (its Fig. 3). Its Table 1 ("random
noise" -> bird) and Fig. 8 (noise as a category, nearest to bird) do not say which noise they
use, and the paper links the two, so both use this same one here (unclipped: the paper does
not clip). Same ``seed`` -> the same images in every path (maximize's noise start, Table 1,
Algorithm 1's noise category, the bias explanation).
"""
from __future__ import annotations

import torch


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
