"""A small image generator G for the inverse-set sampler: the decoder of a VAE trained by the
package on the embedded digits (deterministic, cached like ``pretrained.lenet_digits``).

``digits_generator()`` returns G: codes (N, code_dim) -> images (N, 1, 28, 28) in [0, 1].
Codes follow the VAE's prior N(0, I), so ``torch.randn(N, G.code_dim)`` gives digits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import cache
from .digits import SPLIT_SEED, TEST_FRACTION, digits
from .training import deterministic

CODE_DIM = 16
# Keyword arguments of train_vae. Part of the cache key: editing them retrains.
RECIPE = {"code_dim": CODE_DIM, "epochs": 30, "batch_size": 64, "lr": 3e-3, "seed": 0}


class DigitsDecoder(nn.Module):
    """G: (N, code_dim) codes -> (N, 1, 28, 28) images in [0, 1] (sigmoid output)."""
    model_card: dict        # set by digits_generator()

    def __init__(self, code_dim: int = CODE_DIM):
        super().__init__()
        self.code_dim = int(code_dim)
        self.fc = nn.Linear(code_dim, 64 * 7 * 7)
        self.relu0 = nn.ReLU()
        self.unflatten = nn.Unflatten(1, (64, 7, 7))
        self.up1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)     # 32 x 14 x 14
        self.relu1 = nn.ReLU()
        self.up2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)      # 1 x 28 x 28
        self.out = nn.Sigmoid()

    def forward(self, c):
        h = self.unflatten(self.relu0(self.fc(c)))
        return self.out(self.up2(self.relu1(self.up1(h))))


class DigitsEncoder(nn.Module):
    """The VAE's encoder q(c | x): (N, 1, 28, 28) -> mean and log-variance, each (N, code_dim).
    Only used for training; the sampler's encoder E is a classifier's conv layers."""

    def __init__(self, code_dim: int = CODE_DIM):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1),
                                  nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(64 * 7 * 7, 2 * code_dim)

    def forward(self, x):
        mean, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mean, logvar


def train_vae(x_train: torch.Tensor, *, code_dim: int, epochs: int, batch_size: int, lr: float,
              seed: int) -> tuple:
    """Train a VAE on (N, 1, 28, 28) images in [0, 1] with Adam (binary cross-entropy + KL,
    summed per image); returns (decoder in eval mode, mean loss per image of each epoch).

    Deterministic: weights, shuffling and the reparameterisation noise come from ``seed``; one
    CPU thread, so the same call gives bitwise-identical weights on one machine.
    """
    with deterministic(seed):
        enc, dec = DigitsEncoder(code_dim), DigitsDecoder(code_dim)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr)
        n, losses = x_train.shape[0], []
        for _ in range(epochs):
            order, total = torch.randperm(n, generator=gen), 0.0
            for s in range(0, n, batch_size):
                xb = x_train[order[s:s + batch_size]]
                mean, logvar = enc(xb)
                eps = torch.randn(mean.shape, generator=gen)
                recon = dec(mean + eps * (0.5 * logvar).exp())
                rec = F.binary_cross_entropy(recon, xb, reduction="sum")
                kl = -0.5 * (1 + logvar - mean ** 2 - logvar.exp()).sum()
                loss = (rec + kl) / xb.shape[0]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * xb.shape[0]
            losses.append(total / n)
    dec.eval()
    return dec, losses


def digits_generator(*, retrain: bool = False, verbose: bool = False) -> DigitsDecoder:
    """G for the digits default: the decoder of a VAE trained on the 1437 training digits
    (``digits()``), shipped in the package; else (``retrain=True``, a damaged install) trained
    on the CPU (about 20 s on one core) and cached in ``cache.cache_dir()``.
    ``G.model_card`` says how it was made."""
    recipe = {"model": "DigitsVAE", "train": RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    def build():       # its initial weights are overwritten: leave the caller's RNG alone
        with torch.random.fork_rng(devices=[]):
            return DigitsDecoder(RECIPE["code_dim"])

    def train(dec):
        trained_dec, losses = train_vae(digits().x_train, **RECIPE)
        dec.load_state_dict(trained_dec.state_dict())
        return {"final_loss": losses[-1]}

    dec, meta, hit, path = cache.trained(
        "digits-vae", recipe, build, train, retrain=retrain,
        verbose=verbose, announce="digits VAE: training on the 1437 training digits ...",
        what="the generator")
    if verbose:
        source = "shipped" if cache.is_shipped(path) else "cache" if hit else "fresh"
        print(f"digits VAE decoder: loss {meta['final_loss']:.1f} per image, trained in "
              f"{meta['trained_seconds']:.1f} s ({source})")
    dec.model_card = {"name": "VAE decoder on scikit-learn digits", "code_dim": dec.code_dim,
                      "recipe": recipe, "from_cache": hit, "cache_file": str(path),
                      "shipped": cache.is_shipped(path), **meta}
    return dec
