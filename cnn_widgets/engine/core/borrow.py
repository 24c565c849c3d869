"""Borrowing a module for one computation without changing it.

The lock belongs to the *module*, not to an engine: every engine (and every generator or
encoder lent by the inverse set) that wraps the same ``nn.Module`` waits on the same lock, so
two engines around one model take turns instead of racing on its modes and hooks.

Ctrl-C / "Interrupt kernel" cannot tear a borrow: while the main thread holds one, SIGINT goes
to a guard that holds the KeyboardInterrupt back as long as the interrupted code runs inside a
function registered with :func:`hold_interrupts` (entering and leaving a borrow, adding and
removing hooks), at any depth below it, and raises it as that function ends. So modes,
``requires_grad``, buffers, hooks and the lock are always saved and given back whole; the
computation itself stays interruptible.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType

import torch
from torch import nn


class ModelLock:
    """A re-entrant lock that tells how deep its owner holds it (``RLock._recursion_count``
    exists from Python 3.11 on only). Acquiring and releasing hold back a KeyboardInterrupt
    (see :func:`hold_interrupts`), so owner and depth always match the lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if self._owner == me:
            self._count += 1
        elif self._lock.acquire(blocking, timeout):
            self._owner, self._count = me, 1
        else:
            return False
        deliver_held_interrupt()
        return True

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError("cannot release a model lock this thread does not hold")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._lock.release()
        deliver_held_interrupt()

    def __enter__(self) -> ModelLock:
        depth = self._recursion_count()
        try:
            self.acquire()
        except BaseException:           # an interrupt delivered once the lock was taken
            if self._recursion_count() > depth:
                self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    def _recursion_count(self) -> int:
        """How many times this thread holds the lock (0 if it does not)."""
        return self._count if self._is_owned() else 0


_LOCKS: weakref.WeakKeyDictionary[nn.Module, ModelLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(module: nn.Module) -> ModelLock:
    """The one re-entrant lock of ``module``, shared by everything that borrows it."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(module)
        if lock is None:
            lock = _LOCKS[module] = ModelLock()
        return lock


def busy(module: nn.Module) -> bool:
    """Whether another thread holds ``module``'s lock now (a borrow would wait)."""
    lock = _LOCKS.get(module)
    return lock is not None and lock._owner not in (None, threading.get_ident())


# -- interrupts ------------------------------------------------------------------------------
_HELD: set[CodeType] = set()    # an interrupt inside these (at any depth) waits for their end
_WAITS: set[CodeType] = set()   # ... except inside these: waiting for the lock stays interruptible
_previous = None                # the SIGINT handler the guard stands in for
_pending = False                # an interrupt is held back


def hold_interrupts(*functions) -> None:
    """While a borrow holds the main thread, a KeyboardInterrupt that arrives during any of
    ``functions`` (or what they call) is held back; each of them ends with
    :func:`deliver_held_interrupt`, and must undo what it did if that raises."""
    _HELD.update(f.__code__ for f in functions)


def deliver_held_interrupt() -> None:
    """Raise the held-back KeyboardInterrupt, if any, unless held code above the calling
    function still runs (then that code delivers it). Main thread only."""
    global _pending
    if _pending and threading.get_ident() == threading.main_thread().ident \
            and not _held(sys._getframe(2)):
        _pending = False
        raise KeyboardInterrupt


def _held(frame) -> bool:
    while frame is not None:
        if frame.f_code in _WAITS:
            return False
        if frame.f_code in _HELD:
            return True
        frame = frame.f_back
    return False


def _guard(signum, frame):
    global _pending
    if _held(frame):
        _pending = True
    elif callable(_previous):
        _pending = False
        _previous(signum, frame)


def _install_guard() -> bool:
    """Make :func:`_guard` the SIGINT handler (main thread, outermost borrow); True if done."""
    global _previous, _pending
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is _guard or not callable(current):
        return False
    _previous, _pending = current, False
    try:
        signal.signal(signal.SIGINT, _guard)
    except ValueError:          # not the main interpreter
        return False
    return True


_WAITING: dict[int, int] = {}   # id(lock) -> threads waiting in _wait for it


def _wait(lock: ModelLock) -> None:
    """Acquire ``lock``; an interrupt may land here (the caller releases what it got)."""
    if lock.acquire(blocking=False):
        return
    key = id(lock)
    with _LOCKS_GUARD:
        _WAITING[key] = _WAITING.get(key, 0) + 1
    try:
        while not lock.acquire(timeout=0.05):
            pass
    finally:
        with _LOCKS_GUARD:
            _WAITING[key] -= 1
            if not _WAITING[key]:
                del _WAITING[key]


_WAITS.add(_wait.__code__)
hold_interrupts(ModelLock.acquire, ModelLock.release)


def hand_over(module: nn.Module, patience_s: float = 0.05) -> None:
    """Between two steps of a long computation: if another thread waits to borrow ``module``
    and this thread holds its lock once (the outermost borrow), let that thread have it and
    take it back when it is done, so a short interactive request (a pad stroke, a click) does
    not queue behind a long job. The model stays borrowed in between (eval mode, gradients
    off), which the other borrow saves and restores. Call it only where no hook of this
    computation is registered. Waits at most ``patience_s`` for the other thread to start."""
    lock = model_lock(module)
    key = id(lock)
    if not _WAITING.get(key) or lock._recursion_count() != 1:
        return
    lock.release()
    deadline = time.monotonic() + patience_s
    while _WAITING.get(key) and time.monotonic() < deadline:
        time.sleep(0.0005)          # until a waiter has taken the lock (it leaves _WAITING)
    lock.acquire()
    deliver_held_interrupt()


hold_interrupts(hand_over)


class _Saved:
    """Modes, ``requires_grad`` and (optionally) buffer values of a module tree, and the
    thread's grad mode (an interrupt may skip a ``torch.no_grad()`` exit inside a borrow)."""

    def __init__(self, module: nn.Module, buffers: bool):
        self.grad_mode = torch.is_grad_enabled()
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
        torch.set_grad_enabled(self.grad_mode)


class borrowed:
    """``with borrowed(module, eval_mode=True, keep_buffers=False) as m:`` — ``module`` under
    its lock, in eval mode (if ``eval_mode``) with parameter gradients off; every mode, every
    ``requires_grad`` and, with ``keep_buffers``, every buffer value restored on exit, after
    an error or an interrupt too. Re-entrant on one thread."""

    def __init__(self, module: nn.Module, eval_mode: bool = True, keep_buffers: bool = False):
        self.module, self.eval_mode, self.keep_buffers = module, eval_mode, keep_buffers
        self._lock = model_lock(module)
        self._saved: _Saved | None = None
        self._guarded = False

    def __enter__(self) -> nn.Module:
        self._guarded = _install_guard()   # an interrupt before this finds nothing taken
        depth = self._lock._recursion_count()
        try:
            _wait(self._lock)
            saved = _Saved(self.module, self.keep_buffers)
            self._saved = saved
            if self.eval_mode:
                self.module.eval()
            for p, _ in saved.grads:
                p.requires_grad_(False)
            deliver_held_interrupt()
        except BaseException:
            taken, self._saved = self._saved, None
            if taken is not None:
                taken.restore()
            self._give_back(depth)
            raise
        return self.module

    def __exit__(self, *exc) -> None:
        saved, self._saved = self._saved, None
        try:
            if saved is not None:
                saved.restore()
        finally:
            self._give_back(-1)
        deliver_held_interrupt()

    def _give_back(self, depth: int) -> None:
        """Release the lock (if this borrow holds it: its count is above ``depth``, -1 =
        surely) and put the previous SIGINT handler back if this borrow installed the guard."""
        if depth < 0 or self._lock._recursion_count() > depth:
            self._lock.release()
        if self._guarded:
            self._guarded = False
            signal.signal(signal.SIGINT, _previous)


hold_interrupts(borrowed.__enter__, borrowed.__exit__)


def uninterrupted(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with a KeyboardInterrupt held back until it returned: for torch
    internals that keep global state across Python calls (torch.func's transform stack)."""
    result = fn(*args, **kwargs)
    deliver_held_interrupt()
    return result


hold_interrupts(uninterrupted)


def lent(module: nn.Module | None, eval_mode: bool = True):
    """:class:`borrowed` for a module that may be None (an optional generator or encoder)."""
    return _nothing() if module is None else borrowed(module, eval_mode)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
