"""What the inverse-set sampler is compared with, on the same G and E (Sec. 4):

- ``restarts``: independent activation-maximisation restarts (eq. 2 through G): n random
  prior codes, each ascends the (range-scaled) sum of the units for a fixed number of Adam
  steps, no diversity term — the usual way to get "several" preferred inputs;
- ``full_optimisation``: eq. 15, all n codes optimised together with eq. 8 "all the way":
  whole outer iterations until every sample is inside and the objective has converged (the
  paper's Fig. 9, first block: about 13,000 gradient steps there);
- the ablations eq. 13 / eq. 14 are ``inverse_set(..., diversity="code" / "none")``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.grad import needs_grad
from .objective import initial_codes, mean_distance
from .problem import build_problem, in_ranges, optimising, total_variation
from .sampling import FULL_MAX_STEPS, seeds


@dataclass(frozen=True)
class Baseline:
    """n samples from a baseline: images (n, C, H, W), activations (n, P), features (n, D) in
    E's space, in_range (n,) bool, diversity (mean pairwise E distance of all n), steps.

    Full optimisation only: objective_trace, violation_trace (outer,) the eq. 15 objective and
    the largest range violation after each outer iteration; converged: the tolerance was met
    (False: stopped by max_steps / max_outer)."""
    name: str
    images: np.ndarray
    activations: np.ndarray
    features: np.ndarray
    in_range: np.ndarray
    diversity: float
    steps: int
    seconds: float
    objective_trace: np.ndarray | None = None
    violation_trace: np.ndarray | None = None
    converged: bool | None = None

    @property
    def share_in_range(self) -> float:
        return float(self.in_range.mean())

    @property
    def objective(self) -> float:
        """eq. 15's objective of the n samples: sum_{i,j} ||E_i - E_j||^2."""
        return pair_objective(self.features)


def pair_objective(features: np.ndarray) -> float:
    """sum over all ordered pairs (i, j) of ||f_i - f_j||^2 of (N, D) features (eq. 5 / 15),
    the measure the paper's Fig. 9 compares (float64)."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    centred = f - f.mean(0)
    return float(2 * len(f) * (centred ** 2).sum())


@needs_grad
def restarts(engine, units, ranges, generator=None, encoder=None, n: int = 500, *,
             steps: int = 100, lr: float = 0.05, seed: int = 1, tv: float = 0.05,
             code_norm: float | None = None, control: Control = NO_CONTROL) -> Baseline:
    """Independent activation-maximisation restarts: ``steps`` Adam steps on
    sum_p f_p(G(c)) / (z2_p - z1_p) from n prior codes (seed differs from the sampler's),
    codes kept in the same ball as the sampler's."""
    t0 = time.perf_counter()
    check.count("n", n), check.count("steps", steps), check.number("lr", lr, above=0)
    check.seed(seed), check.number("tv", tv, at_least=0)
    if code_norm is not None:
        check.number("code_norm", code_norm, above=0)
    prob, r = build_problem(engine, units, ranges, generator, encoder, 0.25, code_norm)
    with optimising(prob):
        z = initial_codes(prob, int(n), "random", seed).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for i in range(steps):
            x, f, _ = prob.forward(z)
            loss = -(f / prob.eps).sum()
            if prob.generator is None and tv > 0:
                loss = loss + tv * total_variation(x) * len(x)
            (z.grad,) = torch.autograd.grad(loss, [z])
            opt.step()
            with torch.no_grad():
                z.copy_(prob.project(z))
            control.step(i + 1, steps, "restarts")
        with torch.no_grad():
            x, f, feats = prob.forward(z)
    a = f.cpu().numpy().astype(np.float64)
    inside = in_ranges(a, r)
    fe = feats.cpu().numpy()
    # without a generator the images are the codes themselves, a leaf that requires grad
    return Baseline("activation-maximisation restarts", x.detach().cpu().numpy(), a, fe, inside,
                    mean_distance(fe), steps * int(n), time.perf_counter() - t0)


@needs_grad
def full_optimisation(engine, units, ranges, generator=None, encoder=None, n: int = 100, *,
                      start="random", seed: int = 0, max_outer: int | None = None,
                      inner_steps: int = 100, diversity: str = "encoder",
                      diversity_weight: float = 1.0, tv: float = 0.05, mu0: float = 10.0,
                      mu_factor: float = 10.0, lr: float = 0.05, margin: float = 0.25,
                      code_norm: float | None = None, tol: float = 1e-3,
                      max_steps: int = FULL_MAX_STEPS, mu_max: float = 1e6,
                      diversity_form: str = "scaled_mean",
                      control: Control = NO_CONTROL) -> tuple[Baseline, object]:
    """eq. 15: all n codes at once with eq. 8, run to convergence: whole outer iterations of
    ``inner_steps`` Adam steps until every sample is inside its range and the eq. 15
    objective changed by at most ``tol`` (relative) over the last outer iteration; capped at
    ``max_steps`` gradient steps (default 15,000, the paper needed about 13,000) and
    ``max_outer`` iterations (None: no cap); mu grows by ``mu_factor`` up to ``mu_max``.
    Returns (Baseline with the objective and violation per outer iteration, the Seeds)."""
    t0 = time.perf_counter()
    sd = seeds(engine, units, ranges, generator, encoder, K=n, start=start, seed=seed,
               max_outer=max_outer, inner_steps=inner_steps, stop_when_feasible=False,
               diversity=diversity, diversity_weight=diversity_weight, tv=tv, mu0=mu0,
               mu_factor=mu_factor, lr=lr, margin=margin, code_norm=code_norm, tol=tol,
               max_steps=max_steps, mu_max=mu_max, diversity_form=diversity_form,
               control=control)
    r = np.asarray(ranges, dtype=np.float64).reshape(-1, 2)
    a = sd.activations.astype(np.float64)
    inside = in_ranges(a, r)
    return Baseline("full optimisation (eq. 15)", sd.images, a, sd.features, inside,
                    mean_distance(sd.features), sd.steps, time.perf_counter() - t0,
                    sd.objective_trace, sd.violation_trace, sd.converged), sd
