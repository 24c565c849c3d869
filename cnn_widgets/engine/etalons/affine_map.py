"""Etalons (Molchanov et al.): the exact affine map f_p(x) = <W_p(x), x> + b_p(x) of a unit.

Two ways to compute the same W and b:
- ``fast``: batched autograd (``torch.func``). One forward pass stops at the units' layer; one
  backward pass, vmapped over one-hot output gradients, gives every unit's W for a chunk of
  units; b follows as f(x) - <W, x>.
- ``paper``: Algorithm 1 as written, per gate call of the model's graph (:mod:`.paper`).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from ..core import memory
from ..core import validate as check
from ..core.borrow import uninterrupted
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.results import Etalons
from ..core.types import Images, Units
from .budget import fast_plan, forward_chunk
from .conv_grad import flipped_conv_grads
from .paper import paper

METHODS = ("fast", "paper")


@needs_grad
def etalons(engine: ModelHost, x: Images, layer: str | None = None, units: Units = None,
            method: str = "fast",
            control: Control = NO_CONTROL, one_hot_batch: int | None = None,
            top_k: int | None = None) -> Etalons:
    """Etalons of ``units`` of ``layer`` (default: the logits) at every input in ``x``.

    one_hot_batch: for ``method="paper"``, how many coordinate images go through at once
    (1 = one at a time, as written in the paper; default: the engine's batch size, fewer
    when they would not fit the memory budget). W is held in RAM when it fits the budget,
    else in a disk-backed array (:class:`~..core.memory.ResultArray`).
    top_k: instead of ``units``, each input's own k highest units of ``layer`` (at the logits:
    its top-k predicted classes), highest first, named in the result's ``row_units``.
    ``control.partial`` gets the :class:`Etalons` of the first inputs, final, after each chunk
    of inputs but the last (method "fast", W in RAM); ``control.step`` comes after every
    backward pass.
    """
    if method not in METHODS:
        raise InvalidArgument(f"method must be one of {METHODS}; got {method!r}")
    one_hot_batch = check.optional_count("one_hot_batch", one_hot_batch)
    x = engine.prepare(x)
    layer = engine.layer(layer).name
    if top_k is None:
        units = engine.resolve_units(layer, units)
        flat = engine.flat_index(layer, units)
        p, pick = len(units), lambda values: flat.expand(len(values), -1)   # (N, U) -> (N, P)
    else:
        if units is not None:
            raise InvalidArgument(f"pass units or top_k, not both; got units={units!r} and "
                                  f"top_k={top_k!r}")
        p = check.integer("top_k", top_k, 1, engine.layer(layer).n_units)
        units, pick = (), lambda values: values.topk(p, dim=1).indices
    n, m = x.shape[0], int(np.prod(engine.input_shape))
    total = engine.memory_budget
    budget = total - 4 * n * m                               # the prepared copy of x
    result = 4 * n * p * m                                   # W, float32
    on_disk = result > memory.host_budget(engine, total) // 2
    if engine.device.type == "cpu" and not on_disk:
        budget -= result                                     # W shares the RAM budget
    make_W = partial(memory.ResultArray, (n, p, *engine.input_shape), np.float32, on_disk)
    exact, reason = (engine.exactness(layer) if method == "fast" else
                     (True, "Algorithm 1: masks and max-pool choices replayed"))
    shape = engine.layer(layer).output_shape

    def record(W, b, out, idx) -> Etalons:
        """The Etalons of the first ``len(idx)`` inputs, whose units are the flat ``idx``."""
        k = len(idx)
        return Etalons(W=W[:k], b=b[:k].astype(np.float32), out=out[:k], x=x[:k].cpu().numpy(),
                       layer=layer, units=units, exact=exact, reason=reason, method=method,
                       row_units=None if top_k is None else _named(idx, shape))

    def rows_done(W, b, out, idx) -> None:
        if W.file is None:                                   # a disk-backed W: at the end
            control.partial(record(W.data, b, out, idx))

    if method == "fast":
        W, b, out, idx = _fast(engine, x, layer, p, pick, make_W, (budget, total), control,
                               rows_done)
    elif top_k is None:
        idx = flat.expand(n, -1)
        W, b, out = paper(engine, x, layer, units, make_W, (budget, total), control,
                          one_hot_batch or engine.batch_size)
    else:                                                    # each input its own units
        idx = _top(engine, x, layer, p, control)
        row_units = _named(idx, shape)
        W, b, out = make_W(), np.empty((n, p)), np.empty((n, p), np.float32)
        one = partial(memory.ResultArray, (1, p, *engine.input_shape), np.float32, False)
        for i in range(n):
            Wi, b[i:i + 1], out[i:i + 1] = paper(engine, x[i:i + 1], layer, row_units[i], one,
                                                 (budget, total), _row(control, i, n),
                                                 one_hot_batch or engine.batch_size)
            W.write(i, 0, Wi.array()[0])
    return record(W.array(), b, out, idx)


def _named(idx: torch.Tensor, shape) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Per input, its units as index tuples into the layer's output ``shape``, from the flat
    ``idx`` (N, P)."""
    coords = np.stack(np.unravel_index(idx.cpu().numpy(), shape), axis=-1)    # (N, P, D)
    return tuple(tuple(map(tuple, row)) for row in coords.tolist())


def _top(engine, x, layer, k, control) -> torch.Tensor:
    """(N, k) flat indices of each input's k highest units of ``layer``, highest first."""
    with engine.borrow() as model, torch.no_grad():
        chunk = 1 if _batch_coupled(model) else forward_chunk(engine, layer)
        parts = []
        for i0 in range(0, len(x), chunk):
            out = engine.layer_output(x[i0:i0 + chunk], layer).flatten(1)
            parts.append(out.topk(k, dim=1).indices)
            control.check()
    return torch.cat(parts)


def _row(control, i, n) -> Control:
    """The control of input ``i`` of ``n`` done one at a time: its progress is part of the
    whole, a stop of the whole stops it."""
    return Control(report=lambda done, total, message: control.step(i * total + done,
                                                                    n * total, message))


def _fast(engine, x, layer, p, pick, make_W, budget, control, rows_done):
    """W (N, P, *input_shape) in a ``make_W()`` result array, b (N, P) float64, out (N, P)
    and the (N, P) flat indices of the units, ``pick(values)`` of a chunk's layer outputs
    (n, U) (given units, or each input's top P), made once the plan fits ``budget`` ((bytes
    left, the engine's budget)). Per chunk of inputs: one forward pass stopped at ``layer``,
    then per chunk of units one backward pass vmapped over one-hot cotangents (the inputs are
    independent in eval mode, so a unit's gradient summed over the batch splits per input);
    chunk sizes from :func:`fast_plan` (a large model: one input, one unit per pass, so each
    input's row is done on its own and Stop waits for one backward pass at most);
    ``rows_done(W, b, out, idx[:i1])`` after each chunk of inputs but the last (inputs < i1
    final)."""
    n = len(x)
    b, out = np.empty((n, p)), np.empty((n, p), np.float32)
    idx = torch.empty((n, p), dtype=torch.long, device=engine.device)
    n_units = engine.layer(layer).n_units
    with engine.borrow() as model, torch.enable_grad():
        vjp = _vjp_func
        coupled = _batch_coupled(model)
        if coupled:
            # batch statistics: one image per pass, or the images' gradients would mix; and
            # plain autograd, since torch.func refuses the running-statistics update
            vjp = _vjp_autograd
        chunk, per_pass = fast_plan(engine, n, p, layer, *budget, coupled)
        W = make_W()
        for i0 in range(0, n, chunk):
            xs = x[i0:i0 + chunk]
            i1 = i0 + len(xs)
            values, backward = uninterrupted(
                _flipped(vjp), lambda v: engine.layer_output(v, layer).flatten(1), xs)
            rows = idx[i0:i1] = pick(values)
            out[i0:i1] = check.finite(values.gather(1, rows), "the unit values (the model's output)",
                                      i0)
            del values
            control.check()
            for p0 in range(0, p, per_pass):
                k = min(per_pass, p - p0)
                onehots = torch.zeros(k, len(xs), n_units, device=engine.device)
                onehots[torch.arange(k)[:, None], torch.arange(len(xs))[None, :],
                        rows[:, p0:p0 + k].T] = 1.0
                block = uninterrupted(_flipped(backward), onehots).transpose(0, 1)  # (i, k, ...)
                del onehots
                b[i0:i1, p0:p0 + k] = out[i0:i1, p0:p0 + k] - _dot(block, xs)
                block = check.finite(block, "the affine maps W", i0)
                for j in range(len(xs)):
                    W.write(i0 + j, p0, block[j])
                del block
                if i1 < n or p0 + k < p:     # more passes follow: give back what this one freed
                    memory.release()
                control.step(i0 * p + (p0 + k) * len(xs), n * p, "etalons")
                engine.hand_over()
            if i1 < n:
                rows_done(W, b, out, idx[:i1])
    return W, b, out, idx


def _dot(block, xs) -> np.ndarray:
    """<W, x> per image and unit, (i, k) float64, from a W block (i, k, *input_shape)."""
    w = block.reshape(*block.shape[:2], -1).double()
    return torch.bmm(w, xs.reshape(len(xs), -1, 1).double())[..., 0].cpu().numpy()


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
