"""Forward hooks the user registered on modules that the graph runner does not call as modules:
the model itself (its own hooks are run around the graph, as ``model(x)`` runs them) and the
containers the trace inlined (``layer1``: the graph calls its children one by one, so their
hooks cannot run; a warning says so, once per container)."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from torch import nn


def has_forward_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def call_with_hooks(model: nn.Module, run: Callable, x):
    """``run(x)`` between ``model``'s forward pre-hooks and forward hooks, called with ``model``
    as their module and allowed to replace the inputs and the output, as in ``model(x)``."""
    args: tuple = (x,)
    kwargs: dict[str, Any] = {}
    for key, hook in list(model._forward_pre_hooks.items()):
        if key in model._forward_pre_hooks_with_kwargs:
            result = hook(model, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(model, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    out = run(*args, **kwargs)
    for key, hook in list(model._forward_hooks.items()):
        result = (hook(model, args, kwargs, out) if key in model._forward_hooks_with_kwargs
                  else hook(model, args, out))
        if result is not None:
            out = result
    return out


class InlinedHooks:
    """Warns, once per container, when an inlined container of a traced model has hooks."""

    def __init__(self, model: nn.Module, called: set[str]):
        self.containers = [(name, m) for name, m in model.named_modules()
                           if name and name not in called]
        self.warned: set[str] = set()

    def check(self) -> None:
        for name, m in self.containers:
            if name not in self.warned and has_forward_hooks(m):
                self.warned.add(name)
                warnings.warn(
                    f"forward hooks on {name!r} do not run in the engine's forward passes: its "
                    f"graph calls the modules inside {name!r} one by one. Hooks on the model "
                    f"itself and on the modules it calls (engine.layers) do run.", stacklevel=4)
