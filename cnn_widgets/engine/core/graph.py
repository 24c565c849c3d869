"""The forward pass as a graph (torch.fx): one layer per module *call* and per functional gate,
residual add and concatenation, in forward order, named as users know the modules.

Names: a module call is the module's path (``layer1.0.conv1``); a functional node is the path
of the module whose ``forward`` calls it plus the function (``layer1.0.add``, ``features.relu``
inside ``features``, plain ``relu`` at the top). The k-th layer (k >= 1) with the same name gets
``:k``: ResNet's BasicBlock calls ``relu`` twice, ``layer1.0.relu`` and ``layer1.0.relu:1``.
A plain module name is its first call.

The graph runs as a ``GraphModule`` that shares the user's submodules (nothing of the model is
changed or copied) and calls every layer through :func:`run_node`, where a thread's session can
watch (tap) or replace (substitute) one call; other threads run it plainly.
"""
from __future__ import annotations

import itertools
import operator
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .borrow import uninterrupted
from .change import Probe, outputs_agree, signature
from .model_hooks import InlinedHooks, call_with_hooks, has_forward_hooks
from .results import LayerInfo

# functional nodes that are layers: target -> (name, kind); kind as the equivalent module's
_FUNCTIONS = {
    F.relu: ("relu", "ReLU"), torch.relu: ("relu", "ReLU"), torch.relu_: ("relu", "ReLU"),
    F.relu_: ("relu", "ReLU"), F.leaky_relu: ("leaky_relu", "LeakyReLU"),
    F.max_pool1d: ("max_pool1d", "MaxPool1d"), F.max_pool2d: ("max_pool2d", "MaxPool2d"),
    torch.max_pool1d: ("max_pool1d", "MaxPool1d"), torch.max_pool2d: ("max_pool2d", "MaxPool2d"),
    F.avg_pool2d: ("avg_pool2d", "AvgPool2d"),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", "AdaptiveAvgPool2d"),
    F.adaptive_max_pool2d: ("adaptive_max_pool2d", "AdaptiveMaxPool2d"),
    operator.add: ("add", "add"), operator.iadd: ("add", "add"), torch.add: ("add", "add"),
    torch.cat: ("cat", "cat"), torch.concat: ("cat", "cat"),
}
_METHODS = {"relu": ("relu", "ReLU"), "relu_": ("relu", "ReLU"), "add": ("add", "add"),
            "add_": ("add", "add")}
_KEYS = itertools.count(1)
_TABLES: dict[int, dict[int, Callable]] = {}     # graph key -> layer index -> function
_LOCAL = threading.local()


@dataclass(frozen=True)
class Call:
    """One layer of the graph: a module call or a functional gate/add/cat node."""
    name: str
    kind: str                   # module class name, or the module kind a function stands for
    index: int                  # position among the layers (forward order)
    node: str                   # the torch.fx node's name
    module: str | None          # the called module's path; None for a function
    target: object              # the module, the function or the method name


class Session:
    """What one thread does to one graph's layers while it runs: ``taps[i]``: callables
    ``tap(module_or_None, args, output)`` whose non-None return replaces the output;
    ``subs[i]``: ``sub(call, args, kwargs)`` computing the layer instead of ``call``."""

    def __init__(self, taps: Mapping[int, list] | None = None, subs: Mapping[int, Callable] | None = None):
        self.taps, self.subs = dict(taps or {}), dict(subs or {})


def run_node(key, idx, fn, /, *args, **kwargs):
    """Every layer of a graph runs through here (``fn``: the module, a method name, or None
    for the graph's function table)."""
    if fn is None:
        call = _TABLES[key][idx]
    elif isinstance(fn, str):
        call = _method(fn)
    else:
        call = fn
    session = getattr(_LOCAL, "sessions", {}).get(key)
    if session is None:
        return call(*args, **kwargs)
    sub = session.subs.get(idx)
    out = call(*args, **kwargs) if sub is None else sub(call, args, kwargs)
    for tap in session.taps.get(idx, ()):
        new = tap(fn if isinstance(fn, nn.Module) else None, args, out)
        if new is not None:
            out = new
    return out


def _method(name):
    return lambda self, *a, **k: getattr(self, name)(*a, **k)


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer with every module without children as a leaf too (custom layers)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return super().is_leaf_module(m, qualname) or not any(True for _ in m.children())


def _scope(node) -> str:
    """Path of the module whose forward made ``node`` ('' at the top)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _is_tensor(node) -> bool:
    return isinstance(node, torch.fx.Node) and hasattr(node.meta.get("tensor_meta"), "shape")


def _layer_of(node) -> tuple[str, str] | None:
    """(base name, kind) if ``node`` is a layer, else None (kind "" for a module call: its
    kind is the module's type)."""
    if not _is_tensor(node):
        return None
    if node.op == "call_module":
        return node.target, ""
    if node.op == "call_function" and node.target in _FUNCTIONS:
        base, kind = _FUNCTIONS[node.target]
    elif node.op == "call_method" and node.target in _METHODS:
        base, kind = _METHODS[node.target]
    elif node.op in ("call_function", "call_method") and any(u.op == "output" for u in node.users):
        # the model's output made by a function (SqueezeNet's torch.flatten after its last
        # module): a layer, so that the logits are the output's shape
        base = getattr(node.target, "__name__", str(node.target))
        kind = base
    else:
        return None
    if kind == "add" and sum(_is_tensor(a) for a in node.args) < 2:
        return None                              # x + constant: not a merge of branches
    scope = _scope(node)
    return (f"{scope}.{base}" if scope else base), kind


class ModelGraph:
    """The traced forward pass of one model: ``calls`` (the layers), ``fx`` (the torch.fx graph,
    every tensor node's ``meta['tensor_meta'].shape`` filled in), ``module`` (the runner),
    ``signature`` (:func:`~.change.signature` of the model when traced), ``mode`` (its
    ``training`` flag then), ``output_shape`` (the model's output for one input), ``probe``
    (when it was last compared with the model: shared, like the graph, by its engines)."""

    def __init__(self, model: nn.Module, graph: torch.fx.Graph, output_shape: tuple = ()):
        self.key = next(_KEYS)
        self.fx = graph
        self.mode = model.training                  # the train/eval mode it was traced in
        self.signature = signature(model)           # the model it describes (see .change)
        self.output_shape = tuple(output_shape)
        self.probe = Probe()
        counts: dict[str, int] = {}
        calls: list[Call] = []
        table = {}
        modules = dict(model.named_modules())
        for node in graph.nodes:
            found = _layer_of(node)
            if found is None:
                continue
            base, kind = found
            k = counts.get(base, 0)
            counts[base] = k + 1
            name = base if k == 0 else f"{base}:{k}"
            if node.op == "call_module":
                module = modules[node.target]
                calls.append(Call(name, type(module).__name__, len(calls), node.name,
                                  node.target, module))
            else:
                calls.append(Call(name, kind, len(calls), node.name, None, node.target))
                if node.op == "call_function":
                    table[len(calls) - 1] = node.target
        self.calls = calls
        self.by_name = {c.name: c for c in calls}
        self.by_node = {c.node: c for c in calls}
        _TABLES[self.key] = table
        weakref.finalize(self, _TABLES.pop, self.key, None)
        self.module = torch.fx.GraphModule(model, self._runner_graph())
        self._model = weakref.ref(model)
        self._inlined = InlinedHooks(model, {c.module for c in calls if c.module})

    def _runner_graph(self) -> torch.fx.Graph:
        new = torch.fx.Graph()
        env: dict[torch.fx.Node, torch.fx.Node] = {}
        for node in self.fx.nodes:
            call = self.by_node.get(node.name)
            if call is None:
                env[node] = new.node_copy(node, lambda n: env[n])
                continue
            args = torch.fx.map_arg(node.args, lambda n: env[n])
            kwargs = torch.fx.map_arg(node.kwargs, lambda n: env[n])
            fn = (new.get_attr(node.target) if node.op == "call_module"
                  else node.target if node.op == "call_method" else None)
            env[node] = new.call_function(run_node, (self.key, call.index, fn, *args), kwargs)
        return new

    @property
    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(c.name, c.kind, tuple(self.node(c).meta["tensor_meta"].shape[1:]))
                for c in self.calls]

    def node(self, call: Call) -> torch.fx.Node:
        return self._nodes()[call.node]

    def _nodes(self) -> dict:
        if not hasattr(self, "_node_map"):
            self._node_map = {n.name: n for n in self.fx.nodes}
        return self._node_map

    def run(self, x: torch.Tensor, session: Session | None = None, module: nn.Module | None = None):
        """The runner (or ``module``, a copy of it) on ``x`` with ``session`` active on this
        thread, between the model's own forward hooks."""
        sessions = _LOCAL.__dict__.setdefault("sessions", {})
        previous = sessions.get(self.key)
        sessions[self.key] = session or Session()
        model, runner = self._model(), module or self.module
        self._inlined.check()
        try:
            if model is not None and has_forward_hooks(model):
                return call_with_hooks(model, runner, x)
            return runner(x)
        finally:
            if previous is None:
                sessions.pop(self.key, None)
            else:
                sessions[self.key] = previous

    def upstream(self, name: str) -> list[Call]:
        """The layers whose output ``name``'s output depends on (itself included), in order."""
        todo, seen = [self.node(self.by_name[name])], set()
        while todo:
            node = todo.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            todo.extend(node.all_input_nodes)
        return [c for c in self.calls if c.node in seen]


def trace(model: nn.Module, example: torch.Tensor, direct=None) -> tuple[ModelGraph, torch.Tensor]:
    """(the graph of ``model``, its output for ``example``). ``direct``: ``model(example)``
    if already computed. Call borrowing the model: tracing patches ``nn.Module.__call__``
    process-wide, so no other forward pass of it may run meanwhile, and it is never cut short by
    an interrupt (which would leave the patch)."""
    graph = uninterrupted(_Tracer().trace, model)
    plain = torch.fx.GraphModule(model, graph)
    with torch.no_grad():
        out = _Shapes(plain).run(example)
        if not any(m.training for m in model.modules()):     # train mode may be random
            direct = model(example) if direct is None else direct
            if has_forward_hooks(model):
                out = call_with_hooks(model, plain, example)
            if not outputs_agree(direct, out):
                raise RuntimeError("the traced graph does not reproduce the model's output")
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    return ModelGraph(model, graph, shape), out


class _Shapes(torch.fx.Interpreter):
    """torch.fx's ShapeProp without its printed traceback when a node fails (the engine
    reports the failure itself): every tensor node's ``meta['tensor_meta']``."""

    def run_node(self, n):
        from torch.fx.passes.shape_prop import _extract_tensor_metadata
        result = super().run_node(n)
        found = []

        def meta(obj):
            if isinstance(obj, torch.Tensor):
                found.append(True)
                return _extract_tensor_metadata(obj)
            return obj
        described = torch.fx.node.map_aggregate(result, meta)
        if found:
            n.meta["tensor_meta"] = described
        n.meta["type"] = type(result)
        return result


# graphs of models, set by the engine that built them (hooks look them up by model), one per
# train/eval mode of the model at tracing time (``self.training`` branches are traced as constants)
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GRAPHS_LOCK = threading.Lock()


def register(model: nn.Module, graph: ModelGraph, replace: bool = False) -> ModelGraph:
    """Make ``graph`` the one hooks use for ``model`` in the mode it was traced in, and return
    the one in use: another engine's graph of the same model as it is now stays (engines on one
    model share it), unless ``replace``; graphs of an earlier state of the model are dropped."""
    with _GRAPHS_LOCK:
        graphs = _GRAPHS.setdefault(model, {})
        for mode in [m for m, g in graphs.items() if g.signature != graph.signature]:
            del graphs[mode]
        if replace or graph.mode not in graphs:
            graphs[graph.mode] = graph
        return graphs[graph.mode]


def forget(model: nn.Module) -> None:
    """Drop every graph of ``model``: as it is now it cannot be traced (hooks then run it
    directly, never through a graph of an earlier state)."""
    with _GRAPHS_LOCK:
        _GRAPHS.pop(model, None)


def registered(model: nn.Module, mode: bool) -> ModelGraph | None:
    """The graph in use for ``model`` in train (True) or eval (False) mode, if any."""
    return (_GRAPHS.get(model) or {}).get(mode)


def graph_of(model: nn.Module) -> ModelGraph | None:
    """The graph an engine traced for ``model`` in its current mode (None: none traced, or the
    model could not be traced)."""
    graphs = _GRAPHS.get(model)
    if not graphs:
        return None
    return graphs.get(model.training) or next(iter(graphs.values()))
