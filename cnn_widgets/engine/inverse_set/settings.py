"""The inverse-set solver's settings in one validated, frozen value (Hada & Carreira-Perpiñán,
Sec. 3.4): what the seeds (eq. 8), the sampling steps (eq. 10) and the full optimisation
(eq. 15) are run with. The calls keep the problem itself as arguments (units, ranges, G, E,
K, n, seed); everything about *how* it is solved is here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate as check
from ..core.errors import InvalidArgument, InvalidType
from ..core.types import CodeEncoder

FULL_MAX_STEPS = 15_000     # "all the way" cap: the paper's eq. 15 took about 13,000 steps


@dataclass(frozen=True)
class InverseSetSettings:
    """How an inverse set is sampled; every field is checked on construction.

    Objective: ``diversity`` "encoder" (eq. 5, distances in E(G(c))), "code" (eq. 13) or
    "none" (eq. 14), times ``diversity_weight``; ``diversity_form`` "scaled_mean" (the mean
    over pairs divided by a typical squared distance of the dataset) or "sum" (the paper's);
    ``prior_weight`` times ||c||^2 / (2 d), the generator's N(0, I) prior as a penalty (the
    codes of a generator only; 0 is the paper's eq. 8, which leaves codes free to reach norms
    far outside the prior's mass); ``min_norm_quantile``: codes kept at a norm of at least
    that quantile of the prior's ||c|| (projected steps; in d dimensions the prior's mass is
    a shell, and the penalty alone pulls codes towards the origin, where there is little of
    it; None: no floor); ``code_norm``: codes kept within code_norm * sqrt(d) of the origin
    (None: no bound); ``tv``: total variation weight (pixel mode only);
    ``margin``: the constraints aim at the range shrunk by margin * width on each side.

    Seeds (eq. 8): ``start`` "random" (N(0, I) codes; pixels: uniform), "same" (one code
    repeated, Sec. 4.2), a tensor of codes, or a code encoder (images -> codes, applied to noise
    images: the paper's start); outer iterations of ``inner_steps`` Adam steps (the paper:
    gradient descent) at rate ``lr``, mu from ``mu0`` times ``mu_factor`` per outer iteration,
    capped at ``mu_max`` (None: no cap), at most ``max_outer`` iterations (None: no cap) and
    ``max_steps`` steps (None: no cap; with both None, 15,000). ``full_seeds``: do not stop at
    feasibility but run "all the way" (Fig. 9): until all are inside and the eq. 15 objective
    stayed within ``tol`` (relative) over the last three outer iterations (two quiet ones
    in a row, no drift: Adam's steps make it jitter from one iteration to the next).

    Sampling (eq. 10): steps of length ``beta`` (None: 0.2 for codes, 0.05 for pixels),
    ``step`` "rms" (each code's gradient scaled to unit RMS) or "plain" (c - beta g, the
    paper's); at most ``max_sampling_steps`` (None: 10 per batch of K plus 50).
    """
    start: str | torch.Tensor | np.ndarray | CodeEncoder = "random"
    diversity: str = "encoder"
    diversity_weight: float = 1.0
    diversity_form: str = "scaled_mean"
    prior_weight: float = 10.0
    min_norm_quantile: float | None = 0.05
    code_norm: float | None = None
    tv: float = 0.05
    margin: float = 0.25
    mu0: float = 10.0
    mu_factor: float = 10.0
    mu_max: float | None = None
    inner_steps: int = 100
    max_outer: int | None = 6
    max_steps: int | None = None
    lr: float = 0.05
    full_seeds: bool = False
    tol: float = 1e-3
    beta: float | None = None
    step: str = "rms"
    max_sampling_steps: int | None = None

    def __post_init__(self):
        s = self.start
        if not (s in ("random", "same") if isinstance(s, str) else
                torch.is_tensor(s) or isinstance(s, np.ndarray) or callable(s)):
            raise InvalidArgument(f"start must be 'random', 'same', a tensor of codes or a code "
                                  f"encoder (images -> codes); got {s!r}")
        check.one_of("diversity", self.diversity, ("encoder", "code", "none"))
        check.one_of("diversity_form", self.diversity_form, ("scaled_mean", "sum"))
        check.one_of("step", self.step, ("rms", "plain"))
        for name in ("diversity_weight", "prior_weight", "tv", "tol"):
            check.number(name, getattr(self, name), at_least=0)
        for name in ("mu0", "lr"):
            check.number(name, getattr(self, name), above=0)
        check.number("mu_factor", self.mu_factor, at_least=1)
        check.number("margin", self.margin, at_least=0, below=0.5)
        if self.min_norm_quantile is not None:
            check.number("min_norm_quantile", self.min_norm_quantile, above=0, below=1)
        for name in ("code_norm", "beta"):
            if getattr(self, name) is not None:
                check.number(name, getattr(self, name), above=0)
        if self.mu_max is not None:
            check.number("mu_max", self.mu_max, at_least=self.mu0)
        check.count("inner_steps", self.inner_steps)
        check.optional_count("max_outer", self.max_outer)
        check.optional_count("max_steps", self.max_steps)
        check.optional_count("max_sampling_steps", self.max_sampling_steps, 0)
        if not isinstance(self.full_seeds, bool):
            raise InvalidType(f"full_seeds must be True or False; got {self.full_seeds!r}")

    def step_cap(self) -> int | None:
        """The seeds' step cap: ``max_steps``, or 15,000 when neither cap is set."""
        if self.max_outer is None and self.max_steps is None:
            return FULL_MAX_STEPS
        return self.max_steps


#: "all the way" (Fig. 9): seeds not stopped at feasibility, no cap on outer iterations, at
#: most 15,000 steps (the paper's eq. 15 needed about 13,000), mu capped at 1e6 (the paper's
#: mu <- 10 mu every 100 steps would overflow long before). For eq. 15 itself (all n codes
#: together) and for the seeds of Fig. 9's second block.
FULL_OPTIMISATION = InverseSetSettings(full_seeds=True, max_outer=None, max_steps=FULL_MAX_STEPS,
                                       mu_max=1e6)


def settings_or_default(settings, default: InverseSetSettings = InverseSetSettings()
                        ) -> InverseSetSettings:
    """``settings`` checked to be an :class:`InverseSetSettings` (None: ``default``)."""
    if settings is None:
        return default
    if not isinstance(settings, InverseSetSettings):
        raise InvalidType(f"settings must be an InverseSetSettings (e.g. InverseSetSettings("
                          f"beta=0.1)); got {type(settings).__name__}")
    return settings


__all__ = ["InverseSetSettings", "FULL_OPTIMISATION", "FULL_MAX_STEPS"]
