"""The pieces the inverse-set sampler optimises over: validated units and ranges, the generator
G and encoder E lent for one call, one forward pass giving (images, activations, features),
the two-sided constraints and the augmented-Lagrangian penalty with slacks (eq. 8).

Constraints, per unit p with range [z1, z2] and width eps = z2 - z1, both sides enforced
(the paper's transformed constraint bounds one side only):
    c_lo = (f - z1 - m) / eps >= 0,   c_hi = (z2 - m - f) / eps >= 0,   m = margin * eps,
so with margin = 1/4 the optimiser aims at the middle half of the range (the paper's
eps0 = eps/2 aims at the middle). Dividing by eps makes mu = 10 mean the same for any scale.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core import hooks
from ..core.borrow import lent, model_lock
from ..core.errors import InputShapeError, InvalidArgument, InvalidType
from ..core.model import ModelHost
from ..core.selection import default_layer_for


def parse_units(engine, units, ranges, allow_default: bool = False
                ) -> tuple[list[tuple[str, tuple[int, ...]]], np.ndarray]:
    """(layer, unit) or a list of them, and one (z1, z2) per unit -> resolved units, (P, 2).
    ``allow_default``: None for a range (or for all of them) is kept as a NaN row, for the
    caller to fill with a default."""
    if isinstance(units, tuple) and len(units) == 2 and isinstance(units[0], str):
        units = [units]
    units = list(units)
    default = None
    if allow_default:
        if ranges is None:
            ranges = [None] * len(units)
        if isinstance(ranges, (list, tuple)) and any(z is None for z in ranges):
            default = np.array([z is None for z in ranges])
            ranges = [(0.0, 1.0) if z is None else z for z in ranges]
    try:
        r = np.asarray(ranges, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(f"ranges must be one (z1, z2) or a list of them"
                              f"{' (None: the default)' if allow_default else ''}; got "
                              f"{ranges!r}") from None
    if r.shape == (2,):
        r = r[None]
    if r.ndim != 2 or r.shape[1] != 2:
        raise InvalidArgument(f"ranges must be one (z1, z2) or a list of them; got shape {r.shape}")
    if len(units) != len(r) or not units:
        raise InvalidArgument(f"need one (z1, z2) per unit: got {len(units)} unit(s) and "
                         f"{len(r)} range(s)")
    resolved = []
    for item in units:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidArgument(f"each unit must be (layer, unit), e.g. ('fc3', 3) or "
                             f"('conv2', (5, 4, 4)); got {item!r}")
        layer, unit = item
        info = engine.layer(layer)
        (u,) = engine.resolve_units(info.name, [unit] if isinstance(unit, (int, np.integer))
                                    else [tuple(unit)])
        resolved.append((info.name, u))
    bad = [(i, tuple(float(v) for v in z)) for i, z in enumerate(r)
           if not (np.isfinite(z).all() and z[0] < z[1])]
    if bad:
        raise InvalidArgument(f"each range needs finite z1 < z2; got {bad} (unit index, range)")
    if default is not None:
        r[default] = np.nan
    return resolved, r


@dataclass
class Problem:
    """Everything one inverse-set call optimises over; used inside ``engine.borrow()``."""
    engine: ModelHost
    units: list[tuple[str, tuple[int, ...]]]
    lo: torch.Tensor            # (P,)
    hi: torch.Tensor            # (P,)
    generator: nn.Module | None
    encoder_layer: str | None
    encoder_module: nn.Module | None
    code_shape: tuple[int, ...]
    margin: float = 0.25
    code_norm: float | None = None  # ||c|| <= code_norm * sqrt(d) (None: unbounded)
    min_norm: float | None = None   # ||c|| >= min_norm (None: no floor)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Valid inputs: pixels in [0, 1]; codes, if ``code_norm`` / ``min_norm`` are set, with
        a norm in [min_norm, code_norm * sqrt(d)] (each code scaled radially)."""
        if self.generator is None:
            return z.clamp(0.0, 1.0)
        if self.code_norm is None and self.min_norm is None:
            return z
        hi = None if self.code_norm is None else \
            self.code_norm * float(np.prod(self.code_shape)) ** 0.5
        norm = z.reshape(len(z), -1).norm(dim=1).clamp(min=1e-12)
        scale = norm.clamp(min=self.min_norm, max=hi) / norm
        return z * scale.reshape(-1, *([1] * (z.dim() - 1)))

    @property
    def eps(self) -> torch.Tensor:
        return self.hi - self.lo

    def images(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, d) -> images through G; in pixel mode z are the images."""
        return self.generator(z) if self.generator is not None else z

    def forward(self, z: torch.Tensor, from_images: bool = False):
        """(images (N, C, H, W), activations (N, P), encoder features (N, D)) of codes z, or of
        images z when ``from_images``."""
        e = self.engine
        x = z if from_images else self.images(z)
        layers = {name for name, _ in self.units}
        if self.encoder_layer is not None:
            layers.add(self.encoder_layer)
        last = max(layers, key=e.layer_names.index)
        got = hooks.run_capturing(e.model, e.normalize(x), sorted(layers), stop_after=last)
        f = torch.stack([got[name].reshape(x.shape[0], -1)[:, int(np.ravel_multi_index(
            u, e.layer(name).output_shape))] for name, u in self.units], dim=1)
        if self.encoder_layer is not None:
            feats = got[self.encoder_layer]
        else:
            assert self.encoder_module is not None      # E is a layer or a module
            feats = self.encoder_module(x)
        return x, f, feats.reshape(x.shape[0], -1)

    def constraints(self, f: torch.Tensor) -> torch.Tensor:
        """(N, P, 2) scaled constraint values c >= 0 (lower side, upper side)."""
        m = self.margin * self.eps
        return torch.stack([(f - self.lo - m) / self.eps, (self.hi - m - f) / self.eps], dim=-1)

    def inside(self, f: torch.Tensor) -> torch.Tensor:
        """(N,) bool: every unit within its true range [z1, z2]."""
        return ((f >= self.lo) & (f <= self.hi)).all(dim=1)


def in_ranges(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(N,) bool: every column of activations a (N, P) within its row of ranges r (P, 2)."""
    return ((a >= r[:, 0]) & (a <= r[:, 1])).all(1)  # type: ignore[return-value]  # (N,), not 0-d


def penalty(c: torch.Tensor, lam: torch.Tensor, mu: float) -> torch.Tensor:
    """Sum of the augmented-Lagrangian terms of eq. 8 with the slacks minimised out:
    s = max(0, c - lam/mu), so c - s = min(c, lam/mu) and each term is
    -lam (c - s) + mu/2 (c - s)^2."""
    r = torch.minimum(c, lam / mu)
    return (-lam * r + 0.5 * mu * r ** 2).sum()


def update_multipliers(c: torch.Tensor, lam: torch.Tensor, mu: float) -> torch.Tensor:
    """lam <- max(lam - mu c, 0) (the paper's update, = lam - mu (c - s))."""
    return torch.clamp(lam - mu * c, min=0.0)


def pair_sum(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ||a_i - b_j||^2 over all pairs (b = a: within a)."""
    b = a if b is None else b
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp(min=0).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per image, mean over the batch: sum |dx| + |dy| / (H W)."""
    tv = (x[..., 1:, :] - x[..., :-1, :]).abs().sum((1, 2, 3)) \
        + (x[..., :, 1:] - x[..., :, :-1]).abs().sum((1, 2, 3))
    return (tv / (x.shape[-1] * x.shape[-2])).mean()


def prior_norm_quantile(d: int, q):
    """Quantile(s) ``q`` of ||c|| for c ~ N(0, I_d) (a chi distribution with d degrees of
    freedom)."""
    from scipy.stats import chi  # scipy loads on first use, not import
    return chi.ppf(q, d)


def build_problem(engine, units, ranges, generator, encoder, margin,
                  code_norm: float | None = None, min_norm_quantile: float | None = None,
                  allow_default: bool = False) -> tuple[Problem, np.ndarray]:
    """Validate everything and move G (a copy, if on another device) next to the model.
    min_norm_quantile: codes kept at a norm of at least that quantile of the prior's ||c||;
    allow_default: ranges may be None (NaN rows, lo and hi NaN until the caller fills them)."""
    resolved, r = parse_units(engine, units, ranges, allow_default)
    dev = engine.device
    if generator is not None:
        if not isinstance(generator, nn.Module):
            raise InvalidType(f"generator must be an nn.Module mapping codes to images; got "
                            f"{type(generator).__name__}")
        code_dim = getattr(generator, "code_dim", None)
        if code_dim is None:
            raise InvalidArgument("the generator needs an int attribute code_dim (length of its codes)")
        param = next(generator.parameters(), None)
        if param is not None and param.device != dev:
            generator = _moved(generator, dev)
        code_shape: tuple[int, ...] = (int(code_dim),)
    else:
        code_shape = tuple(engine.input_shape)
    enc_layer, enc_module = None, None
    if encoder is None:
        enc_layer = default_layer_for(engine, "encoder")
    elif isinstance(encoder, str):
        enc_layer = engine.layer(encoder).name
    elif isinstance(encoder, nn.Module):
        enc_module = encoder
        param = next(encoder.parameters(), None)
        if param is not None and param.device != dev:
            enc_module = _moved(encoder, dev)
    else:
        raise InvalidType(f"encoder must be None, a layer name of the engine or an nn.Module; got "
                        f"{type(encoder).__name__}")
    min_norm = None
    if generator is not None and min_norm_quantile is not None:
        d = int(np.prod(code_shape))
        min_norm = float(prior_norm_quantile(d, min_norm_quantile))
        if code_norm is not None and code_norm * d ** 0.5 < min_norm:
            raise InvalidArgument(f"code_norm * sqrt(d) = {code_norm * d ** 0.5:.3g} is below the "
                                  f"floor {min_norm:.3g} that min_norm_quantile="
                                  f"{min_norm_quantile:g} sets: no code fits; raise code_norm or "
                                  f"lower (or drop) min_norm_quantile")
    prob = Problem(engine, resolved, torch.tensor(r[:, 0], dtype=torch.float32, device=dev),
                   torch.tensor(r[:, 1], dtype=torch.float32, device=dev), generator, enc_layer,
                   enc_module, code_shape, float(margin), code_norm, min_norm)
    return prob, r


def _moved(module: nn.Module, device) -> nn.Module:
    """A copy of ``module`` on ``device``, taken under its lock (no borrow's modes copied)."""
    with model_lock(module):
        return copy.deepcopy(module).to(device)


def check_generator_output(prob: Problem) -> None:
    if prob.generator is None:
        return
    with torch.no_grad():
        out = prob.generator(torch.zeros(1, *prob.code_shape, device=prob.engine.device))
    want = (1, *prob.engine.input_shape)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputShapeError(f"the generator must map (N, {prob.code_shape[0]}) codes to images "
                              f"of shape (N, {', '.join(map(str, want[1:]))}) like the model's "
                              f"inputs; for one code it returned {got}")


@contextmanager
def optimising(prob: Problem):
    """One call's optimisation: the model borrowed, G and E lent, gradients on, G's output
    shape checked first."""
    with prob.engine.borrow(), lent(prob.generator), lent(prob.encoder_module), torch.enable_grad():
        check_generator_output(prob)
        yield


FEATURE_IMAGES = 128    # dataset images whose encoder features scale the diversity


def feature_scale(prob: Problem, space: str, z0: torch.Tensor, forward=None,
                  dataset_feats: torch.Tensor | None = None) -> float:
    """Typical squared distance between two samples in the diversity space, so the diversity
    term is O(1) next to the penalty: the engine's dataset (E space; its first
    :data:`FEATURE_IMAGES` images, or ``dataset_feats`` when a pass over them gave them
    already), the prior (codes).
    ``forward``: (z, from_images) -> (x, f, feats) without gradients (default: one batch)."""
    if space == "code":
        return float(2 * np.prod(prob.code_shape)) if prob.generator is not None else \
            float(pair_sum(z0.reshape(len(z0), -1)).clamp(min=1e-6))
    if forward is None:
        def forward(z, from_images):
            with torch.no_grad():
                return prob.forward(z, from_images)
    data = prob.engine.dataset
    if data is not None and len(data) > 1:
        feats = dataset_feats if dataset_feats is not None else \
            forward(data.images[:FEATURE_IMAGES].to(prob.engine.device), True)[2]
    else:
        feats = forward(z0, False)[2]
    return max(float(pair_sum(feats)), 1e-6)


def step_direction(g: torch.Tensor) -> torch.Tensor:
    """Each row's gradient scaled to unit RMS, so a step of length beta moves every code by
    about beta per coordinate whatever the loss's scale."""
    flat = g.reshape(g.shape[0], -1)
    rms = flat.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1e-12)
    return (flat / rms).reshape(g.shape)
