"""Etalons (Molchanov et al.): the exact affine map f_p(x) = <W_p(x), x> + b_p(x) of a unit.

Two ways to compute the same W and b:
- ``fast``: batched autograd. The input is repeated once per unit, the forward pass stops at
  the unit's layer, and one backward pass gives every unit's W for a chunk of units; b
  follows as f(x) - <W, x>.
- ``paper``: Algorithm 1 as written. Record ReLU masks and max-pool choices for x, zero the
  biases of a copy, feed the one-hot coordinate images e_i through it with the recorded masks
  and choices re-applied (W_i = f_p(e_i)), and feed the zero image through the biased model
  the same way (b = f_p(0)).
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import hooks
from .control import NO_CONTROL, Control
from .errors import NotPiecewiseLinear
from .layers import functional_relus
from .results import Etalons

METHODS = ("fast", "paper")
_MASKED = (nn.ReLU, nn.LeakyReLU)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d)


def etalons(engine, x, layer: Optional[str] = None, units=None, method: str = "fast",
            control: Control = NO_CONTROL, one_hot_batch: Optional[int] = None) -> Etalons:
    """Etalons of ``units`` of ``layer`` (default: the logits) at every input in ``x``.

    one_hot_batch: for ``method="paper"``, how many coordinate images go through at once
    (1 = one at a time, as written in the paper; default: the engine's batch size).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    x = engine.prepare(x)
    layer = engine.layer(layer).name
    units = engine.resolve_units(layer, units)
    if method == "fast":
        W, out = _fast(engine, x, layer, units, control)
        b = out.double() - (W.double() * x[:, None].double()).flatten(2).sum(-1)
        exact, reason = engine.exactness()
    else:
        W, b, out = _paper(engine, x, layer, units, control, one_hot_batch or engine.batch_size)
        exact, reason = True, "Algorithm 1: masks and max-pool choices replayed"
    return Etalons(W=W.cpu().numpy(), b=b.cpu().numpy().astype(np.float32),
                   out=out.cpu().numpy(), x=x.cpu().numpy(), layer=layer, units=units,
                   exact=exact, reason=reason, method=method)


def _fast(engine, x, layer, units, control):
    """W (N, P, *input_shape) and out (N, P): one forward+backward per chunk of units."""
    n, p = x.shape[0], len(units)
    idx = engine.flat_index(layer, units)
    per_pass = max(1, engine.batch_size // n) if n <= engine.batch_size else 1
    W = torch.empty(n, p, *engine.input_shape, device=engine.device)
    out = torch.empty(n, p, device=engine.device)
    with engine.borrow(), torch.enable_grad():
        for i0 in range(0, n, max(1, engine.batch_size)):
            xs = x[i0:i0 + engine.batch_size]
            for p0 in range(0, p, per_pass):
                sel_idx = idx[p0:p0 + per_pass]
                k = sel_idx.numel()
                xr = xs.repeat_interleave(k, 0).requires_grad_(True)        # (n*k, ...)
                acts = engine.layer_output(xr, layer).view(xs.shape[0], k, -1)
                sel = acts.gather(2, sel_idx.view(1, k, 1).expand(xs.shape[0], k, 1))[..., 0]
                (grad,) = torch.autograd.grad(sel.sum(), xr)
                W[i0:i0 + len(xs), p0:p0 + k] = grad.view(len(xs), k, *engine.input_shape)
                out[i0:i0 + len(xs), p0:p0 + k] = sel.detach()
                control.step(i0 * p + min(p0 + k, p) * len(xs), n * p, "etalons")
    return W, out


# -- the paper's Algorithm 1 -------------------------------------------------------------------
def _check_paper_model(engine):
    blocking = [r for r in engine.nonlinear_parts if "not piecewise linear" in r
                or "train mode" in r or "traced" in r]
    relus = functional_relus(engine.model)
    if blocking or relus:
        why = blocking + [f"functional ReLU '{r}' has no module to hook" for r in relus]
        raise NotPiecewiseLinear("method='paper' needs a network whose ReLUs and max-pools are "
                                 "modules; " + "; ".join(why) + ". Use method='fast'.")


def _record(model, x, normalized) -> Dict[str, torch.Tensor]:
    """Step 1: for every ReLU module, the mask of its active inputs; for every max-pool, the
    flat index of the input each output took."""
    record: Dict[str, torch.Tensor] = {}

    def make(name):
        def hook(module, inputs, output):
            inp = inputs[0]
            if isinstance(module, _MASKED):
                record[name] = inp > 0
            else:
                pool = F.max_pool2d if isinstance(module, nn.MaxPool2d) else F.max_pool1d
                _, record[name] = pool(inp, module.kernel_size, module.stride, module.padding,
                                       module.dilation, module.ceil_mode, return_indices=True)
        return hook
    targets = {n: make(n) for n, m in model.named_modules() if isinstance(m, _MASKED + _POOLS)}
    with hooks._hooked(model, targets):
        model(normalized(x))
    return record


def _replay(model, record, n):
    """Hooks that re-apply sample n's recorded masks and max-pool choices to any batch."""
    modules = dict(model.named_modules())

    def make(name):
        rec = record[name][n:n + 1]
        module = modules[name]

        def hook(mod, inputs, output):
            inp = inputs[0]
            if isinstance(module, nn.ReLU):
                return inp * rec
            if isinstance(module, nn.LeakyReLU):
                return torch.where(rec, inp, inp * module.negative_slope)
            b = inp.shape[0]
            flat = inp.flatten(2).gather(2, rec.flatten(2).expand(b, -1, -1))
            return flat.view(output.shape)
        return hook
    return {name: make(name) for name in record}


def _working_copy(model: nn.Module) -> nn.Module:
    """A copy whose ReLUs are not in-place, so hooks see their true inputs."""
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if isinstance(m, _MASKED):
            m.inplace = False
    return clone


def _zero_biases(model: nn.Module) -> None:
    """Step 2: zero every bias (and BatchNorm shift) of the working copy."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                m.bias.zero_()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.zero_()


def _unit_values(model, inputs, layer, idx, replay):
    got = hooks.run_capturing(model, inputs, [layer], stop_after=layer, clone=False, replace=replay)
    return got[layer].flatten(1)[:, idx]                        # (batch, P)


def _paper(engine, x, layer, units, control, chunk):
    _check_paper_model(engine)
    n, p = x.shape[0], len(units)
    m = int(np.prod(engine.input_shape))
    idx = engine.flat_index(layer, units)
    W = torch.empty(n, p, m, device=engine.device)
    b = torch.empty(n, p, device=engine.device)
    with engine.borrow() as model, torch.no_grad():
        work = _working_copy(model)
        out = _unit_values(work, engine.normalize(x), layer, idx, None)
        record = _record(work, x, engine.normalize)
        zero = torch.zeros(1, *engine.input_shape, device=engine.device)
        for i in range(n):                                      # bias: the zero image, step 1.5
            b[i] = _unit_values(work, engine.normalize(zero), layer, idx, _replay(work, record, i))[0]
        _zero_biases(work)
        for i in range(n):
            replay = _replay(work, record, i)
            for j0 in range(0, m, chunk):                       # step 3: coordinate images
                j1 = min(j0 + chunk, m)
                e = torch.zeros(j1 - j0, m, device=engine.device)
                e[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
                e = e.view(-1, *engine.input_shape) / engine.std  # normalisation minus its shift
                W[i, :, j0:j1] = _unit_values(work, e, layer, idx, replay).T
                control.step(i * m + j1, n * m, "paper algorithm")
    return W.view(n, p, *engine.input_shape), b, out
