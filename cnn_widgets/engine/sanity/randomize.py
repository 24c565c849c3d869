"""The layers a model-randomisation test re-initialises, and the private copy it works on.

A layer is a module called in the forward pass that holds parameters of its own and has a
``reset_parameters()`` (convolutions, linear layers, normalisations). Its random weights are
its own initialiser's, drawn on a CPU copy of the module after ``torch.manual_seed(seed *
1_000_003 + i)``, i its position among these layers in forward order: the same weights in the
cascading and the independent test, on any device, and the caller's RNG state is kept.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..core.borrow import model_lock
from ..core.model import ModelHost

SEED_STRIDE = 1_000_003


def randomizable(engine: ModelHost) -> tuple[str, ...]:
    """Module paths of the layers with their own parameters and ``reset_parameters()``, in
    forward order (of their first call)."""
    modules = dict(engine.model.named_modules())
    called = ([c.module for c in engine.graph.calls if c.module] if engine.graph is not None
              else [info.name for info in engine.layers])
    return tuple(n for n in dict.fromkeys(called)
                 if n in modules and callable(getattr(modules[n], "reset_parameters", None))
                 and any(True for _ in modules[n].parameters(recurse=False)))


def sibling(engine, model: nn.Module):
    """An engine of ``engine``'s class around ``model``, with ``engine``'s input shape,
    normalisation, device, batch size and mode."""
    return type(engine)(model, engine.input_shape, mean=engine.mean.flatten().cpu(),
                        std=engine.std.flatten().cpu(), device=engine.device,
                        batch_size=engine.batch_size, eval_mode=engine.eval_mode)


def working_copy(engine, check: Callable[[], None] = lambda: None):
    """:func:`sibling` around a deep copy of ``engine``'s model: randomising it never touches
    the user's model. ``check()`` runs between the copy and the new engine's analysis (a
    Stop check: each takes about a forward+backward pass of a ResNet-50)."""
    with model_lock(engine.model):       # no borrow in progress: no foreign hooks copied
        model = copy.deepcopy(engine.model)
    check()
    return sibling(engine, model)


def reinitialize(module: nn.Module, seed: int) -> None:
    """Give ``module`` fresh weights from its own ``reset_parameters()`` seeded with ``seed``
    (drawn on a CPU copy, so the global RNG and the device do not matter)."""
    fresh = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        fresh.reset_parameters()  # type: ignore[operator]  # an attribute of the layer's class
    with torch.no_grad():
        for name, value in list(fresh.named_parameters(recurse=False)) + \
                list(fresh.named_buffers(recurse=False)):
            if value is not None:
                getattr(module, name).copy_(value)


def layer_seed(seed: int, index: int) -> int:
    """The seed of the layer at forward position ``index`` among :func:`randomizable`."""
    return seed * SEED_STRIDE + index
