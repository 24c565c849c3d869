"""Noticing that the user changed the model after the engine traced it.

A traced graph freezes what ``forward`` read at tracing time: which submodule sits at each path,
and the Python values it used (a scale, a flag). :func:`signature` is the cheap structural
part, taken at the start of every engine call: the module tree (paths, identities, classes and
their ``forward``), every parameter's and buffer's identity, shape, dtype and device, and every
plain attribute of every module by value (other objects by identity). Its cost grows with
the number of modules (1.5 ms for a ResNet-50 on a CPU, 1.4% of a one-image forward pass).

What no signature sees (a global that ``forward`` reads, a list changed in place) the
:class:`Probe` catches: the graph's output against ``model(x)`` on one fixed image (two
one-image forward passes), at the start of a call when the last check is older than its cost
divided by ``PROBE_SHARE`` (so at most that share of the wall time; between two notebook cells
it always runs) and no other thread holds the model (a call never waits for it).

:func:`checked` marks the engine's public calls: the outermost one on a thread first brings
the engine up to date (see ``ModelHost.refresh``).
"""
from __future__ import annotations

import enum
import functools
import inspect
import threading
import time

import torch
from torch import nn

PROBE_SHARE = 0.05         # the probe's share of wall time, at most
_INTERNAL = frozenset(nn.Module().__dict__)     # nn.Module's own bookkeeping (hooks, modes)
_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device,
          torch.Size, enum.Enum)
_NUMBERS = frozenset({int, float, bool})


def _value(v, depth: int = 0) -> str:
    """A comparable stand-in of an attribute: plain values and short tuples/lists of them by
    value, tensors by identity and shape, anything else by identity."""
    if isinstance(v, _PLAIN):
        return repr(v)
    if type(v) is tuple and all(type(i) in _NUMBERS for i in v):     # kernel sizes, strides
        return repr(v)
    if isinstance(v, (tuple, list)) and len(v) <= 64 and depth < 3:
        return f"{type(v).__name__}[{','.join(_value(i, depth + 1) for i in v)}]"
    if isinstance(v, torch.Tensor):
        return f"tensor{_tensor(v)}"
    return f"object{id(v)}"


def _tensor(t) -> str:
    return "None" if t is None else f"{id(t)}:{t.shape}:{t.dtype}:{t.get_device()}"


def signature(model: nn.Module) -> str:
    """What the traced graph of ``model`` depends on besides the weights' values (see the
    module docstring); equal signatures: the graph still describes the model. Text, so that
    taking it at every call creates no objects for the garbage collector to track."""
    parts: list[str] = []
    for name, m in model.named_modules():
        d = m.__dict__
        cls = type(m)
        parts.append(f"\n{name}:{id(m)}:{id(cls)}:{id(cls.forward)}")
        parts += [f"{k}={_value(v)}" for k, v in d.items() if k not in _INTERNAL]
        parts += [f"p{k}={_tensor(t)}" for k, t in d["_parameters"].items()]
        parts += [f"b{k}={_tensor(t)}" for k, t in d["_buffers"].items()]
    return "|".join(parts)


def plain_attributes(module: nn.Module) -> str:
    """The module's plain attributes (hyper-parameters, scales, flags) as text, the same in
    every process (devices left out: ranks differ in them): for fingerprints."""
    return ", ".join(f"{k}={v!r}" for k, v in sorted(module.__dict__.items())
                     if k not in _INTERNAL and isinstance(v, _PLAIN + (tuple, list))
                     and not isinstance(v, torch.device))


def outputs_agree(direct, traced) -> bool:
    """Whether the graph's output equals ``model(x)`` (the tolerance the trace checks with)."""
    return (isinstance(direct, torch.Tensor) and isinstance(traced, torch.Tensor)
            and direct.shape == traced.shape
            and bool(torch.allclose(direct, traced, rtol=1e-4, atol=1e-5)))


class Probe:
    """When to compare the graph with ``model(x)`` again: when the time since the last probe
    is at least its cost divided by ``PROBE_SHARE``."""

    def __init__(self):
        self.at, self.cost = float("-inf"), 0.0

    def due(self) -> bool:
        return time.perf_counter() - self.at >= self.cost / PROBE_SHARE

    def done(self, cost: float) -> None:
        """The graph was just compared with ``model(x)`` (a trace checks it), in ``cost`` s."""
        self.at, self.cost = time.perf_counter(), cost

    def run(self, graph, model: nn.Module, x: torch.Tensor) -> bool:
        """True when the graph's output for ``x`` equals ``model(x)``; call borrowing the model."""
        start = time.perf_counter()
        try:
            if any(m.training for m in model.modules()):
                return True                      # train mode may be random: nothing to compare
            with torch.no_grad():
                try:
                    direct = model(x)
                except Exception:  # noqa: BLE001 - the user's model fails: the call will say so
                    return True
                try:
                    traced = graph.run(x)
                except Exception:  # noqa: BLE001 - the graph no longer runs: retrace
                    return False
                return outputs_agree(direct, traced)
        finally:
            self.at = time.perf_counter()
            self.cost = self.at - start


_CALLS = threading.local()


def checked(fn):
    """``fn`` (a method of a ``ModelHost``) that first calls ``self.refresh()`` when it is the
    outermost checked call of that engine on this thread."""
    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        active = _CALLS.__dict__.setdefault("active", set())   # engines in a call here
        key = id(self)
        if key in active:                       # an inner call: the outer one refreshed
            return fn(self, *args, **kwargs)
        active.add(key)
        try:
            self.refresh()
            return fn(self, *args, **kwargs)
        finally:
            active.remove(key)
    call.__checked__ = True
    return call


def check_public_methods(cls) -> None:
    """Wrap every public function defined on ``cls`` with :func:`checked` (once)."""
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(fn) and name not in _UNCHECKED \
                and not getattr(fn, "__checked__", False):
            setattr(cls, name, checked(fn))


# lifetime and borrowing: no analysis, no refresh
_UNCHECKED = frozenset({"close", "on_close", "borrow", "hand_over", "refresh", "normalize"})
