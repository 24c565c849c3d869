"""Backward reconstructions from one unit (the probing paper, Sec. 3), on any ReLU/max-pool graph.

The image goes forward once through the model's graph (:mod:`~cnn_widgets.engine.core.graph`),
with every ReLU *call* (a module, a module called twice, a functional ``F.relu``) replaced by a
ReLU that keeps its forward mask r_i. A delta at the unit then flows back to the input: autograd
supplies W_i^T (transposed convolutions and linear maps), P_i^T (unpooling with the forward
max-pool switches), BatchNorm's scaling, and gives the signal of a residual add or a
concatenation to all of its inputs, as the transposed linear map does. The methods differ only
in what a ReLU call does to the backward signal g arriving at its output:

- ``deconvnet`` (eq. 4-5): R(g), the ReLU applied to the backward flow, no forward mask;
- ``deconvnet_masks`` (eq. 6-7): r ⊙ R(g), the forward masks as well;
- ``random_masks`` (eq. 6-7): as ``deconvnet_masks`` but every conv/linear module's weight W_i
  goes backward as Gaussian noise with the mean and variance of the learned W_i (seeded); the
  masks and switches still come from the real forward pass;
- ``filter`` (eq. 8-9): r ⊙ g, so the result is exactly the input gradient of the unit, the
  local linear filter the image activates (tested against autograd).

With the paper's layers x_i = r_i ⊙ (W_i P_i x_{i-1} + b_i), the R of eq. 4-7 taken after
W_i^T lands on the output of the previous layer's ReLU, where it is applied here (R commutes
with unpooling); eq. 4 for i = 1 would also rectify the image itself, which we do not, as in
Zeiler and Fergus' deconvnet. Everything is returned in the engine's input space (the flow
continues through the mean/std normalisation). Every reconstruction is zero outside the
unit's receptive field. Other gates than ReLU and max-pool (LeakyReLU, sigmoid, ...) are
refused for the three deconvnet methods; ``filter`` then is the Jacobian, flagged not exact.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InputShapeError, InvalidArgument, NotPiecewiseLinear, UnitOutOfRange
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.types import Images, LayerUnit, Methods, Seed
from .receptive_field import ReceptiveField, receptive_field, zero_padding

METHODS = ("deconvnet", "deconvnet_masks", "random_masks", "filter")
_OTHER_GATES = ("LeakyReLU", "ReLU6", "Hardtanh", "PReLU", "RReLU", "ELU", "CELU", "SELU")
_RANDOM_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Reconstruction:
    """Backward reconstructions of one unit at one image.

    images: method -> (C, H, W) float32 in the engine's input space; x: the image (C, H, W);
    unit: (channel, y, x) (or (index,) for a layer without a grid); activation: the unit's
    value; field: its receptive field; exact / reason: whether ``filter`` is the exact local
    linear filter (ReLU/max-pool network) or only the Jacobian.
    """
    images: dict[str, np.ndarray]
    x: np.ndarray
    layer: str
    unit: tuple[int, ...]
    activation: float
    field: ReceptiveField
    exact: bool
    reason: str
    seed: int

    @property
    def image(self) -> np.ndarray:
        """The reconstruction when one method was asked for."""
        if len(self.images) != 1:
            raise InvalidArgument(f"several methods were computed ({', '.join(self.images)}); "
                             "use .images[method]")
        return next(iter(self.images.values()))

    def crop(self, method: str) -> np.ndarray:
        """The reconstruction cut to the receptive field, (C, h, w)."""
        rows, cols = self.field.slices
        return self.images[method][:, rows, cols]


def _methods(method) -> tuple[str, ...]:
    names = METHODS if method == "all" else (method,) if isinstance(method, str) else tuple(method)
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise InvalidArgument(f"method must be one of {METHODS}, 'all' or a list of them; got {method!r}")
    return names


def _parse_unit(engine, unit):
    """(layer, channel, y, x) or (layer, (c, y, x)) or (layer, flat index) -> (layer, coords)."""
    if not isinstance(unit, (tuple, list)) or len(unit) < 2 or not isinstance(unit[0], str):
        raise UnitOutOfRange(f"unit must be (layer, channel, y, x), (layer, (channel, y, x)) or "
                             f"(layer, flat index); got {unit!r}")
    layer = engine.layer(unit[0]).name
    rest = unit[1] if len(unit) == 2 else tuple(unit[1:])
    if isinstance(rest, list):
        rest = tuple(rest)
    (coords,) = engine.resolve_units(layer, rest)
    return layer, coords


@needs_grad
def reconstruct(engine: ModelHost, x: Images, unit: LayerUnit | tuple[str, int, int, int],
                method: Methods = "deconvnet", control: Control = NO_CONTROL,
                seed: Seed = 0) -> Reconstruction:
    """Reconstructions of ``unit`` = (layer, channel, y, x) at one image ``x`` (C, H, W).

    method: one of :data:`METHODS`, ``"all"`` or a list; all asked-for methods share one
    forward pass, then go backward one after another. seed: the random weights of
    ``random_masks``.
    """
    methods = _methods(method)
    seed = check.seed(seed)
    x = engine.prepare(x)
    if x.shape[0] != 1:
        raise InputShapeError(f"reconstruct takes one image {engine.input_shape}; got a batch "
                              f"of {x.shape[0]}")
    layer, coords = _parse_unit(engine, unit)
    graph = engine.require_graph("reconstructions")
    exact, reason = engine.exactness(layer)
    upstream = graph.upstream(layer)
    gated = [m for m in methods if m != "filter"]
    if gated:
        _check_gates(upstream, gated, exact, reason)
    spatial = len(coords) == 3
    field = receptive_field(engine, layer, *(coords[1:] if spatial else (0, 0)))
    with engine.borrow():
        random = _random_weights(engine, int(seed)) if "random_masks" in methods else None
        activation, grads = _flows(engine, layer, coords, x, upstream, methods, random, control)
        if not (field.height and field.width):      # a unit that sees only zero padding
            grads = torch.zeros_like(grads)
    images = {m: grads[i].cpu().numpy() for i, m in enumerate(methods)}
    return Reconstruction(images=images, x=x[0].cpu().numpy(), layer=layer, unit=coords,
                          activation=activation, field=field, exact=exact, reason=reason,
                          seed=int(seed))


def _check_gates(upstream, methods, exact, reason):
    """The deconvnet rules are defined for ReLU and max-pool gates only: refuse others."""
    other = [f"{c.kind} {c.name!r}" for c in upstream if c.kind in _OTHER_GATES]
    if not exact or other:
        why = "; ".join(other) if other else reason.split(": ", 1)[-1]
        raise NotPiecewiseLinear(f"{', '.join(methods)} need a network of conv/linear layers, "
                                 f"ReLUs and pools up to the unit; this one has {why}. "
                                 "method='filter' gives the Jacobian there.")


class _Rule:
    """Which method the backward pass in progress computes (read by the gates' backward)."""
    method = "filter"
    random: dict | None = None


class _GatedReLU(torch.autograd.Function):
    """ReLU forward; backward by the current method's rule at this call: R(g), r ⊙ R(g) or
    r ⊙ g (eq. 4-9)."""

    @staticmethod
    def forward(ctx, h, rule):
        mask = h > 0
        ctx.save_for_backward(mask)
        ctx.rule = rule
        return h * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        method = ctx.rule.method
        if method != "filter":
            g = g.clamp(min=0)
        if method != "deconvnet":
            g = g * mask
        return g, None


class _SwitchedWeights(torch.autograd.Function):
    """A conv/linear module forward with its learned weights; backward W^T with the random
    weights while ``random_masks`` is computed."""

    @staticmethod
    def forward(ctx, h, module, name, rule):
        ctx.module, ctx.name, ctx.rule, ctx.in_shape = module, name, rule, h.shape
        return module(h)

    @staticmethod
    def backward(ctx, g):
        m = ctx.module
        w = ctx.rule.random[ctx.name] if ctx.rule.method == "random_masks" else m.weight
        if isinstance(m, nn.Linear):
            return g @ w, None, None, None
        return (torch.nn.grad.conv2d_input(ctx.in_shape, w, g, m.stride, zero_padding(m),
                                           m.dilation, m.groups), None, None, None)


def _substitutes(upstream, rule, random):
    subs = {}
    for call in upstream:
        if call.kind == "ReLU":
            subs[call.name] = lambda fn, args, kwargs: _GatedReLU.apply(args[0], rule)
        elif random is not None and call.module in random:
            subs[call.name] = (lambda name: lambda fn, args, kwargs: _SwitchedWeights.apply(
                args[0], fn, name, rule))(call.module)
    return subs


def _flows(engine, layer, coords, x, upstream, methods, random, control):
    """(the unit's activation, (M, *input_shape) backward flows, one per method)."""
    rule = _Rule()
    rule.random = random
    gated = any(m != "filter" for m in methods)
    subs = _substitutes(upstream, rule, random) if gated else {}
    xg = x.detach().clone().requires_grad_(True)
    idx = int(np.ravel_multi_index(coords, engine.layer(layer).output_shape))
    with torch.enable_grad():
        got = hooks.layer_value(engine.model, engine.normalize(xg), layer, subs)
        value = got.reshape(-1)[idx]
        grads = []
        for i, method in enumerate(methods):
            rule.method = method
            (g,) = torch.autograd.grad(value, xg, retain_graph=i < len(methods) - 1)
            grads.append(g[0])
            control.step(i + 1, len(methods), "backward")
    return float(value.detach()), torch.stack(grads)


def _random_weights(engine, seed) -> dict[str, torch.Tensor]:
    """Per conv/linear module (in forward order), Gaussian weights with the learned weights'
    mean and std; the same seed gives the same weights (cached per engine and module)."""
    cache = _RANDOM_CACHE.setdefault(engine, {})
    modules = dict(engine.model.named_modules())
    weighted = [n for n in dict.fromkeys(c.module for c in engine.graph.calls if c.module)
                if isinstance(modules[n], (nn.Conv2d, nn.Linear))]
    out = {}
    for i, name in enumerate(weighted):
        w = modules[name].weight
        mean, std = float(w.mean()), float(w.std()) if w.numel() > 1 else 0.0
        key = (name, seed, tuple(w.shape), mean, std)    # by value: .data edits bump no version
        if key not in cache:
            for old in [k for k in cache if k[:2] == key[:2]]:      # weights since changed
                del cache[old]
            g = torch.Generator().manual_seed(seed * 1_000_003 + i)
            cache[key] = (torch.randn(w.shape, generator=g) * std + mean).to(w.device, w.dtype)
        out[name] = cache[key]
    return out
