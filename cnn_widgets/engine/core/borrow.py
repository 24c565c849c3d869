"""Borrowing a module for one computation without changing it.

The lock belongs to the *module*, not to an engine: every engine (and every generator or
encoder lent by the inverse set) that wraps the same ``nn.Module`` waits on the same lock, so
two engines around one model take turns instead of racing on its modes and hooks. Entering
and leaving a borrow cannot be torn by Ctrl-C / "Interrupt kernel": on the main thread the
SIGINT handler is deferred while modes, ``requires_grad`` and buffers are saved or restored,
and the interrupt is raised once the model is whole again.
"""
from __future__ import annotations

import signal
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(module: nn.Module) -> threading.RLock:
    """The one re-entrant lock of ``module``, shared by everything that borrows it."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = threading.RLock()
        return lock


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT (KeyboardInterrupt) for the block, then deliver it. Only the main
    thread receives signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *args: pending.append(args))
    except ValueError:        # not in the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(*pending[0])


class _Saved:
    """Modes, ``requires_grad`` and (optionally) buffer values of a module tree."""

    def __init__(self, module: nn.Module, buffers: bool):
        self.modes: list[tuple[nn.Module, bool]] = [(m, m.training) for m in module.modules()]
        self.grads: list[tuple[torch.Tensor, bool]] = [(p, p.requires_grad)
                                                       for p in module.parameters()]
        self.buffers = ([(b, b.detach().clone()) for b in module.buffers()] if buffers else [])

    def restore(self) -> None:
        for m, mode in self.modes:
            m.training = mode
        for p, req in self.grads:
            p.requires_grad_(req)
        with torch.no_grad():
            for b, value in self.buffers:
                b.copy_(value)


class borrowed:
    """``with borrowed(module, eval_mode=True, keep_buffers=False) as m:`` — ``module`` under
    its lock, in eval mode (if ``eval_mode``) with parameter gradients off; every mode, every
    ``requires_grad`` and, with ``keep_buffers``, every buffer value restored on exit, after
    an error or an interrupt too. Re-entrant on one thread."""

    def __init__(self, module: nn.Module, eval_mode: bool = True, keep_buffers: bool = False):
        self.module, self.eval_mode, self.keep_buffers = module, eval_mode, keep_buffers
        self._lock = model_lock(module)
        self._saved: _Saved | None = None

    def __enter__(self) -> nn.Module:
        self._lock.acquire()
        try:
            with interrupts_deferred():
                saved = _Saved(self.module, self.keep_buffers)
                self._saved = saved
                try:
                    if self.eval_mode:
                        self.module.eval()
                    for p, _ in saved.grads:
                        p.requires_grad_(False)
                except BaseException:
                    saved.restore()
                    raise
        except BaseException:
            self._lock.release()
            raise
        return self.module

    def __exit__(self, *exc) -> None:
        try:
            with interrupts_deferred():
                saved, self._saved = self._saved, None
                if saved is not None:
                    saved.restore()
        finally:
            self._lock.release()


def lent(module: nn.Module | None, eval_mode: bool = True):
    """:class:`borrowed` for a module that may be None (an optional generator or encoder)."""
    return _nothing() if module is None else borrowed(module, eval_mode)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
