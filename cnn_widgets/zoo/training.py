"""One small deterministic training recipe for image classifiers, and accuracy."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift every image of (N, C, H, W) by its own random whole-pixel offset in
    [-max_shift, max_shift] along each axis, filling uncovered pixels with 0."""
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)            # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)            # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around the channel slice put the channel axis last: (N, H, W, C)
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class Recipe(TypedDict):
    """The keyword arguments of :func:`train_classifier` (part of every cache key)."""
    epochs: int
    batch_size: int
    lr: float
    seed: int
    augment_shift: int


def train_classifier(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, *,
                     epochs: int, batch_size: int, lr: float, seed: int,
                     augment_shift: int = 2) -> list[float]:
    """Train ``model`` in place (from its current weights) with Adam and cross-entropy on
    logits; returns the mean training loss of each epoch and leaves the model in eval mode.

    x_train: float (N, C, H, W) on any device (moved to the model's); y_train: int64 (N,).
    Shuffling and shifts draw from a generator seeded with ``seed``, and any randomness
    inside the model (dropout) from the global RNG seeded with ``seed`` for the duration
    of the call only. On the CPU training runs on one thread, so the same starting weights
    and call give bitwise-identical weights on one machine whatever its thread setting.
    """
    with deterministic(seed, one_thread=next(model.parameters()).device.type == "cpu"):
        return _train(model, x_train, y_train, epochs, batch_size, lr, seed, augment_shift)


@contextmanager
def deterministic(seed: int, one_thread: bool = True) -> Iterator[None]:
    """The global RNG seeded with ``seed`` and (if ``one_thread``) one CPU thread, for the
    duration of the block; the caller's RNG state and thread count are restored after."""
    threads = torch.get_num_threads()
    # One thread: intra-op parallelism barely helps a model this small, and busy cores
    # (other processes, a notebook kernel) make multi-threaded runs many times slower.
    if one_thread:
        torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):   # the caller's global RNG state is kept
            torch.manual_seed(seed)
            yield
    finally:
        if one_thread:
            torch.set_num_threads(threads)


def _train(model, x_train, y_train, epochs, batch_size, lr, seed, augment_shift) -> list[float]:
    device = next(model.parameters()).device
    x_train, y_train = x_train.to(device), y_train.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = x_train.shape[0]
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = random_shift(x_train[idx], augment_shift, generator)
            loss = F.cross_entropy(model(xb), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * idx.numel()
        losses.append(total / n)
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of (N, C, H, W) images whose arg-max logit equals the int64 label; the model's
    mode is restored afterwards."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        correct += int((model(xb).argmax(1).cpu() == y[start:start + batch_size].cpu()).sum())
    model.train(was_training)
    return correct / x.shape[0]
