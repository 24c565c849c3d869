"""Backward reconstructions from one unit (the probing paper, Sec. 3), one backward pass each.

The image goes forward once; every ReLU's mask r_i and every max-pool's switches P_i are kept.
A delta at the unit then flows back to the input through W_i^T (the transposed convolution or
linear map) and P_i^T (unpooling with the forward switches); the methods differ only in what
happens at a ReLU, given the backward signal g arriving at its output:

- ``deconvnet`` (eq. 4-5): R(g), the ReLU applied to the backward flow, no forward mask;
- ``deconvnet_masks`` (eq. 6-7): r ⊙ R(g), the forward masks as well;
- ``random_masks`` (eq. 6-7): as ``deconvnet_masks`` but every conv/linear weight W_i is
  replaced by Gaussian noise with the mean and variance of the learned W_i (seeded); the
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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import validate as check
from ..core.borrow import uninterrupted
from ..core.control import NO_CONTROL, Control
from ..core.errors import InputShapeError, InvalidArgument, NotPiecewiseLinear, UnitOutOfRange
from ..core.grad import needs_grad
from ..core.layers import functional_relus
from ..core.shapes import pair
from .receptive_field import ReceptiveField, chain_upto, receptive_field, zero_padding

METHODS = ("deconvnet", "deconvnet_masks", "random_masks", "filter")
# Modules whose backward is the same linear map for every method (P_i^T for max-pools).
_LINEAR_BACKWARD = (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d,
                    nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Identity,
                    nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
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
def reconstruct(engine, x, unit, method: str | Sequence[str] = "deconvnet",
                control: Control = NO_CONTROL, seed: int = 0) -> Reconstruction:
    """Reconstructions of ``unit`` = (layer, channel, y, x) at one image ``x`` (C, H, W).

    method: one of :data:`METHODS`, ``"all"`` or a list; all asked-for methods share one
    forward pass and go backward together. seed: the random weights of ``random_masks``.
    """
    methods = _methods(method)
    seed = check.seed(seed)
    x = engine.prepare(x)
    if x.shape[0] != 1:
        raise InputShapeError(f"reconstruct takes one image {engine.input_shape}; got a batch "
                              f"of {x.shape[0]}")
    layer, coords = _parse_unit(engine, unit)
    links = chain_upto(engine, layer)
    exact, reason = engine.exactness(layer)
    gated = [m for m in methods if m != "filter"]
    if gated:
        _check_gates(engine, links, gated)
    spatial = len(coords) == 3
    field = receptive_field(engine, layer, *(coords[1:] if spatial else (0, 0)))
    with engine.borrow():
        random = {}
        if "random_masks" in methods:
            random = _random_weights(engine, links, int(seed))
        records, out = _forward(engine, links, x)
        activation = float(out[(0, *coords)])
        if field.height and field.width:
            grads = _backward(links, records, coords, methods, random, engine.device, control)
            grads = grads / engine.std      # through (x - mean) / std
        else:                               # a unit that sees only zero padding
            grads = torch.zeros(len(methods), *x.shape[1:], device=engine.device)
    images = {m: grads[i].cpu().numpy() for i, m in enumerate(methods)}
    return Reconstruction(images=images, x=x[0].cpu().numpy(), layer=layer, unit=coords,
                          activation=activation, field=field, exact=exact, reason=reason,
                          seed=int(seed))


def _check_gates(engine, links, methods):
    """The deconvnet rules are defined for ReLU and max-pool gates only: refuse others."""
    other = [f"{type(link.module).__name__} {link.name!r}" for link in links
             if not isinstance(link.module, (nn.ReLU, nn.Conv2d, nn.Linear) + _LINEAR_BACKWARD)]
    relus = functional_relus(engine.model)
    if other or relus:
        what = other + [f"functional ReLU {r!r} (no module to read its mask from)" for r in relus]
        raise NotPiecewiseLinear(f"{', '.join(methods)} need a network of conv/linear layers, "
                                 f"ReLU modules and pools up to the unit; this one has "
                                 f"{'; '.join(what)}. method='filter' gives the Jacobian there.")


def _forward(engine, links, x):
    """Run the chain once, without autograd; keep what each backward step needs."""
    h = engine.normalize(x)
    records = []
    with torch.no_grad():
        for link in links:
            h = h.reshape(1, *link.in_shape)
            m = link.module
            if isinstance(m, nn.ReLU):
                records.append(h > 0)                   # r_i
                h = F.relu(h)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                records.append(None)
                h = m(h)
            elif isinstance(m, nn.MaxPool2d):             # P_i: the switches
                out, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation,
                                        m.ceil_mode, return_indices=True)
                records.append((idx, h))
                h = out
            else:                                       # pools, flatten, BN, ...: autograd's vjp
                inp = h.clone() if getattr(m, "inplace", False) else h
                with torch.enable_grad():
                    out, vjp = uninterrupted(torch.func.vjp, m, inp)
                records.append(vjp)
                h = out.detach()
    return records, h.reshape(1, *links[-1].out_shape)


def _backward(links, records, coords, methods, random, device, control):
    """(M, *input_shape) backward flows from a delta at ``coords``, one row per method.

    The rows with the learned weights go back together as one batch, the random-weight row on
    its own. On the spatial grid a flow is kept as a box (top, bottom, left, right) of the
    layer's positions outside which it is zero: it starts as the unit's own position and
    grows layer by layer to the receptive field, so convolutions run on the box only."""
    last = links[-1].out_shape
    if len(coords) == 3:
        c, y, x = coords
        delta, box = torch.zeros(len(methods), last[0], 1, 1, device=device), (y, y + 1, x, x + 1)
        delta[:, c] = 1.0
    else:
        delta, box = torch.zeros(len(methods), *last, device=device), None
        delta[(slice(None), *coords)] = 1.0
    rules = [m for m in methods if m != "random_masks"]
    flows = []                                    # (rules, weights or None, signal, box)
    if rules:
        flows.append((rules, None, delta[:len(rules)], box))
    if "random_masks" in methods:
        flows.append((["random_masks"], random, delta[len(rules):], box))
    with torch.no_grad():
        for step, (link, rec) in enumerate(zip(reversed(links), reversed(records))):
            flows = [(r, w, *_step_back(link, rec, h, b, r, w)) for r, w, h, b in flows]
            control.step(step + 1, len(links), "backward")
    out = torch.cat([_full(h, b, links[0].in_shape) for _, _, h, b in flows])
    order = [m for r, _, _, _ in flows for m in r]
    return out[[order.index(m) for m in methods]]


def _full(g, box, shape):
    """The (M, *shape) tensor of a flow kept as ``box`` (None: already whole)."""
    if box is None:
        return g.reshape(len(g), *shape)
    out = g.new_zeros(len(g), *shape)
    out[:, :, box[0]:box[1], box[2]:box[3]] = g
    return out


def _step_back(link, rec, g, box, rules, weights):
    """Backward through one link: flow (M, ...) on ``box`` of the output -> flow on a box of
    the input (None = the whole tensor)."""
    m = link.module
    spatial = len(link.in_shape) == 3 and len(link.out_shape) == 3
    if box is not None and not spatial:
        g, box = _full(g, box, link.out_shape), None
    if box is None:
        g = g.reshape(len(g), *link.out_shape)
    if isinstance(m, nn.ReLU):
        mask = rec[0] if box is None else rec[0][:, box[0]:box[1], box[2]:box[3]]
        for i, rule in enumerate(rules):
            if rule != "filter":
                g[i].clamp_(min=0)                  # R(g): eq. 4-7
            if rule != "deconvnet":
                g[i].mul_(mask)                     # r ⊙ g: eq. 6-9
        return g, box
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        weight = m.weight if weights is None else weights[link.name]
        if box is not None:
            return _conv_back_on_box(m, weight, g, box, link.in_shape)
        return _transpose(m, weight, g, link.in_shape), None
    g = _full(g, box, link.out_shape)
    if isinstance(m, nn.MaxPool2d):                 # P^T: unpool with the forward switches
        idx, inp = rec
        k, st, p, d = (pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        g = torch.ops.aten.max_pool2d_with_indices_backward(
            g, inp.expand(len(g), *inp.shape[1:]), k, st, p, d, m.ceil_mode,
            idx.expand(len(g), *idx.shape[1:]))
        if box is None:
            return g, None
        new = _input_box(box, k, st, p, d, link.in_shape)
        return g[:, :, new[0]:new[1], new[2]:new[3]], new
    return torch.cat([uninterrupted(rec, g[i:i + 1])[0] for i in range(len(g))]), None


def _input_box(box, k, s, p, d, in_shape):
    """The input box a windowed layer's output box reads (clipped to the input)."""
    h, w = in_shape[1:]
    t0, t1 = max(box[0] * s[0] - p[0], 0), min((box[1] - 1) * s[0] - p[0] + d[0] * (k[0] - 1) + 1, h)
    l0, l1 = max(box[2] * s[1] - p[1], 0), min((box[3] - 1) * s[1] - p[1] + d[1] * (k[1] - 1) + 1, w)
    return t0, t1, l0, l1


def _conv_back_on_box(m, weight, g, box, in_shape):
    """W^T g for a flow on an output box: the transposed convolution of the box alone, placed
    at the input rows/columns its windows read and clipped to the image."""
    s, d = pair(m.stride), pair(m.dilation)
    p = zero_padding(m)
    res = F.conv_transpose2d(g, weight, None, s, 0, 0, m.groups, d)
    r0, c0 = box[0] * s[0] - p[0], box[2] * s[1] - p[1]
    h, w = in_shape[1:]
    t0, t1 = max(r0, 0), min(r0 + res.shape[2], h)
    l0, l1 = max(c0, 0), min(c0 + res.shape[3], w)
    return res[:, :, t0 - r0:t1 - r0, l0 - c0:l1 - c0], (t0, t1, l0, l1)


def _transpose(m, weight, g, in_shape):
    """W^T g for a batch of backward signals g (M, *out_shape)."""
    if isinstance(m, nn.Linear):
        return g @ weight
    return torch.nn.grad.conv2d_input((g.shape[0], *in_shape), weight, g, m.stride,
                                      zero_padding(m), m.dilation, m.groups)


def _random_weights(engine, links, seed) -> dict[str, torch.Tensor]:
    """Per conv/linear layer, Gaussian weights with the learned weights' mean and std; the
    same seed gives the same weights (cached per engine and layer)."""
    cache = _RANDOM_CACHE.setdefault(engine, {})
    out = {}
    weighted = [link for link in links if isinstance(link.module, (nn.Conv2d, nn.Linear))]
    for i, link in enumerate(weighted):
        w = link.module.weight
        key = (link.name, seed, w.data_ptr(), w._version)
        if key not in cache:
            g = torch.Generator().manual_seed(seed * 1_000_003 + i)
            mean, std = float(w.mean()), float(w.std()) if w.numel() > 1 else 0.0
            cache[key] = (torch.randn(w.shape, generator=g) * std + mean).to(w.device, w.dtype)
        out[link.name] = cache[key]
    return out
