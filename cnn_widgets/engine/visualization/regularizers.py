"""What makes optimised images look natural (visualization paper, Sec. 2.4), each switchable
and weighted.

Penalties R(x) are subtracted from the objective, x* = argmax Φ(x) − Σ λ R(x) (eq. 2):
  :class:`AlphaNorm`       R_α(x) = ‖x − mean‖_α^α, α = 6 by default; the mean is the
                           dataset's per-channel mean (Mahendran & Vedaldi, the paper's
                           source), or per image and channel (``center="image"``)
  :class:`TotalVariation`  R_V^β(x) = Σ ((x_{i,j+1} − x_ij)² + (x_{i+1,j} − x_ij)²)^{β/2}
Both are averaged over the image's values (not summed) so one weight suits every image size.

:class:`GradientTrick` blurs, translates and rotates the gradient randomly (slightly) each
step before the update; :class:`Jitter` shifts the image randomly before the forward pass
(Lucid/Lucent's ``jitter``). Images are (N, C, H, W) in the engine's input space.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..core import validate as check
from ..core.errors import InvalidArgument, InvalidType
from ..core.noise import channel_stats


def _checked(reg, **rules) -> None:
    """Validate (and normalise to float/int) the numeric fields of a frozen regulariser:
    ``rules`` maps a field to ``validate.number`` bounds, or to "count"/"size" (int >= 1/>= 0)."""
    kind = type(reg).__name__
    for field, rule in rules.items():
        name, value = f"{kind} {field}", getattr(reg, field)
        if rule == "count":
            value = check.count(name, value)
        elif rule == "size":
            value = check.count(name, value, 0)
        else:
            value = check.number(name, value, **rule)
        object.__setattr__(reg, field, value)


@dataclass(frozen=True)
class AlphaNorm:
    """λ · mean |x − m|^α per image.

    center="dataset" (default): m is the dataset's per-channel mean (``mean``, (C,) in the
    engine's input space; :meth:`bind` fills it from the engine's dataset, else its
    normalisation mean), as Mahendran & Vedaldi subtract the data mean: the image's brightness
    stays near the data's ("constrained within an interval"). center="image": m is each
    image's own per-channel mean, which leaves the mean brightness free (the earlier reading).
    """
    weight: float = 1e-3
    alpha: float = 6.0
    enabled: bool = True
    center: str = "dataset"
    mean: tuple[float, ...] | None = None

    def __post_init__(self):
        # alpha < 1: |x - m|^alpha has an infinite gradient where x = m (NaN steps)
        _checked(self, weight={"at_least": 0}, alpha={"at_least": 1})
        if self.mean is not None:
            object.__setattr__(self, "mean", tuple(check.number("AlphaNorm mean", m)
                                                   for m in self.mean))
        if self.center not in ("dataset", "image"):
            raise InvalidArgument(f"AlphaNorm center must be 'dataset' or 'image'; got "
                                  f"{self.center!r}")

    def bind(self, engine) -> AlphaNorm:
        """This regulariser with ``mean`` taken from ``engine`` (dataset centring, mean unset)."""
        if self.center != "dataset" or self.mean is not None:
            return self
        return replace(self, mean=tuple(float(v) for v in channel_stats(engine)[0]))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) R_α, unweighted."""
        if self.center == "image":
            m = x.mean(dim=(2, 3), keepdim=True)
        elif self.mean is None:
            raise InvalidArgument("AlphaNorm(center='dataset') needs the dataset's channel mean: "
                                  "pass mean=(...) or bind(engine) (maximize does)")
        else:
            m = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
        return (x - m).abs().pow(self.alpha).flatten(1).mean(1)

    @property
    def description(self) -> str:
        return f"{self.weight:g}·α-norm(α={self.alpha:g}, {self.center} mean)"


@dataclass(frozen=True)
class TotalVariation:
    """λ · mean over pixels of ((Δ_x)² + (Δ_y)²)^{β/2} (forward differences, each channel)."""
    weight: float = 1e-2
    beta: float = 2.0
    enabled: bool = True
    eps: float = 1e-8          # keeps the gradient finite where the image is flat and β < 2

    def __post_init__(self):
        _checked(self, weight={"at_least": 0}, beta={"above": 0}, eps={"above": 0})

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        dx = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
        dy = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
        sq = dx * dx + dy * dy
        tv = sq.pow(self.beta / 2) if self.beta == 2 else (sq + self.eps).pow(self.beta / 2)
        return tv.flatten(1).mean(1)

    @property
    def description(self) -> str:
        return f"{self.weight:g}·TV(β={self.beta:g})"


@dataclass(frozen=True)
class GradientTrick:
    """Each step the gradient is blurred (Gaussian σ uniform in [0, blur] px), translated
    (whole pixels, uniform in [−translate, translate]) and rotated (uniform in ±rotate
    degrees), one draw per step for the whole batch."""
    blur: float = 0.5
    translate: int = 1
    rotate: float = 2.0
    enabled: bool = True

    def __post_init__(self):
        _checked(self, blur={"at_least": 0}, translate="size", rotate={"at_least": 0})

    def apply(self, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(4, generator=gen).tolist()
        sigma = self.blur * u[0]
        if sigma > 0.05:
            g = gaussian_blur(g, sigma)
        if self.translate > 0:
            t = 2 * self.translate + 1
            dy, dx = int(u[1] * t) - self.translate, int(u[2] * t) - self.translate
            g = torch.roll(g, shifts=(dy, dx), dims=(2, 3))
        if self.rotate > 0:
            g = rotate(g, (2 * u[3] - 1) * self.rotate)
        return g

    @property
    def description(self) -> str:
        return f"gradient blur≤{self.blur:g}px, shift≤{self.translate}px, rotate≤{self.rotate:g}°"


@dataclass(frozen=True)
class Jitter:
    """Shift the image by a random whole-pixel offset in [0, d) on each axis before the
    forward pass, zero-filled (same size), like Lucent's ``transform.jitter(d)``."""
    d: int = 8
    enabled: bool = True

    def __post_init__(self):
        _checked(self, d="count")

    def transform(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        dy, dx = torch.randint(0, self.d, (2,), generator=gen).tolist()
        if dy == 0 and dx == 0:
            return x
        h, w = x.shape[2:]
        return F.pad(x, (dx, 0, dy, 0))[:, :, :h, :w]

    @property
    def description(self) -> str:
        return f"jitter({self.d})"


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding."""
    r = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_mode = "reflect" if min(x.shape[2:]) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=pad_mode), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=pad_mode), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (N, C, H, W) about the centre, counter-clockwise as displayed (bilinear, zeros
    outside)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def split(regularizers, engine=None):
    """(penalties, gradient tricks, input transforms) among the enabled ``regularizers``;
    penalties with a ``bind`` are bound to ``engine`` (its data statistics) when given."""
    regs = [r for r in (regularizers or ()) if getattr(r, "enabled", True)]
    for r in regs:
        if not any(hasattr(r, a) for a in ("penalty", "apply", "transform")):
            raise InvalidType(f"unknown regulariser {r!r}: expected AlphaNorm, TotalVariation, "
                            f"GradientTrick or Jitter from cnn_widgets.engine.regularizers")
    penalties = [r.bind(engine) if engine is not None and hasattr(r, "bind") else r
                 for r in regs if hasattr(r, "penalty")]
    return (penalties, [r for r in regs if hasattr(r, "apply")],
            [r for r in regs if hasattr(r, "transform")])
