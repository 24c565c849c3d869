"""Receptive fields from layer geometry (the probing paper's field of view, FOV).

A unit at (y, x) of a layer sees a box of input pixels. Walking the layers from the input,
every conv/pool maps an output index to the range of its input indices its window touches
(kernel, stride, padding, dilation; taps in the zero padding see nothing); composing these
index ranges layer by layer gives the box exactly, clipped to the image. Elementwise layers
(ReLU, BatchNorm, dropout) keep it; a layer that leaves the spatial grid (flatten, linear)
sees the whole image. This works for networks whose layers form a chain (each leaf module
takes the previous one's output, as in VGG and LeNet); :func:`chain` checks that once per
engine with one forward pass and names the first module that breaks it.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core import hooks
from ..core import validate as check
from ..core.errors import NotAChain, UnitOutOfRange
from ..core.shapes import pair

_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Link:
    """One leaf module of a chain with its per-sample input and output shapes."""
    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


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


# -- the chain of leaf modules ----------------------------------------------------------------
def chain(engine) -> tuple[tuple[Link, ...], str | None]:
    """(links in forward order, reason the chain breaks after the last link or None).

    One forward pass with a hook on every leaf module records which tensor each module gets
    and returns; module k must take exactly what module k-1 returned (the same storage,
    possibly reshaped, e.g. by ``torch.flatten`` in ``forward``). Cached per engine.
    """
    return _cached(engine, "chain", _trace_chain)


def _cached(engine, key, compute):
    """``compute(engine)``, computed once per engine and key."""
    cached = _CACHE.setdefault(engine, {})
    if key not in cached:
        cached[key] = compute(engine)
    return cached[key]


def chain_upto(engine, layer: str) -> list[Link]:
    """The links from the input up to and including ``layer``; :class:`NotAChain` if the chain
    breaks before it."""
    name = engine.layer(layer).name
    links, broken = chain(engine)
    for i, link in enumerate(links):
        if link.name == name:
            return list(links[:i + 1])
    raise NotAChain(f"layer {name!r} cannot be reached along a chain of modules: {broken}. "
                    "Receptive fields and backward reconstructions need each leaf module to "
                    "take the previous module's output (as in VGG or LeNet); usable layers: "
                    f"{', '.join(link.name for link in links) or 'none'}")


def _trace_chain(engine):
    calls = []       # (name, module, input tensor, output tensor), kept alive for the check
    modules = {n: m for n, m in engine.model.named_modules() if n and not any(m.children())}

    def make_hook(name):
        def hook(module, inputs, output):
            first = inputs[0] if inputs else None
            calls.append((name, module, first, output))
        return hook
    with engine.borrow() as model, torch.no_grad():
        z = engine.normalize(torch.zeros(1, *engine.input_shape, device=engine.device))
        with hooks.hooked(model, {n: make_hook(n) for n in modules}):
            model(z)
    links: list[Link] = []
    prev, seen = z, set()
    for name, module, inp, out in calls:
        if name in seen:
            return tuple(links), f"module {name!r} runs twice in one forward pass"
        seen.add(name)
        if not (isinstance(inp, torch.Tensor) and isinstance(out, torch.Tensor)):
            return tuple(links), f"module {name!r} does not map one tensor to one tensor"
        if inp.data_ptr() != prev.data_ptr() or inp.numel() != prev.numel():
            where = f"after {links[-1].name!r}" if links else "at the input"
            return tuple(links), (f"module {name!r} does not take the output of the module "
                                  f"before it ({where}): a skip connection or a functional "
                                  "operation between modules")
        links.append(Link(name, module, tuple(inp.shape[1:]), tuple(out.shape[1:])))
        prev = out
    return tuple(links), "the network ends there"


# -- geometry ----------------------------------------------------------------------------------
def zero_padding(m: nn.Module) -> tuple[int, int]:
    """(top, left) zero padding of a conv/pool, also for Conv2d(padding='same' / 'valid')."""
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            return 0, 0
        return tuple(d * (k - 1) // 2 for d, k in zip(pair(getattr(m, "dilation", 1)),
                                                      pair(m.kernel_size)))
    return pair(pad)


def _window_taps(n_in: int, n_out: int, k: int, s: int, p: int, d: int):
    """(n_out, k) input indices each output index of a windowed layer reads, and which of
    them are inside the input (the others are padding)."""
    taps = np.arange(n_out)[:, None] * s - p + d * np.arange(k)[None, :]
    return taps, (taps >= 0) & (taps < n_in)


def _adaptive_taps(n_in: int, n_out: int):
    i = np.arange(n_out)
    lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out) - 1
    taps = lo[:, None] + np.arange(int((hi - lo).max()) + 1)[None, :]
    return taps, taps <= hi[:, None]


def _local_taps(link: Link, axis: int):
    """(taps, valid) input indices read by each output index of ``link`` along spatial axis 0
    (rows) or 1 (columns); None when the output is not on the input's grid (the whole input)."""
    m, cin, cout = link.module, link.in_shape, link.out_shape
    if len(cin) != 3 or len(cout) != 3:
        return None
    n_in, n_out = cin[1 + axis], cout[1 + axis]
    if isinstance(m, _WINDOWED):
        if getattr(m, "padding_mode", "zeros") != "zeros":
            raise NotAChain(f"{type(m).__name__} {link.name!r} pads with {m.padding_mode!r}: "
                            "its windows wrap or mirror, only zero padding is supported")
        k, s, p = pair(m.kernel_size)[axis], pair(m.stride)[axis], zero_padding(m)[axis]
        d = pair(getattr(m, "dilation", 1))[axis]
        return _window_taps(n_in, n_out, k, s, p, d)
    if isinstance(m, _ADAPTIVE):
        return _adaptive_taps(n_in, n_out)
    if cin[1:] == cout[1:]:          # elementwise or channel-mixing only (ReLU, BatchNorm, 1x1)
        i = np.arange(n_out)[:, None]
        return i, np.ones_like(i, dtype=bool)
    raise NotAChain(f"cannot derive the receptive field through {type(m).__name__} "
                    f"{link.name!r} (input {cin} -> output {cout}); supported: Conv2d, MaxPool2d, "
                    "AvgPool2d, adaptive pools, elementwise layers, flatten/linear")


def _compose(lo, hi, taps, valid):
    """Input pixel range of each output index: the union of the ranges of the taps it reads
    (not monotone with dilation and padding, hence min/max over the taps)."""
    t = np.clip(taps, 0, len(lo) - 1)
    big = np.iinfo(np.int64).max
    return (np.where(valid, lo[t], big).min(1), np.where(valid, hi[t], -1).max(1))


def field_maps(engine) -> dict[str, FieldMap]:
    """Receptive fields of every position of every layer of the chain, name -> FieldMap.

    Layers after a layer whose geometry is unknown are left out. Cached per engine."""
    return _cached(engine, "maps", _compute_maps)


def _compute_maps(engine) -> dict[str, FieldMap]:
    links, _ = chain(engine)
    h, w = engine.input_shape[1:]
    lo = [np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64)]
    hi = [a.copy() for a in lo]
    full = False                     # once off the grid, every later unit sees everything
    maps: dict[str, FieldMap] = {}
    for link in links:
        spatial = len(link.out_shape) == 3
        n = (link.out_shape[1], link.out_shape[2]) if spatial else (1, 1)
        if not full:
            try:
                local = [_local_taps(link, a) for a in (0, 1)]
            except NotAChain:
                break
            if local[0] is None or not spatial:
                full = True
            else:
                lo, hi = map(list, zip(*(_compose(lo[a], hi[a], *local[a]) for a in (0, 1))))
        if full:
            lo = [np.zeros(n[0], np.int64), np.zeros(n[1], np.int64)]
            hi = [np.full(n[0], h - 1, np.int64), np.full(n[1], w - 1, np.int64)]
        maps[link.name] = FieldMap(link.name, *_bounds(lo[0], hi[0]), *_bounds(lo[1], hi[1]))
    return maps


def _bounds(lo, hi):
    """(first, end) per index from inclusive (lo, hi); an index whose window lies wholly in the
    zero padding (lo > hi: it sees no pixel) gets the empty range (0, 0)."""
    empty = lo > hi
    return (np.where(empty, 0, lo).astype(np.int64), np.where(empty, 0, hi + 1).astype(np.int64))


def field_map(engine, layer: str) -> FieldMap:
    """The :class:`FieldMap` of one layer, with a clear error when it has none."""
    links = chain_upto(engine, layer)
    maps = field_maps(engine)
    if links[-1].name not in maps:
        # re-raise the geometry error that stopped the walk, naming the module
        for link in links:
            _local_taps(link, 0)
    return maps[links[-1].name]


def receptive_field(engine, layer: str, y: int, x: int) -> ReceptiveField:
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
