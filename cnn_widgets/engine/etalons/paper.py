"""Algorithm 1 of the etalon paper as written, on any ReLU/max-pool graph.

Record every gate call's state for x (the mask of each ReLU call, the piece of each ReLU6 /
Hardtanh call, the choice of each max-pool call: a module called twice has two), zero the biases
of a copy, feed the one-hot coordinate images e_i through it with the recorded states re-applied
at every gate call (W_i = f_p(e_i)), and feed the zero image through the biased model the same
way (b = f_p(0)); a saturated clamp gives its bound in the biased pass and 0 in the bias-free
one (the bound is part of b)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..core import hooks, memory
from ..core import validate as check
from ..core.errors import NotPiecewiseLinear
from ..core.gates import GATE_KINDS, UNRECORDED_KINDS, gates_of
from .budget import paper_plan


def _check_paper_model(engine, layer):
    """The gate calls up to ``layer``; :class:`NotPiecewiseLinear` where Algorithm 1 cannot run."""
    blocking = [r for r in engine.nonlinear_parts_upto(layer) if "not piecewise linear" in r
                or "train mode" in r or "traced" in r or "running statistics" in r]
    if blocking or engine.graph is None:
        raise NotPiecewiseLinear("method='paper' needs a ReLU/max-pool network whose graph "
                                 "torch.fx can trace; " + "; ".join(blocking or [engine.graph_error])
                                 + ". Use method='fast'.")
    graph = engine.graph
    unreplayed = [f"{c.kind} '{c.name}' is not replayed (only ReLU, LeakyReLU, ReLU6, Hardtanh "
                  "and max-pool calls are)" for c in graph.upstream(layer) if c.kind in UNRECORDED_KINDS]
    if unreplayed:
        raise NotPiecewiseLinear("method='paper' needs a ReLU/max-pool network; "
                                 + "; ".join(unreplayed) + ". Use method='fast'.")
    return [c.name for c in graph.upstream(layer) if c.kind in GATE_KINDS]


def _record(engine, work, x, gates) -> dict[str, torch.Tensor]:
    """Step 1: every gate call's state for each input (N, ...), read by taps on the graph."""
    record: dict[str, torch.Tensor] = {}

    def make(gate):
        def tap(module, inputs, output):
            record[gate.name] = gate.state(inputs, output)
        return tap
    hooks.forward(engine.model, engine.normalize(x), {g.name: make(g) for g in gates},
                  module=work)
    return record


def _replay(record, gates, n, constants=True):
    """Substitutes that apply sample n's recorded states at every gate call, to any batch
    (``constants=False``: saturated clamps give 0, for the bias-free copy)."""
    def make(gate):
        state = record[gate.name][n:n + 1]
        return lambda fn, args, kwargs: gate.replay(args[0], state, constants)
    return {g.name: make(g) for g in gates}


def _zero_biases(model: nn.Module) -> None:
    """Step 2: zero every bias (and BatchNorm shift, and constant-padding value) of the
    working copy."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.padding._ConstantPadNd):
                m.value = 0.0
            if isinstance(bias := getattr(m, "bias", None), torch.Tensor):
                bias.zero_()
            # by name, not type: a norm the graph applies functionally (timm's BatchNormAct2d)
            # reaches the runner as a plain module holding the BatchNorm's tensors
            if isinstance(mean := getattr(m, "running_mean", None), torch.Tensor):
                mean.zero_()


def _unit_values(engine, work, inputs, layer, idx, subs):
    out = hooks.layer_value(engine.model, inputs, layer, subs, module=work)
    return out.flatten(1)[:, idx]                                  # (batch, P)


def paper(engine, x, layer, units, make_W, budget, control, chunk):
    """W (N, P, *input_shape) in a ``make_W()`` result array (written one image and block of
    units at a time), b (N, P) and out (N, P) by Algorithm 1. ``chunk`` coordinate images go
    through at once, fewer if they would not fit ``budget`` (bytes left, the engine's)."""
    names = _check_paper_model(engine, layer)
    n, p = x.shape[0], len(units)
    m = int(np.prod(engine.input_shape))
    idx = engine.flat_index(layer, units)
    chunk, per_block = paper_plan(engine, layer, p, chunk, *budget)
    W = make_W()
    b, out = np.empty((n, p)), np.empty((n, p), np.float32)
    with engine.borrow(), torch.no_grad():
        gates = gates_of(engine, names)
        # the graph's runner with its own copy of every weight, so biases can be zeroed
        work = copy.deepcopy(engine.graph.module)
        records, zero = [], torch.zeros(1, *engine.input_shape, device=engine.device)
        for i in range(n):                 # step 1 and the bias (the zero image), per image
            xi = x[i:i + 1]
            out[i] = check.finite(_unit_values(engine, work, engine.normalize(xi), layer, idx,
                                               None), "the unit values", i)[0]
            records.append(_record(engine, work, xi, gates))
            b[i] = check.finite(_unit_values(engine, work, engine.normalize(zero), layer, idx,
                                             _replay(records[i], gates, 0)), "the biases b", i)[0]
        _zero_biases(work)
        done, total = 0, n * m * -(-p // per_block)
        for i in range(n):
            replay = _replay(records[i], gates, 0, constants=False)
            for p0 in range(0, p, per_block):                   # blocks of units of W[i]
                p1 = min(p0 + per_block, p)
                block = torch.empty(p1 - p0, m, device=engine.device)
                for j0 in range(0, m, chunk):                   # step 3: coordinate images
                    j1 = min(j0 + chunk, m)
                    e = torch.zeros(j1 - j0, m, device=engine.device)
                    e[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
                    e = e.view(-1, *engine.input_shape) / engine.std  # normalisation minus its shift
                    block[:, j0:j1] = _unit_values(engine, work, e, layer, idx[p0:p1], replay).T
                    done += j1 - j0
                    control.step(done, total, "paper algorithm")
                    engine.hand_over()
                W.write(i, p0, check.finite(block[None], "the affine maps W", i)[0].reshape(
                    p1 - p0, *engine.input_shape))
                memory.release()
    return W, b, out
