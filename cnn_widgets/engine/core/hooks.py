"""Forward hooks that live for one call: capture, replace, stop early. Always removed on exit."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from .borrow import deliver_held_interrupt, hold_interrupts


class _StopForward(Exception):
    """Raised inside a hook to skip the rest of the forward pass once the needed layer ran."""


def _this_thread_only(fn: Callable) -> Callable:
    """``fn`` as a hook that acts only on forward passes of the thread that registered it, so
    a model lent to another thread between two steps (:func:`~.borrow.hand_over`) runs there
    as if no hook were on it."""
    owner = threading.get_ident()

    def hook(module, inputs, output):
        if threading.get_ident() == owner:
            return fn(module, inputs, output)
        return None
    return hook


class hooked:
    """``with hooked(model, {name: hook(module, inputs, output)}):`` forward hooks on the named
    modules for the with-block, acting on this thread's forward passes only. Adding and
    removing them is never torn by an interrupt."""

    def __init__(self, model: nn.Module, hooks: Mapping[str, Callable]):
        self.model, self.hooks = model, dict(hooks)
        self._handles: list = []

    def __enter__(self) -> None:
        modules = dict(self.model.named_modules())
        try:
            for name, fn in self.hooks.items():
                self._handles.append(modules[name].register_forward_hook(_this_thread_only(fn)))
            deliver_held_interrupt()
        except BaseException:
            self._remove()
            raise

    def __exit__(self, *exc) -> None:
        self._remove()
        deliver_held_interrupt()

    def _remove(self) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()


hold_interrupts(hooked.__enter__, hooked.__exit__)


def run_capturing(model: nn.Module, x: torch.Tensor, names: Iterable[str], *,
                  stop_after: str | None = None, clone: bool = True,
                  replace: Mapping[str, Callable] | None = None) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` and return the outputs of the named modules.

    ``stop_after``: skip everything after that module ran (its output must be among ``names``).
    ``clone``: copy captured outputs, because a later in-place op (``ReLU(inplace=True)``)
    would otherwise overwrite them. ``replace``: name -> hook(module, inputs, output) whose
    return value replaces the module's output (used to replay recorded ReLU masks).
    Returns name -> tensor; the model's own output is under the key ``""``.
    """
    names = list(names)
    captured: dict[str, torch.Tensor] = {}
    replace = dict(replace or {})

    def make_hook(name):
        swap = replace.pop(name, None)

        def hook(module, inputs, output):
            if swap is not None:
                output = swap(module, inputs, output)
            if name in names:
                captured[name] = output.clone() if clone else output
            if name == stop_after:
                raise _StopForward
            return output if swap is not None else None
        return hook

    hooks = {n: make_hook(n) for n in set(names) | set(replace) | ({stop_after} - {None})}
    with hooked(model, hooks):
        try:
            captured[""] = model(x)
        except _StopForward:
            pass
    return captured


def hook_count(model: nn.Module) -> int:
    """Number of forward/backward hooks on all modules (a test asserts it is unchanged)."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks", "_forward_hooks_with_kwargs"):
            total += len(getattr(m, attr, {}) or {})
    return total
