"""What the inverse-set sampler is compared with, on the same G and E (Sec. 4):

- ``restarts``: independent activation-maximisation restarts (eq. 2 through G): n random
  prior codes, each ascends the (range-scaled) sum of the units for a fixed number of Adam
  steps, no diversity term — the usual way to get "several" preferred inputs;
- ``full_optimisation``: eq. 15, all n codes optimised together with eq. 8 "all the way":
  whole outer iterations until every sample is inside and the objective has converged (the
  paper's Fig. 9, first block: about 13,000 gradient steps there);
- the ablations eq. 13 / eq. 14 are ``inverse_set`` with ``InverseSetSettings(diversity="code"
  / "none")``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.types import Encoder, Generator, LayerUnits, Ranges, Seed
from .naturalness import Naturalness, check_judge, naturalness
from .objective import initial_codes, mean_distance
from .problem import build_problem, in_ranges, optimising, parse_units, total_variation
from .sampling import seeds
from .settings import FULL_OPTIMISATION, InverseSetSettings, settings_or_default


@dataclass(frozen=True)
class Baseline:
    """n samples from a baseline: images (n, C, H, W), codes (n, d) (None in pixel mode),
    activations (n, P), features (n, D) in E's space, in_range (n,) bool, diversity (mean
    pairwise E distance of all n), steps; naturalness: code norm against the prior's, share
    the judge calls the units' class, share inside (:mod:`.naturalness`).

    Full optimisation only: objective_trace, violation_trace (outer,) the eq. 15 objective and
    the largest range violation after each outer iteration; converged: the tolerance was met
    (False: stopped by max_steps / max_outer)."""
    name: str
    images: np.ndarray
    codes: np.ndarray | None
    activations: np.ndarray
    features: np.ndarray
    in_range: np.ndarray
    diversity: float
    steps: int
    seconds: float
    naturalness: Naturalness
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
def restarts(engine: ModelHost, units: LayerUnits, ranges: Ranges, generator: Generator = None,
             encoder: Encoder = None, n: int = 500, *,
             steps: int = 100, lr: float = 0.05, seed: Seed = 1, tv: float = 0.05,
             code_norm: float | None = None, judge: ModelHost | None = None,
             control: Control = NO_CONTROL) -> Baseline:
    """Independent activation-maximisation restarts: ``steps`` Adam steps on
    sum_p f_p(G(c)) / (z2_p - z1_p) from n prior codes (seed differs from the sampler's),
    codes kept in the same ball as the sampler's; ``judge`` as in :func:`.sampling.inverse_set`."""
    t0 = time.perf_counter()
    check.count("n", n), check.count("steps", steps), check.number("lr", lr, above=0)
    check.number("tv", tv, at_least=0), check.seed(seed)
    if code_norm is not None:
        check.number("code_norm", code_norm, above=0)
    judge = check_judge(engine, judge)
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
    # without a generator the images are the codes themselves, a leaf that requires grad
    images, fe = x.detach().cpu().numpy(), feats.cpu().numpy()
    codes = z.detach().cpu().numpy().reshape(len(z), -1) if prob.generator is not None else None
    return Baseline("activation-maximisation restarts", images, codes, a, fe, in_ranges(a, r),
                    mean_distance(fe), steps * int(n), time.perf_counter() - t0,
                    naturalness(engine, images, codes, prob.units, r, judge))


@needs_grad
def full_optimisation(engine: ModelHost, units: LayerUnits, ranges: Ranges,
                      generator: Generator = None, encoder: Encoder = None, n: int = 100, *,
                      seed: Seed = 0, settings: InverseSetSettings | None = None,
                      judge: ModelHost | None = None,
                      control: Control = NO_CONTROL) -> tuple[Baseline, object]:
    """eq. 15: all n codes at once with eq. 8, "all the way": whole outer iterations of
    ``inner_steps`` Adam steps until every sample is inside its range and the eq. 15
    objective stayed within ``tol`` (relative) over the last three outer iterations, or a cap.
    settings: default :data:`~.settings.FULL_OPTIMISATION` (at most 15,000 steps, the paper
    needed about 13,000; mu capped at 1e6); its ``full_seeds`` is taken as True.
    Returns (Baseline with the objective and violation per outer iteration, the Seeds)."""
    t0 = time.perf_counter()
    settings = replace(settings_or_default(settings, FULL_OPTIMISATION), full_seeds=True)
    judge = check_judge(engine, judge)
    sd = seeds(engine, units, ranges, generator, encoder, K=n, seed=seed, settings=settings,
               control=control)
    resolved, r = parse_units(engine, units, ranges)
    a = sd.activations.astype(np.float64)
    codes = sd.codes.cpu().numpy().reshape(len(a), -1) if generator is not None else None
    return Baseline("full optimisation (eq. 15)", sd.images, codes, a, sd.features,
                    in_ranges(a, r), mean_distance(sd.features), sd.steps,
                    time.perf_counter() - t0,
                    naturalness(engine, sd.images, codes, resolved, r, judge),
                    sd.objective_trace, sd.violation_trace, sd.converged), sd
