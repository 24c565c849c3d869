"""The input-dependent switches of a ReLU/max-pool network: which ReLUs are on and which input
each max-pool output took. Together they fix the linear region, and so the etalons."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASKED = (nn.ReLU, nn.LeakyReLU)
POOLS = (nn.MaxPool1d, nn.MaxPool2d)
GATES = MASKED + POOLS
# Piecewise-linear modules whose switches are not recorded (nn.ReLU6 is a Hardtanh).
UNRECORDED = (nn.Hardtanh, nn.PReLU, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


def gate_state(module: nn.Module, inputs, output) -> torch.Tensor:
    """A forward hook's reading of one gate: for a ReLU the bool mask of its active inputs,
    for a max-pool the flat per-channel index of the input each output took."""
    if isinstance(module, MASKED):
        # an in-place ReLU has already overwritten its input: read the sign of the output
        return (output if module.inplace else inputs[0]) > 0
    pool = F.max_pool2d if isinstance(module, nn.MaxPool2d) else F.max_pool1d
    return pool(inputs[0], module.kernel_size, module.stride, module.padding, module.dilation,
                module.ceil_mode, return_indices=True)[1]
