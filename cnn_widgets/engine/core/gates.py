"""The input-dependent switches of a ReLU/max-pool network: which ReLUs are on, which of its three
pieces each ReLU6/Hardtanh input is on, and which input each max-pool output took, one state per
gate *call* of the model's graph (a module called twice has two). Together they fix the linear
region, and so the etalons."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MASKED = (nn.ReLU, nn.LeakyReLU)
POOLS = (nn.MaxPool1d, nn.MaxPool2d)
GATES = MASKED + POOLS
# layer kinds whose state is recorded and replayed (functional gates take their module's kind)
GATE_KINDS = ("ReLU", "LeakyReLU", "ReLU6", "Hardtanh", "MaxPool1d", "MaxPool2d",
              "AdaptiveMaxPool1d", "AdaptiveMaxPool2d")
CLAMPS = ("ReLU6", "Hardtanh")       # three pieces: below min_val, linear, above max_val
# Piecewise-linear layers whose switches are not recorded.
UNRECORDED_KINDS = ("PReLU", "RReLU", "MaxPool3d", "AdaptiveMaxPool3d")

_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")


@dataclass(frozen=True)
class Gate:
    """How one gate call switches: ``kind`` in GATE_KINDS, the LeakyReLU slope, a clamp's
    (min_val, max_val), and for a max-pool the parameters to find its choices again
    (``pool(input) -> (out, indices)``)."""
    name: str
    kind: str
    slope: float = 0.0
    pool: tuple = ()                 # (function, positional arguments after the input)
    bounds: tuple = ()               # (min_val, max_val) of a ReLU6/Hardtanh

    def state(self, inputs, output) -> torch.Tensor:
        """A tap's reading: for a ReLU the bool mask of its active inputs (the output's sign:
        an in-place call has overwritten its input), for a max-pool the flat per-channel index
        of the input each output took, for a clamp int8 0/1/2 (at or below min_val, between,
        at or above max_val; read from the output too)."""
        if self.bounds:
            lo, hi = self.bounds
            return (output > lo).to(torch.int8) + (output >= hi).to(torch.int8)
        if "Pool" not in self.kind:
            return output > 0
        fn, args = self.pool
        return fn(inputs[0], *args, return_indices=True)[1]

    def replay(self, h: torch.Tensor, state: torch.Tensor, constants: bool = True) -> torch.Tensor:
        """The gate applied to ``h`` (any batch) with one sample's recorded ``state`` (1, ...);
        ``constants=False``: a saturated clamp gives 0, not its bound (the bias-free pass of
        Algorithm 1, where the bounds belong to b)."""
        if self.bounds:
            out = h * (state == 1)
            if constants:
                lo, hi = self.bounds
                out = out + lo * (state == 0) + hi * (state == 2)
            return out
        if self.kind == "ReLU":
            return h * state
        if self.kind == "LeakyReLU":
            return torch.where(state, h, h * self.slope)
        flat = h.flatten(2).gather(2, state.flatten(2).expand(h.shape[0], -1, -1))
        return flat.view(h.shape[0], *state.shape[1:])


def gate_of(graph, call, module: Any) -> Gate:
    """The :class:`Gate` of one gate call of ``graph`` (a layer with a kind in GATE_KINDS);
    ``module``: the ``nn.Module`` called (its kind's attributes are read), None for a function."""
    node = graph.node(call)
    if call.kind == "ReLU":
        return Gate(call.name, "ReLU")
    if call.kind == "LeakyReLU":
        slope = module.negative_slope if module is not None else \
            (list(node.args[1:]) + [node.kwargs.get("negative_slope", 0.01)])[0]
        return Gate(call.name, "LeakyReLU", float(slope))
    if call.kind in CLAMPS:               # modules only: functional clamps are not layers
        return Gate(call.name, call.kind, bounds=(float(module.min_val), float(module.max_val)))
    dims = 1 if call.kind.endswith("1d") else 2
    fn: Callable
    if call.kind.startswith("Adaptive"):
        fn = F.adaptive_max_pool1d if dims == 1 else F.adaptive_max_pool2d
        size = module.output_size if module is not None else \
            (list(node.args[1:]) + [node.kwargs.get("output_size")])[0]
        return Gate(call.name, call.kind, pool=(fn, (size,)))
    fn = F.max_pool1d if dims == 1 else F.max_pool2d
    if module is not None:
        args = (module.kernel_size, module.stride, module.padding, module.dilation,
                module.ceil_mode)
    else:
        given = dict(zip(_POOL_ARGS, node.args)) | dict(node.kwargs)
        k = given["kernel_size"]
        args = (k, given.get("stride") or k, given.get("padding", 0), given.get("dilation", 1),
                bool(given.get("ceil_mode", False)))
    return Gate(call.name, call.kind, pool=(fn, args))


def gates_of(host, names) -> list[Gate]:
    """The :class:`Gate` of each named gate call of ``host``'s graph."""
    graph = host.graph
    modules = dict(host.model.named_modules())
    return [gate_of(graph, graph.by_name[n], modules.get(graph.by_name[n].module))
            for n in names]
