"""Etalons (Molchanov et al.): the exact affine map f_p(x) = <W_p(x), x> + b_p(x) of a unit.

Two ways to compute the same W and b:
- ``fast``: batched autograd (``torch.func``). One forward pass stops at the units' layer; one
  backward pass, vmapped over one-hot output gradients, gives every unit's W for a chunk of
  units; b follows as f(x) - <W, x>.
- ``paper``: Algorithm 1 as written. Record ReLU masks and max-pool choices for x, zero the
  biases of a copy, feed the one-hot coordinate images e_i through it with the recorded masks
  and choices re-applied (W_i = f_p(e_i)), and feed the zero image through the biased model
  the same way (b = f_p(0)).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..core import hooks
from ..core import validate as check
from ..core.borrow import uninterrupted
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument, NotPiecewiseLinear
from ..core.gates import GATES, MASKED, UNRECORDED, gate_state
from ..core.grad import needs_grad
from ..core.layers import functional_relus
from ..core.results import Etalons
from .conv_grad import flipped_conv_grads

METHODS = ("fast", "paper")


@needs_grad
def etalons(engine, x, layer: str | None = None, units=None, method: str = "fast",
            control: Control = NO_CONTROL, one_hot_batch: int | None = None) -> Etalons:
    """Etalons of ``units`` of ``layer`` (default: the logits) at every input in ``x``.

    one_hot_batch: for ``method="paper"``, how many coordinate images go through at once
    (1 = one at a time, as written in the paper; default: the engine's batch size).
    """
    if method not in METHODS:
        raise InvalidArgument(f"method must be one of {METHODS}; got {method!r}")
    one_hot_batch = check.optional_count("one_hot_batch", one_hot_batch)
    x = engine.prepare(x)
    layer = engine.layer(layer).name
    units = engine.resolve_units(layer, units)
    if method == "fast":
        W, out = _fast(engine, x, layer, units, control)
        b = out.double() - (W.double() * x[:, None].double()).flatten(2).sum(-1)
        exact, reason = engine.exactness(layer)
    else:
        W, b, out = _paper(engine, x, layer, units, control, one_hot_batch or engine.batch_size)
        exact, reason = True, "Algorithm 1: masks and max-pool choices replayed"
    return Etalons(W=W.cpu().numpy(), b=b.cpu().numpy().astype(np.float32),
                   out=out.cpu().numpy(), x=x.cpu().numpy(), layer=layer, units=units,
                   exact=exact, reason=reason, method=method)


def _fast(engine, x, layer, units, control):
    """W (N, P, *input_shape) and out (N, P). Per chunk of inputs: one forward pass stopped at
    ``layer``, then per chunk of units one backward pass vmapped over one-hot cotangents (the
    inputs are independent in eval mode, so a unit's gradient summed over the batch splits
    per input)."""
    n, p = x.shape[0], len(units)
    idx = engine.flat_index(layer, units)
    chunk = max(1, engine.batch_size)
    per_pass = max(1, chunk // min(n, chunk))       # units per backward, bounded like a batch
    W = torch.empty(n, p, *engine.input_shape, device=engine.device)
    out = torch.empty(n, p, device=engine.device)
    with engine.borrow() as model, torch.enable_grad():
        vjp = _vjp_func
        if _batch_coupled(model):
            # batch statistics: one image per pass, or the images' gradients would mix; and
            # plain autograd, since torch.func refuses the running-statistics update
            chunk, vjp = 1, _vjp_autograd
        for i0 in range(0, n, chunk):
            xs = x[i0:i0 + chunk]
            i1 = i0 + len(xs)
            out[i0:i1], backward = uninterrupted(
                _flipped(vjp), lambda v: engine.layer_output(v, layer)[:, idx], xs)
            for p0 in range(0, p, per_pass):
                k = min(per_pass, p - p0)
                onehots = torch.zeros(k, len(xs), p, device=engine.device)
                onehots[torch.arange(k), :, p0 + torch.arange(k)] = 1.0
                W[i0:i1, p0:p0 + k] = uninterrupted(_flipped(backward), onehots).transpose(0, 1)
                control.step(i0 * p + (p0 + k) * len(xs), n * p, "etalons")
                engine.hand_over()
    return W, out


def _flipped(fn):
    """``fn`` run under :class:`flipped_conv_grads`. The mode is entered inside
    ``uninterrupted`` only: torch's Python-level dispatch under a mode (``len(t)``, ...) pops
    and pushes it in a context manager that an interrupt can tear."""
    def run(*args):
        with flipped_conv_grads():
            return fn(*args)
    return run


def _vjp_func(f, xs):
    """f(xs) and a function mapping cotangents (k, *f(xs).shape) to input gradients (k, *xs.shape)."""
    values, backward = torch.func.vjp(f, xs)

    def many(cotangents):
        if len(cotangents) == 1:                      # no vmap needed for a single unit
            return backward(cotangents[0])[0].unsqueeze(0)
        return torch.func.vmap(backward)(cotangents)[0]
    return values, many


def _vjp_autograd(f, xs):
    """:func:`_vjp_func` with plain autograd, one backward pass per cotangent."""
    xs = xs.detach().requires_grad_(True)
    values = f(xs)
    return values.detach(), lambda cotangents: torch.stack(
        [torch.autograd.grad(values, xs, c, retain_graph=True)[0] for c in cotangents])


def _batch_coupled(model) -> bool:
    """BatchNorm using batch statistics makes each sample's output depend on the others."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm)
               and (m.training or m.running_mean is None) for m in model.modules())


# -- the paper's Algorithm 1 -------------------------------------------------------------------
def _check_paper_model(engine, layer):
    blocking = [r for r in engine.nonlinear_parts_upto(layer) if "not piecewise linear" in r
                or "train mode" in r or "traced" in r]
    relus = functional_relus(engine.model)
    upto = set(engine.layer_names[:engine.layer_names.index(layer) + 1])
    unreplayed = [f"{type(m).__name__} '{n}' is not replayed (only ReLU, LeakyReLU, MaxPool1d "
                  "and MaxPool2d are)" for n, m in engine.model.named_modules()
                  if n in upto and isinstance(m, UNRECORDED)]
    if blocking or relus or unreplayed:
        why = blocking + unreplayed + [f"functional ReLU '{r}' has no module to hook"
                                       for r in relus]
        raise NotPiecewiseLinear("method='paper' needs a network whose ReLUs and max-pools are "
                                 "modules; " + "; ".join(why) + ". Use method='fast'.")


def _record(model, x, normalized) -> dict[str, torch.Tensor]:
    """Step 1: for every ReLU module, the mask of its active inputs; for every max-pool, the
    flat index of the input each output took."""
    record: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    def make(name):
        def hook(module, inputs, output):
            calls[name] = calls.get(name, 0) + 1
            record[name] = gate_state(module, inputs, output)
        return hook
    targets = {n: make(n) for n, m in model.named_modules() if isinstance(m, GATES)}
    with hooks.hooked(model, targets):
        model(normalized(x))
    reused = [f"'{n}' ({k} calls)" for n, k in calls.items() if k > 1]
    if reused:      # one recorded mask per module would be replayed at every call
        raise NotPiecewiseLinear(f"method='paper' records one mask per module, but "
                                 f"{', '.join(reused)} run more than once per forward pass; give "
                                 f"each use its own module, or use method='fast'")
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
        if isinstance(m, MASKED):
            m.inplace = False
    return clone


def _zero_biases(model: nn.Module) -> None:
    """Step 2: zero every bias (and BatchNorm shift, and constant-padding value) of the
    working copy."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.padding._ConstantPadNd):
                m.value = 0.0
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                m.bias.zero_()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.zero_()


def _unit_values(model, inputs, layer, idx, replay):
    got = hooks.run_capturing(model, inputs, [layer], stop_after=layer, clone=False, replace=replay)
    return got[layer].flatten(1)[:, idx]                        # (batch, P)


def _paper(engine, x, layer, units, control, chunk):
    _check_paper_model(engine, layer)
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
                engine.hand_over()
    return W.view(n, p, *engine.input_shape), b, out
