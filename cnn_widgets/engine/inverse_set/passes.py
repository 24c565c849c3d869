"""The model passes of one inverse-set call, in chunks of codes (or images) with a Stop check
before each chunk (and the model handed over to a waiting request), so Stop is seen within
about one chunk: sized from one code's forward pass
to take at most ``CHUNK_S`` (``core/chunks.py``, the engine's one policy), then doubled while
twice as many take at most that (halved when one took longer), from step to step.

A gradient taken in chunks is the batched one: each code goes through G and the model alone
(eval mode: no batch statistics couple the rows), and the terms that couple the codes (the
diversity, the prior) are evaluated once on the joined outputs, whose gradients then go back
through each chunk's graph. With ``eval_mode=False`` (the model's own modes, where batch norm
may couple the rows) every pass is one batch.

Also here: the default range of a unit (its 70th-90th percentile on the engine's dataset),
found by one chunked pass over the dataset that also gives the encoder features the
diversity is scaled by.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ..core import chunks
from ..core.control import Control
from ..core.errors import InvalidArgument
from .problem import FEATURE_IMAGES, Problem

DEFAULT_PERCENTILES = (70, 90)   # a unit's default range on the dataset


def default_range(values: np.ndarray) -> tuple[float, float]:
    """The 70th-90th percentile of a unit's values on the dataset; widened around it when the
    two coincide (a unit that is constant on most images), so that z1 < z2."""
    lo, hi = (float(v) for v in np.percentile(values, DEFAULT_PERCENTILES))
    if hi <= lo:
        pad = 1e-3 * max(1.0, abs(lo))
        lo, hi = lo - pad, hi + pad
    return lo, hi


class Passes:
    """The chunked passes of one call on ``prob``, checking ``control`` before each chunk.
    ``clock``: seconds (chunks are sized by it)."""

    def __init__(self, prob: Problem, control: Control,
                 clock: Callable[[], float] = time.perf_counter):
        self.prob, self.control, self.clock = prob, control, clock
        self.cap = prob.engine.batch_size
        self.size: dict[str, int] | None = None     # per kind, once the probe has run
        self.probe = None                           # its outputs

    def _sizes(self, z: torch.Tensor, from_images: bool) -> dict[str, int]:
        """Chunk sizes from one probe: a single code's (or image's) forward pass; a gradient
        chunk (forward and backward) takes about three times as long. So a quick model (a
        LeNet) goes in one batch, as it did before there were chunks; a slow one (a ResNet-50
        at 224 px on a CPU) a code or two at a time. With ``eval_mode=False`` (batch norm may
        couple the rows) always one batch. The probe's outputs are kept in ``self.probe``."""
        if self.size is None:
            if not self.prob.engine.eval_mode:
                self.size = {"forward": self.cap, "gradient": self.cap}
            else:
                self.control.check()
                began = self.clock()
                with torch.no_grad():
                    self.probe = self.prob.forward(z[:1], from_images)
                one = max(self.clock() - began, 1e-9)
                fit = (lambda share: max(1, min(self.cap, int(chunks.CHUNK_S / share))))
                self.size = {"forward": fit(one), "gradient": fit(3 * one)}
        return self.size

    def start(self, z: torch.Tensor):
        """(images, activations, features) of the seeds' start codes ``z`` for the first
        picture: the probe's pass is the first chunk, and the model is not handed over (the
        first picture goes first)."""
        size = self._sizes(z, False)["forward"]
        out: list = [] if self.probe is None else [self.probe]
        self.probe = None
        with torch.no_grad():
            for s in range(len(out), len(z), size):
                self.control.check()
                out.append(self.prob.forward(z[s:s + size]))
        return tuple(torch.cat([o[i] for o in out]) for i in range(3))

    def _between(self) -> None:
        """Before a chunk: a waiting request of another thread goes first (no hook of this
        call is registered between chunks), then Stop is checked."""
        self.prob.engine.hand_over()
        self.control.check()

    def _took(self, kind: str, seconds: float) -> None:
        """The next chunk's size after one took ``seconds`` (kept for the next pass)."""
        if self.prob.engine.eval_mode and self.size is not None:
            self.size[kind] = chunks.next_size(self.size[kind], seconds, self.cap)

    def forward(self, z: torch.Tensor, from_images: bool = False):
        """(images, activations, features) of codes ``z`` (images when ``from_images``), no
        gradients, in chunks."""
        out, s, size = [], 0, self._sizes(z, from_images)
        with torch.no_grad():
            while s < len(z):
                stop = min(s + size["forward"], len(z))
                self._between()
                began = self.clock()
                out.append(self.prob.forward(z[s:stop], from_images))
                self._took("forward", self.clock() - began)
                s = stop
        return tuple(torch.cat([o[i] for o in out]) for i in range(3))

    def with_graph(self, z: torch.Tensor) -> Step:
        """The forward pass of codes ``z`` (requiring grad) in chunks, each chunk's graph kept
        for :meth:`Step.gradient`."""
        size = self._sizes(z, False)["gradient"]
        bounds, outs, seconds = [(s, min(s + size, len(z))) for s in range(0, len(z), size)], [], []
        for s, e in bounds:
            self._between()
            began = self.clock()
            outs.append(self.prob.forward(z[s:e]))
            seconds.append(self.clock() - began)
        return Step(self, z, bounds, outs, seconds)

    def scan(self, images: torch.Tensor, feature_rows: int) -> tuple[np.ndarray, torch.Tensor]:
        """The units' values (N, P) float64 on dataset ``images`` (N, C, H, W) and the encoder
        features of the first ``feature_rows`` of them, in chunks."""
        values, feats, s = [], [], 0
        dev = self.prob.engine.device
        size = self._sizes(images[:1].to(dev), True)
        while s < len(images):
            stop = min(s + size["forward"], len(images))
            self._between()
            began = self.clock()
            with torch.no_grad():
                _, f, fe = self.prob.forward(images[s:stop].to(dev), from_images=True)
            self._took("forward", self.clock() - began)
            values.append(f.double().cpu().numpy())
            if s < feature_rows:
                feats.append(fe[:feature_rows - s])
            s = stop
        return np.concatenate(values), torch.cat(feats)


class Step:
    """One forward pass in chunks with their graphs: ``x``, ``f``, ``feats`` joined (leaves
    that require grad, for the loss); :meth:`gradient` sends a loss back through them."""

    def __init__(self, passes: Passes, z, bounds, outs, seconds):
        self.passes, self.z, self.bounds, self.outs, self.seconds = passes, z, bounds, outs, seconds
        self.x, self.f, self.feats = (torch.cat([o[i] for o in outs]).detach().requires_grad_(True)
                                      for i in range(3))

    def gradient(self, loss: torch.Tensor) -> torch.Tensor:
        """d loss / d z, for a loss of z, ``x``, ``f`` and ``feats``: their gradients sent
        back through each chunk, Stop checked between chunks."""
        p = self.passes
        leaves = [self.z, self.x, self.f, self.feats]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        g = grads[0] if grads[0] is not None else torch.zeros_like(self.z)
        worst = 0.0
        for (s, e), out, forward_s in zip(self.bounds, self.outs, self.seconds):
            p._between()
            began = p.clock()
            pairs = [(o, d[s:e]) for o, d in zip(out, grads[1:]) if d is not None and o.requires_grad]
            if pairs:
                (gc,) = torch.autograd.grad([o for o, _ in pairs], [self.z],
                                            grad_outputs=[d for _, d in pairs], allow_unused=True)
                if gc is not None:
                    g = g + gc
            worst = max(worst, forward_s + p.clock() - began)
        p._took("gradient", worst)
        self.outs = None            # the graphs are spent
        return g


def fill_default_ranges(passes: Passes, r: np.ndarray) -> tuple[np.ndarray, torch.Tensor | None]:
    """Ranges ``r`` (P, 2) with each NaN row (no range given) set to :func:`default_range`
    of its unit on the engine's dataset, and the encoder features of the dataset's first
    :data:`FEATURE_IMAGES` images from the same pass (None when every range was given)."""
    missing = np.isnan(r).any(1)
    if not missing.any():
        return r, None
    prob = passes.prob
    data = prob.engine.dataset
    if data is None:
        names = ", ".join(f"{n} {':'.join(map(str, u))}" for (n, u), m in zip(prob.units, missing)
                          if m)
        raise InvalidArgument(f"no range given for {names} and the engine has no dataset to "
                              f"place a default range on: pass (z1, z2)")
    values, feats = passes.scan(data.images, FEATURE_IMAGES)
    r = r.copy()
    for p in np.flatnonzero(missing):
        r[p] = default_range(values[:, p])
    prob.lo = torch.tensor(r[:, 0], dtype=torch.float32, device=prob.engine.device)
    prob.hi = torch.tensor(r[:, 1], dtype=torch.float32, device=prob.engine.device)
    return r, feats
