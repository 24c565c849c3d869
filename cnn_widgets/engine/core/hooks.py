"""Hooks on layers that live for one call: capture, replace, stop early. Always removed on exit.

A layer is a module call (``name``, ``name:k``) or, in a traced model, a functional node (see
:mod:`.graph`); a traced model runs as its graph, where every layer call can be watched."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from .borrow import deliver_held_interrupt, hold_interrupts
from .graph import Session, graph_of

_LOCAL = threading.local()


class _StopForward(Exception):
    """Raised inside a hook to skip the rest of the forward pass once the needed layer ran."""


def _this_thread_only(fn: Callable) -> Callable:
    """``fn`` as a hook that acts only on forward passes of the thread that registered it, so
    a model lent to another thread between two steps (:func:`~.borrow.hand_over`) runs there
    as if no hook were on it."""
    owner = threading.get_ident()

    def hook(*args):
        if threading.get_ident() == owner:
            return fn(*args)
        return None
    return hook


def _split(name: str) -> tuple[str, int]:
    """'layer1.0.relu:1' -> ('layer1.0.relu', 1); a plain name is call 0."""
    base, sep, k = name.rpartition(":")
    if sep and k.isdigit():
        return base, int(k)
    return name, 0


def _in_runner(model) -> bool:
    return id(model) in getattr(_LOCAL, "runners", ())


class _CallHooks:
    """Forward hooks on module calls ``name`` or ``name:k`` (the k-th call of the module in one
    forward pass) for direct calls ``model(x)`` on this thread; silent while the model's graph
    runs instead (its taps see the calls). ``functional``: layer names a direct call cannot
    see: such a call is refused."""

    def __init__(self, model: nn.Module, hooks: Mapping[str, Callable], functional=()):
        self.model, self.functional = model, list(functional)
        self.by_module: dict[str, dict[int, Callable]] = {}
        for name, fn in hooks.items():
            base, k = _split(name)
            self.by_module.setdefault(base, {})[k] = fn
        self.counts: dict[str, int] = {}
        self.handles: list = []

    def install(self) -> None:
        modules = dict(self.model.named_modules())
        unknown = [m for m in self.by_module if m not in modules]
        if unknown:
            raise KeyError(f"no module named {unknown[0]!r}")
        if not self.by_module and not self.functional:
            return
        self.handles.append(self.model.register_forward_pre_hook(_this_thread_only(self._begin)))
        for name, calls in self.by_module.items():
            self.handles.append(modules[name].register_forward_hook(
                _this_thread_only(self._make(name, calls))))

    def _begin(self, module, inputs):
        if _in_runner(self.model):
            return None
        if self.functional:
            from .errors import InvalidArgument
            raise InvalidArgument(f"layers {self.functional} are functions inside forward(): "
                                  "only a run of the model's graph sees them; call "
                                  "hooks.forward(model, x) instead of model(x)")
        self.counts.clear()
        return None

    def _make(self, name, calls):
        def hook(module, inputs, output):
            if _in_runner(self.model):
                return None
            k = self.counts.get(name, 0)
            self.counts[name] = k + 1
            if _EVERY in calls:
                return calls[_EVERY](f"{name}:{k}" if k else name, module, inputs, output)
            fn = calls.get(k)
            return None if fn is None else fn(module, inputs, output)
        return hook

    def remove(self) -> None:
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()


class hooked:
    """``with hooked(model, {name: hook(module, inputs, output)}):`` the hooks watch the named
    layers (module calls ``name`` / ``name:k``, and functional layers of the model's graph) for
    the with-block, on this thread's forward passes only; a hook's non-None return replaces
    the layer's output. Adding and removing them is never torn by an interrupt."""

    def __init__(self, model: nn.Module, hooks: Mapping[str, Callable]):
        self.model, self.hooks = model, dict(hooks)
        self._calls: _CallHooks | None = None
        self._pushed = False

    def __enter__(self) -> None:
        graph = graph_of(self.model)
        functional = [n for n in self.hooks if graph is not None and n in graph.by_name
                      and graph.by_name[n].module is None]
        modules = {n: f for n, f in self.hooks.items() if n not in functional}
        try:
            self._calls = _CallHooks(self.model, modules, functional)
            self._calls.install()
            _active(self.model).append(self.hooks)
            self._pushed = True
            deliver_held_interrupt()
        except BaseException:
            self._remove()
            raise

    def __exit__(self, *exc) -> None:
        self._remove()
        deliver_held_interrupt()

    def _remove(self) -> None:
        if self._calls is not None:
            self._calls.remove()
        if self._pushed:
            self._pushed = False
            stack = _active(self.model)
            if stack and stack[-1] is self.hooks:
                stack.pop()


hold_interrupts(hooked.__enter__, hooked.__exit__)


def _active(model) -> list:
    """This thread's stack of ``hooked`` mappings on ``model``."""
    return _LOCAL.__dict__.setdefault("active", {}).setdefault(id(model), [])


def forward(model: nn.Module, x: torch.Tensor, taps: Mapping[str, Callable] | None = None,
            subs: Mapping[str, Callable] | None = None, module: nn.Module | None = None):
    """``model(x)`` with ``taps`` (layer name -> hook(module, inputs, output)) and the hooks of
    the enclosing :class:`hooked` blocks watching their layers. A traced model runs as its
    graph, so every layer name works (module calls, ``name:k``, functional layers) and
    ``subs`` (layer name -> sub(call, args, kwargs)) can compute a layer in another way.
    ``module``: a copy of the graph's runner to run instead (see :mod:`.graph`).
    An untraced model runs itself, with module hooks."""
    graph = graph_of(model)
    if graph is None:
        if subs:
            from .errors import InvalidArgument
            raise InvalidArgument("replacing layers needs the model's torch.fx graph")
        calls = _CallHooks(model, taps or {})
        with _installed(calls):
            return model(x)
    session = Session()
    for mapping in [*_active(model), taps or {}]:
        for name, fn in mapping.items():
            session.taps.setdefault(_index(graph, name), []).append(fn)
    for name, fn in (subs or {}).items():
        session.subs[_index(graph, name)] = fn
    runners = _LOCAL.__dict__.setdefault("runners", set())
    mine = id(model) not in runners
    runners.add(id(model))
    try:
        return graph.run(x, session, module)
    finally:
        if mine:
            runners.discard(id(model))


class _installed:
    def __init__(self, calls: _CallHooks):
        self.calls = calls

    def __enter__(self):
        try:
            self.calls.install()
            deliver_held_interrupt()
        except BaseException:
            self.calls.remove()
            raise

    def __exit__(self, *exc):
        self.calls.remove()
        deliver_held_interrupt()


hold_interrupts(_installed.__enter__, _installed.__exit__)


_EVERY = -1


def every_call(model: nn.Module, names: Iterable[str], fn: Callable) -> _installed:
    """``with every_call(model, modules, fn):`` ``fn(layer_name, module, inputs, output)``
    after every call of the named modules in this thread's direct calls of ``model``
    (``layer_name``: ``name`` for the first call in a forward pass, ``name:k`` for the k-th)."""
    calls = _CallHooks(model, {})
    calls.by_module = {n: {_EVERY: fn} for n in names}
    return _installed(calls)


def _index(graph, name: str) -> int:
    call = graph.by_name.get(name)
    if call is None:
        raise KeyError(f"no layer named {name!r}")
    return call.index


def run_capturing(model: nn.Module, x: torch.Tensor, names: Iterable[str], *,
                  stop_after: str | None = None, clone: bool = True,
                  replace: Mapping[str, Callable] | None = None) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` (through :func:`forward`) and return the outputs of the named layers.

    ``stop_after``: skip everything after that layer ran (its output must be among ``names``).
    ``clone``: copy captured outputs, because a later in-place op (``ReLU(inplace=True)``)
    would otherwise overwrite them. ``replace``: name -> hook(module, inputs, output) whose
    return value replaces the layer's output.
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

    taps = {n: make_hook(n) for n in {*names, *replace, *([stop_after] if stop_after is not None else [])}}
    try:
        captured[""] = forward(model, x, taps)
    except _StopForward:
        pass
    return captured


def layer_value(model: nn.Module, x: torch.Tensor, layer: str,
                subs: Mapping[str, Callable] | None = None, module: nn.Module | None = None):
    """The output of ``layer`` for ``x``, the forward pass stopped there (see :func:`forward`
    for ``subs`` and ``module``); not a copy."""
    got = {}

    def tap(mod, inputs, output):
        got["out"] = output
        raise _StopForward
    try:
        forward(model, x, {layer: tap}, subs, module)
    except _StopForward:
        pass
    return got["out"]


def hook_count(model: nn.Module) -> int:
    """Number of forward/backward hooks on all modules (a test asserts it is unchanged)."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_backward_pre_hooks", "_forward_hooks_with_kwargs"):
            total += len(getattr(m, attr, {}) or {})
    return total
