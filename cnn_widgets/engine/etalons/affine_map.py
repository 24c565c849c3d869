"""Etalons (Molchanov et al.): the exact affine map f_p(x) = <W_p(x), x> + b_p(x) of a unit.

Two ways to compute the same W and b:
- ``fast``: batched autograd (``torch.func``). One forward pass stops at the units' layer; one
  backward pass, vmapped over one-hot output gradients, gives every unit's W for a chunk of
  units; b follows as f(x) - <W, x>.
- ``paper``: Algorithm 1 as written, per gate call of the model's graph (:mod:`.paper`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import validate as check
from ..core.borrow import uninterrupted
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.grad import needs_grad
from ..core.results import Etalons
from .conv_grad import flipped_conv_grads
from .paper import paper

METHODS = ("fast", "paper")


@needs_grad
def etalons(engine, x, layer: str | None = None, units=None, method: str = "fast",
            control: Control = NO_CONTROL, one_hot_batch: int | None = None,
            top_k: int | None = None) -> Etalons:
    """Etalons of ``units`` of ``layer`` (default: the logits) at every input in ``x``.

    one_hot_batch: for ``method="paper"``, how many coordinate images go through at once
    (1 = one at a time, as written in the paper; default: the engine's batch size).
    top_k: instead of ``units``, each input's own k highest units of ``layer`` (at the logits:
    its top-k predicted classes), highest first, named in the result's ``row_units``.
    ``control.partial`` gets the :class:`Etalons` of the first inputs, final, after each chunk
    of inputs but the last (method "fast"); ``control.step`` comes after every backward pass.
    """
    if method not in METHODS:
        raise InvalidArgument(f"method must be one of {METHODS}; got {method!r}")
    one_hot_batch = check.optional_count("one_hot_batch", one_hot_batch)
    x = engine.prepare(x)
    layer = engine.layer(layer).name
    if top_k is None:
        units, row_units = engine.resolve_units(layer, units), None
        idx = engine.flat_index(layer, units).expand(len(x), -1)
    else:
        if units is not None:
            raise InvalidArgument(f"pass units or top_k, not both; got units={units!r} and "
                                  f"top_k={top_k!r}")
        shape = engine.layer(layer).output_shape
        k = check.integer("top_k", top_k, 1, engine.layer(layer).n_units)
        idx = _top(engine, x, layer, k, control)
        units, row_units = (), tuple(tuple(tuple(int(i) for i in np.unravel_index(j, shape))
                                           for j in row) for row in idx.cpu().numpy())
    if method == "fast":
        exact, reason = engine.exactness(layer)

        def record(W, out, n):
            """The Etalons of the first ``n`` inputs."""
            b = out[:n].double() - (W[:n].double() * x[:n, None].double()).flatten(2).sum(-1)
            return Etalons(W=W[:n].cpu().numpy(), b=b.cpu().numpy().astype(np.float32),
                           out=out[:n].cpu().numpy(), x=x[:n].cpu().numpy(), layer=layer,
                           units=units, exact=exact, reason=reason, method=method,
                           row_units=row_units and row_units[:n])
        W, out = _fast(engine, x, layer, idx, control,
                       lambda W, out, n: control.partial(record(W, out, n)))
        return record(W, out, len(x))
    chunk = one_hot_batch or engine.batch_size
    rows = [(x, units, control)] if row_units is None else \
        [(x[i:i + 1], row_units[i], _row(control, i, len(x))) for i in range(len(x))]
    W, b, out = (torch.cat(t) for t in zip(*[paper(engine, xs, layer, us, c, chunk)
                                               for xs, us, c in rows]))
    return Etalons(W=W.cpu().numpy(), b=b.cpu().numpy().astype(np.float32),
                   out=out.cpu().numpy(), x=x.cpu().numpy(), layer=layer, units=units,
                   exact=True, reason="Algorithm 1: masks and max-pool choices replayed",
                   method=method, row_units=row_units)


def _top(engine, x, layer, k, control) -> torch.Tensor:
    """(N, k) flat indices of each input's k highest units of ``layer``, highest first."""
    with engine.borrow() as model, torch.no_grad():
        chunk = 1 if _batch_coupled(model) else max(1, engine.batch_size)
        parts = []
        for i0 in range(0, len(x), chunk):
            parts.append(engine.layer_output(x[i0:i0 + chunk], layer).topk(k, dim=1).indices)
            control.check()
    return torch.cat(parts)


def _row(control, i, n) -> Control:
    """The control of input ``i`` of ``n`` done one at a time: its progress is part of the
    whole, a stop of the whole stops it."""
    return Control(report=lambda done, total, message: control.step(i * total + done,
                                                                    n * total, message))


def _fast(engine, x, layer, idx, control, rows_done):
    """W (N, P, *input_shape) and out (N, P) of the units ``idx`` (N, P) (flat indices, each
    input its own row). Per chunk of inputs: one forward pass stopped at ``layer``, then per
    chunk of units one backward pass vmapped over one-hot cotangents (the inputs are
    independent in eval mode, so a unit's gradient summed over the batch splits per input);
    ``rows_done(W, out, i1)`` after each chunk of inputs but the last (inputs < i1 final)."""
    n, p = idx.shape
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
            rows = idx[i0:i1]
            out[i0:i1], backward = uninterrupted(
                _flipped(vjp), lambda v, rows=rows: engine.layer_output(v, layer).gather(1, rows), xs)
            for p0 in range(0, p, per_pass):
                k = min(per_pass, p - p0)
                onehots = torch.zeros(k, len(xs), p, device=engine.device)
                onehots[torch.arange(k), :, p0 + torch.arange(k)] = 1.0
                W[i0:i1, p0:p0 + k] = uninterrupted(_flipped(backward), onehots).transpose(0, 1)
                control.step(i0 * p + (p0 + k) * len(xs), n * p, "etalons")
                engine.hand_over()
            if i1 < n:
                rows_done(W, out, i1)
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
