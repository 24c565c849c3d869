"""The PPGN-style sampler the inverse-set paper compares with (its Fig. 2; Nguyen et al.
2017), through the same generator G: Langevin / MCMC steps in G's code space

    c <- c + eps1 * d log p(c)/dc + eps2 * d a(G(c))/dc + N(0, eps3^2 I),

with the prior p(c) = N(0, I) of the VAE code (d log p(c)/dc = -c) and a(x) the sum of the
units' activations. PPGN's chains give no control over the activation (the paper's Fig. 2:
their range "is not guaranteed to be in any fixed range"; the paper does not filter them).
Here the visited states are filtered to the ranges [z1, z2], so that both samplers answer the
same question; what that costs is the share of states inside and the chain steps per
accepted sample. With eps3^2 = 2 eps1 (the
default) the chain targets p(c) exp(eps2/eps1 * a(G(c))) (Langevin without a Metropolis test,
as in PPGN).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.types import Encoder, Generator, LayerUnits, Ranges, Seed
from .naturalness import Naturalness, check_judge, naturalness
from .objective import initial_codes, mean_distance
from .problem import build_problem, in_ranges, optimising


@dataclass(frozen=True)
class McmcSamples:
    """Accepted samples (states inside every range), at most n: images (m, C, H, W), codes
    (m, d), activations (m, P), features (m, D) in E's space; visited: chain states looked at
    (chains x steps run, after burn-in); accepted: how many of them were inside (all of them,
    also beyond n); chain_steps: gradient steps taken (chains x steps run); diversity: mean
    pairwise E distance of the returned samples (the measure of ``InverseSet.diversity``);
    naturalness: of the returned samples (:mod:`.naturalness`)."""
    images: np.ndarray
    codes: np.ndarray
    activations: np.ndarray
    features: np.ndarray
    ranges: np.ndarray
    visited: int
    accepted: int
    chain_steps: int
    diversity: float
    seconds: float
    naturalness: Naturalness

    @property
    def n(self) -> int:
        return int(len(self.images))

    @property
    def share_in_range(self) -> float:
        """Share of the visited states that lie inside the ranges."""
        return self.accepted / max(self.visited, 1)

    @property
    def steps_per_sample(self) -> float:
        """Chain steps per accepted sample (inf when none was accepted)."""
        return self.chain_steps / self.accepted if self.accepted else float("inf")


@needs_grad
def mcmc(engine: ModelHost, units: LayerUnits, ranges: Ranges, generator: Generator,
         encoder: Encoder = None, n: int = 500, *, chains: int = 10,
         steps: int = 200, eps1: float = 1e-2, eps2: float = 1e-2, eps3: float | None = None,
         burn_in: int = 0, seed: Seed = 0, stop_at_n: bool = True,
         judge: ModelHost | None = None,
         control: Control = NO_CONTROL) -> McmcSamples:
    """``chains`` Langevin chains of ``steps`` steps from prior codes (``seed``); every state
    after ``burn_in`` steps that lies inside all ``ranges`` is accepted, until ``n`` (with
    ``stop_at_n``, the chains stop there). eps3 default sqrt(2 eps1); ``judge`` as in
    :func:`.sampling.inverse_set`."""
    t0 = time.perf_counter()
    if generator is None:
        raise InvalidArgument("the MCMC sampler runs in a generator's code space: pass "
                              "generator=G (e.g. zoo.digits_generator())")
    n, chains, steps = check.count("n", n), check.count("chains", chains), check.count("steps", steps)
    burn_in = check.count("burn_in", burn_in, 0)
    eps1, eps2 = check.number("eps1", eps1, at_least=0), check.number("eps2", eps2, at_least=0)
    eps3 = (2 * eps1) ** 0.5 if eps3 is None else check.number("eps3", eps3, at_least=0)
    seed = check.seed(seed)
    judge = check_judge(engine, judge)
    prob, r = build_problem(engine, units, ranges, generator, encoder, 0.25, None)
    gen = torch.Generator().manual_seed(seed + 1)
    kept: list[tuple] = []
    visited = accepted = taken = 0
    with optimising(prob):
        z = initial_codes(prob, chains, "random", seed).requires_grad_(True)
        for t in range(steps):
            x, f, feats = prob.forward(z)
            (g,) = torch.autograd.grad(f.sum(), [z])
            if t >= burn_in:
                inside = in_ranges(f.detach().cpu().double().numpy(), r)
                visited += chains
                accepted += int(inside.sum())
                take = np.flatnonzero(inside)[:n - len(kept)]
                kept += [(x[i].detach().cpu().numpy(), z[i].detach().cpu().numpy(),
                          f[i].detach().cpu().numpy(), feats[i].detach().cpu().numpy())
                         for i in take]
            if stop_at_n and len(kept) >= n:
                break
            noise = torch.randn(z.shape, generator=gen).to(z.device)
            with torch.no_grad():
                z = z + eps1 * (-z) + eps2 * g + eps3 * noise
            z.requires_grad_(True)
            taken += 1
            control.step(t + 1, steps, "MCMC")
            prob.engine.hand_over()
    d = prob.code_shape[0]
    parts = [np.stack(p) if kept else np.zeros((0, *s)) for p, s in
             zip(zip(*kept) if kept else ((), (), (), ()),
                 [tuple(engine.input_shape), (d,), (len(r),), (0,)])]
    images, codes, acts, feats = parts
    images, codes = images.astype(np.float32), codes.astype(np.float32)
    return McmcSamples(images=images, codes=codes,
                       activations=acts.astype(np.float64), features=feats.astype(np.float32),
                       ranges=r, visited=visited, accepted=accepted,
                       chain_steps=taken * chains, diversity=mean_distance(feats),
                       seconds=time.perf_counter() - t0,
                       naturalness=naturalness(engine, images, codes, prob.units, r, judge))
