"""The start and the objective of the inverse set (Hada & Carreira-Perpiñán, eq. 5-10): the
initial codes, and -sum ||E(G(c_i)) - E(G(c_j))||^2 in the package's scaled form or the paper's
sum, plus the generator's prior on the codes (TV on the pixels without a generator)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..core.borrow import lent
from ..core.data import as_images, to_tensor
from ..core.errors import InvalidArgument
from ..core.noise import gaussian_noise
from .problem import Problem, feature_scale, pair_sum, total_variation
from .settings import InverseSetSettings


def mean_distance(features: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between the rows of (N, D) features (0 for N < 2)."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    from scipy.spatial.distance import pdist  # scipy loads on first use, not import
    return float(pdist(f).mean()) if len(f) > 1 else 0.0


def initial_codes(prob: Problem, K: int, start, seed: int) -> torch.Tensor:
    """"random": prior codes N(0, I) (pixels: uniform [0, 1]); "same": one such code repeated,
    plus 1e-3 noise so symmetric terms can separate them (Sec. 4.2); a tensor (K, *shape); or
    a code encoder (module/callable images -> codes): the paper's E(K noise images)."""
    dev = prob.engine.device
    if callable(start) and prob.generator is not None:
        return encoded_noise(prob, K, start, seed)
    if torch.is_tensor(start) or isinstance(start, np.ndarray):
        if prob.generator is None:          # pixel mode: images, by the engine's image rules
            z = as_images(start, prob.code_shape).to(dev)
            z = z.repeat(K, 1, 1, 1) if len(z) == 1 else z
        else:
            z = to_tensor(start).to(dev, torch.float32)
        if z.shape == prob.code_shape:
            z = z[None].repeat(K, *([1] * len(prob.code_shape)))
        if tuple(z.shape) != (K, *prob.code_shape):
            raise InvalidArgument(f"start must have shape ({K}, {', '.join(map(str, prob.code_shape))})"
                             f" or {prob.code_shape}; got {tuple(z.shape)}")
        return z.clone()
    g = torch.Generator().manual_seed(int(seed))
    draw = (lambda m: torch.randn(m, *prob.code_shape, generator=g)) if prob.generator is not None \
        else (lambda m: torch.rand(m, *prob.code_shape, generator=g))
    if start == "random":
        z = draw(K)
    elif start == "same":
        z = draw(1).repeat(K, *([1] * len(prob.code_shape)))
        z = z + 1e-3 * torch.randn(z.shape, generator=g)
    else:
        raise InvalidArgument(f"start must be 'random', 'same' or a tensor of codes; got {start!r}")
    return prob.project(z).to(dev)


def encoded_noise(prob: Problem, K: int, code_encoder, seed: int) -> torch.Tensor:
    """(K, d) codes = code_encoder(K noise images of :func:`gaussian_noise`), the paper's
    "initialize C by passing K initial images X0 (random values) through the encoder"."""
    x = gaussian_noise(prob.engine, K, seed).to(prob.engine.device)
    with lent(code_encoder if isinstance(code_encoder, torch.nn.Module) else None), \
            torch.no_grad():
        z = code_encoder(x)
    z = z[0] if isinstance(z, (tuple, list)) else z
    if not torch.is_tensor(z) or tuple(z.shape) != (K, *prob.code_shape):
        got = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
        raise InvalidArgument(f"the code encoder must map (N, C, H, W) images to codes "
                              f"(N, {prob.code_shape[0]}); for {K} images it returned {got}")
    return prob.project(z.float()).detach()


class _Objective:
    """The diversity part of eq. 8 / eq. 10, the prior and the regulariser, one scale for the
    whole call."""

    def __init__(self, prob: Problem, settings: InverseSetSettings,
                 scale: float | Callable[[], float]):
        """``scale``: the typical squared distance, or a function computing it on first use
        (a pass over the dataset, after the seeds' start has been shown)."""
        self.prob, self.space, self.weight = prob, settings.diversity, settings.diversity_weight
        self.tv, self.prior = settings.tv, settings.prior_weight
        self.total = settings.diversity_form == "sum"
        self._scale = 1.0 if self.total else scale

    @property
    def scale(self) -> float:
        if callable(self._scale):
            self._scale = float(self._scale())
        return self._scale

    def vectors(self, z, feats):
        return feats if self.space == "encoder" else z.reshape(len(z), -1)

    def loss(self, z, x, feats, previous=None):
        """-(diversity within the batch [+ to the previous samples]) + prior_weight *
        mean ||c||^2 / (2 d) (codes) [+ tv * TV(x) (pixels)]."""
        out = z.new_zeros(())
        if self.space != "none":
            v = self.vectors(z, feats)
            div = pair_sum(v) * (len(v) ** 2 if self.total else 1)
            if previous is not None:
                div = div + pair_sum(v, previous) * (len(v) * len(previous) if self.total else 1)
            out = out - self.weight * div / self.scale
        if self.prob.generator is None:
            if self.tv > 0:
                out = out + self.tv * total_variation(x)
        elif self.prior > 0:
            c = z.reshape(len(z), -1)
            out = out + self.prior * (c * c).sum(1).mean() / (2 * c.shape[1])
        return out


def _start(prob: Problem, K: int, seed: int, settings: InverseSetSettings, forward=None
           ) -> tuple[torch.Tensor, _Objective]:
    """The K initial codes and the objective scaled for them (for seeds()); ``forward`` as
    :func:`~.problem.feature_scale` takes it."""
    z0 = initial_codes(prob, K, settings.start, seed)
    return z0, _Objective(prob, settings,
                          lambda: feature_scale(prob, settings.diversity, z0, forward))
