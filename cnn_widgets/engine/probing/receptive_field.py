"""Receptive fields from layer geometry (the probing paper's field of view, FOV), through any
graph of layers (the model's torch.fx graph, :mod:`~cnn_widgets.engine.core.graph`).

A unit at (y, x) of a layer sees a box of input pixels. Walking the graph from the input, every
conv/pool maps an output index to the range of input indices its window touches (kernel,
stride, padding, dilation, ceil mode; taps in the zero padding see nothing); composing these
index ranges node by node gives the box exactly, clipped to the image. Elementwise nodes (ReLU,
BatchNorm, dropout) keep it; a node with several inputs (a residual add, a concatenation, an
inception block's branches) sees the union of what its inputs see; a tensor that leaves the
spatial grid (flatten, linear, global pooling) sees the union of all its positions' fields.
Rows and columns stay separate: each position's field is a box, the bounding box of the union.
"""
from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import validate as check
from ..core.errors import NotAChain, UnitOutOfRange
from ..core.model import ModelHost
from ..core.shapes import pair

_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_PADS = (nn.ZeroPad2d, nn.ConstantPad2d)
# positional parameters of functional windows (defaults as torch's)
_WINDOW_ARGS = {
    F.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    torch.max_pool2d: ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    F.avg_pool2d: ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    F.conv2d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
}
_FUNCTIONAL_ADAPTIVE = (F.adaptive_avg_pool2d, F.adaptive_max_pool2d)
_AXIS_MOVERS = {"transpose", "permute", "swapaxes", "movedim", "flip", "roll", "rot90"}
_UNSUPPORTED = {F.interpolate, F.pad, F.grid_sample, F.unfold, F.fold, F.pixel_shuffle,
                torch.roll, torch.flip, torch.rot90}
_AXIS_FUNCTIONS = {torch.transpose: "transpose", torch.swapaxes: "swapaxes",
                   torch.permute: "permute", torch.movedim: "movedim"}
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BIG = np.iinfo(np.int64).max


@dataclass(frozen=True)
class ReceptiveField:
    """The input box a unit at (y, x) of ``layer`` can see: rows top..bottom-1 and columns
    left..right-1, in input pixels (bottom and right exclusive)."""
    layer: str
    y: int
    x: int
    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) to index an (..., H, W) array with."""
        return slice(self.top, self.bottom), slice(self.left, self.right)


@dataclass(frozen=True)
class FieldMap:
    """Receptive fields of every position of one layer, separable per axis: the unit at
    (y, x) sees rows top[y]..bottom[y]-1 and columns left[x]..right[x]-1 (int64 arrays;
    one position for a layer without a spatial grid)."""
    layer: str
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def grid(self) -> tuple[int, int]:
        return len(self.top), len(self.left)

    def boxes(self) -> np.ndarray:
        """(H, W, 4) array of (top, left, bottom, right) for every position."""
        h, w = self.grid
        out = np.empty((h, w, 4), dtype=np.int64)
        out[..., 0], out[..., 2] = self.top[:, None], self.bottom[:, None]
        out[..., 1], out[..., 3] = self.left[None, :], self.right[None, :]
        return out


# -- geometry ----------------------------------------------------------------------------------
def zero_padding(m: nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) -> tuple[int, int]:
    """(top, left) zero padding of a conv/pool, also for Conv2d(padding='same' / 'valid')."""
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            return 0, 0
        (dh, dw), (kh, kw) = pair(getattr(m, "dilation", 1)), pair(m.kernel_size)
        return dh * (kh - 1) // 2, dw * (kw - 1) // 2
    return pair(pad)


class _Field:
    """Per-axis inclusive input ranges (lo, hi) of every position of a node's grid (rows,
    columns); ``grid`` False: the node is off the grid, one position seeing the union."""

    def __init__(self, rows, cols, grid=True):
        self.rows, self.cols, self.grid = rows, cols, grid

    @property
    def size(self):
        return len(self.rows[0]), len(self.cols[0])

    def union_all(self) -> _Field:
        rows, cols = [(np.array([a[0].min()]), np.array([a[1].max()]))
                      for a in (self.rows, self.cols)]
        return _Field(rows, cols, grid=False)


def _cached(engine, key, compute):
    """``compute(engine)``, computed once per graph of the engine's model (an edited model is
    traced again: a new graph) and key."""
    cached = _CACHE.setdefault(engine.require_graph("receptive fields"), {})
    if key not in cached:
        cached[key] = compute(engine)
    return cached[key]


def _shape(node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else None


def _grid(node):
    shape = _shape(node)
    return shape[-2:] if shape is not None and len(shape) >= 4 else None


def _windowed(field, n_out, k, s, p, d):
    axes = []
    for a, (lo, hi) in enumerate((field.rows, field.cols)):
        taps = np.arange(n_out[a])[:, None] * s[a] - p[a] + d[a] * np.arange(k[a])[None, :]
        axes.append(_compose(lo, hi, taps, (taps >= 0) & (taps < len(lo))))
    return _Field(*axes)


def _adaptive(field, n_out):
    axes = []
    for a, (lo, hi) in enumerate((field.rows, field.cols)):
        n_in, i = len(lo), np.arange(n_out[a])
        first, last = (i * n_in) // n_out[a], -((-(i + 1) * n_in) // n_out[a]) - 1
        taps = first[:, None] + np.arange(int((last - first).max()) + 1)[None, :]
        axes.append(_compose(lo, hi, taps, taps <= last[:, None]))
    return _Field(*axes)


def _window_params(node, module):
    """(kernel, stride, padding, dilation) of a windowed module or function; None if not one."""
    if module is not None:
        if not isinstance(module, _WINDOWED):
            return None
        if getattr(module, "padding_mode", "zeros") != "zeros":
            raise NotAChain(f"{type(module).__name__} {node.target!r} pads with "
                            f"{module.padding_mode!r}: its windows wrap or mirror, only zero "
                            "padding is supported")
        return (pair(module.kernel_size), pair(module.stride), zero_padding(module),
                pair(getattr(module, "dilation", 1)))
    names = _WINDOW_ARGS.get(node.target) if node.op == "call_function" else None
    if names is None:
        return None
    a = dict(zip(names, node.args)) | dict(node.kwargs)
    if node.target is F.conv2d:
        k = _shape(a["weight"])[2:]
        d = pair(a.get("dilation", 1))
        p = a.get("padding", 0)
        if isinstance(p, str):
            p = (0, 0) if p == "valid" else tuple(di * (ki - 1) // 2 for di, ki in zip(d, k))
        return tuple(k), pair(a.get("stride", 1)), pair(p), d
    k = pair(a["kernel_size"])
    return k, pair(a.get("stride") or k), pair(a.get("padding", 0)), pair(a.get("dilation", 1))


def _node_field(node, module, fields) -> _Field | None:
    """The field of one node from its inputs' fields (None: the node does not depend on the
    image or is not a tensor)."""
    inputs = [fields[n.name] for n in node.all_input_nodes if fields.get(n.name) is not None]
    if not inputs:
        return None
    shape, grid = _shape(node), _grid(node)
    tupled = shape is None and isinstance(node.meta.get("tensor_meta"), (tuple, list))
    if shape is None and not tupled and node.op != "output":
        return None
    what = f"{node.op} {getattr(node.target, '__name__', node.target)!r} ({node.name})"
    mover = node.target if node.op == "call_method" else _AXIS_FUNCTIONS.get(node.target)
    if node.target in _UNSUPPORTED or (mover in _AXIS_MOVERS and not _keeps_last_axes(node, mover)):
        raise NotAChain(f"cannot derive receptive fields through {what}: it moves or resamples "
                        "the spatial grid")
    window = _window_params(node, module)
    if window is not None and grid is not None:
        return _windowed(inputs[0], grid, *window)
    if grid is not None and (isinstance(module, _ADAPTIVE) or node.target in _FUNCTIONAL_ADAPTIVE):
        return _adaptive(inputs[0], grid)
    if grid is not None and isinstance(module, _PADS):
        pad = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 4
        return _windowed(inputs[0], grid, (1, 1), (1, 1), (pad[2], pad[0]), (1, 1))
    if node.target is operator.getitem and not _keeps_grid_index(node):
        raise NotAChain(f"cannot derive receptive fields through {what}: it slices the grid")
    if tupled:                                     # split / chunk: along channels only
        grids = {tuple(m.shape[-2:]) for m in node.meta["tensor_meta"] if hasattr(m, "shape")}
        if len(grids) == 1 and all(f.grid and f.size == next(iter(grids)) for f in inputs):
            return _union(inputs, next(iter(grids)), what)
        raise NotAChain(f"cannot derive receptive fields through {what}")
    if grid is None:
        return _union([f.union_all() for f in inputs], (1, 1), what, on_grid=False)
    return _union(inputs, grid, what)


def _union(inputs, grid, what, on_grid=True) -> _Field:
    """Position-wise union of the inputs' fields on ``grid``: an input on the same grid counts
    per position, a 1x1 or off-grid one (a broadcast scale) everywhere; onto a 1x1 grid from a
    larger one (a reduction) every position counts."""
    rows = [np.full(grid[0], _BIG), np.full(grid[0], -1)]
    cols = [np.full(grid[1], _BIG), np.full(grid[1], -1)]
    for f in inputs:
        if f.grid and f.size == tuple(grid):
            part = f
        elif f.size == (1, 1) or tuple(grid) == (1, 1):
            part = f.union_all()
        else:
            raise NotAChain(f"cannot derive receptive fields through {what}: an input on a "
                            f"{f.size} grid becomes a {tuple(grid)} grid")
        for acc, (lo, hi) in ((rows, part.rows), (cols, part.cols)):
            acc[0] = np.minimum(acc[0], lo)
            acc[1] = np.maximum(acc[1], hi)
    return _Field(tuple(rows), tuple(cols), on_grid)


def _keeps_last_axes(node, mover: str) -> bool:
    """A transpose/permute (method or function) that leaves the last two (spatial) axes where
    they are (ShuffleNet's channel shuffle)."""
    shape = _shape(node.all_input_nodes[0])
    if shape is None or len(shape) < 4 or mover not in ("transpose", "swapaxes", "permute"):
        return False
    nd = len(shape)
    args = list(node.args[1:]) + [node.kwargs[k] for k in ("dim0", "dim1", "dims") if k in node.kwargs]
    dims = args[0] if mover == "permute" and len(args) == 1 else args
    dims = [int(d) % nd for d in dims]
    if mover == "permute":
        return dims[-2:] == [nd - 2, nd - 1]
    return not {nd - 2, nd - 1} & set(dims)


def _keeps_grid_index(node) -> bool:
    """``x[index]`` that leaves the spatial axes whole (or picks an element of a tuple)."""
    src, index = node.args[0], node.args[1]
    shape = _shape(src)
    if shape is None or len(shape) < 4:           # an element of a split tuple, or off-grid
        return True
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        return index[-1] is Ellipsis
    return len(index) <= len(shape) - 2


def _compute_fields(engine, start: str | None = None):
    """(layer name -> FieldMap, layer name -> why it has none). start: a layer whose output
    grid plays the input's part (fields in its positions, for the layers that depend on it)."""
    graph = engine.require_graph("receptive fields")
    seed = graph.by_name[start].node if start is not None else None
    modules = dict(engine.model.named_modules())
    fields: dict = {}
    broken: dict[str, str] = {}
    for node in graph.fx.nodes:
        if node.name == seed or (seed is None and node.op == "placeholder"):
            h, w = _grid(node) if seed is not None else engine.input_shape[1:]
            fields[node.name] = _Field((np.arange(h), np.arange(h)), (np.arange(w), np.arange(w)))
            continue
        why = next((broken[n.name] for n in node.all_input_nodes if n.name in broken), None)
        if why is None:
            module = modules.get(node.target) if node.op == "call_module" else None
            try:
                fields[node.name] = _node_field(node, module, fields)
            except NotAChain as e:
                why = str(e)
        if why is not None:
            broken[node.name] = why
    maps, missing = {}, {}
    for call in graph.calls:
        f = fields.get(call.node)
        if call.node in broken:
            missing[call.name] = broken[call.node]
        elif f is not None:
            maps[call.name] = FieldMap(call.name, *_bounds(*f.rows), *_bounds(*f.cols))
    return maps, missing


def _compose(lo, hi, taps, valid):
    """Input pixel range of each output index: the union of the ranges of the taps it reads
    (not monotone with dilation and padding, hence min/max over the taps)."""
    t = np.clip(taps, 0, len(lo) - 1)
    return (np.where(valid, lo[t], _BIG).min(1), np.where(valid, hi[t], -1).max(1))


def _bounds(lo, hi):
    """(first, end) per index from inclusive (lo, hi); an index whose window lies wholly in the
    zero padding (lo > hi: it sees no pixel) gets the empty range (0, 0)."""
    empty = lo > hi
    return (np.where(empty, 0, lo).astype(np.int64), np.where(empty, 0, hi + 1).astype(np.int64))


def field_maps(engine) -> dict[str, FieldMap]:
    """Receptive fields of every position of every layer, name -> FieldMap. Layers the
    geometry cannot reach (after an unsupported node) are left out. Cached per graph."""
    return _cached(engine, "maps", _compute_fields)[0]


def field_map(engine: ModelHost, layer: str) -> FieldMap:
    """The :class:`FieldMap` of one layer, with a clear error when it has none."""
    name = engine.layer(layer).name
    maps, missing = _cached(engine, "maps", _compute_fields)
    if name not in maps:
        why = missing.get(name, "it does not depend on the input image")
        raise NotAChain(f"layer {name!r} has no receptive field: {why}; layers with one: "
                        f"{', '.join(maps) or 'none'}")
    return maps[name]


def receptive_field(engine: ModelHost, layer: str, y: int, x: int) -> ReceptiveField:
    """The input box the unit at position (y, x) of ``layer`` sees (any channel: all channels
    of one position share it). For a layer without a spatial grid pass y = x = 0. A unit whose
    window lies wholly in the zero padding sees nothing: an empty box (height or width 0)."""
    y, x = check.integer("y", y), check.integer("x", x)
    fm = field_map(engine, layer)
    gh, gw = fm.grid
    if not (0 <= int(y) < gh and 0 <= int(x) < gw):
        raise UnitOutOfRange(f"position ({y}, {x}) out of range for layer {fm.layer!r}: "
                             f"expected 0 <= y < {gh}, 0 <= x < {gw}")
    y, x = int(y), int(x)
    return ReceptiveField(fm.layer, y, x, int(fm.top[y]), int(fm.left[x]),
                          int(fm.bottom[y]), int(fm.right[x]))
