"""Checks of what an engine is made from: the device, the model (compiled, on the meta device,
another dtype or device), the input shape, and the first forward pass on it."""
from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from .borrow import model_lock
from .errors import CnnWidgetsError, InputShapeError, InvalidArgument, InvalidType
from .validate import count


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_of(device) -> torch.device:
    """``device`` (None: CUDA if available, else the CPU) as a usable torch device, or
    :class:`InvalidArgument` saying why it cannot be used here."""
    if device is None:
        device = default_device()
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise InvalidArgument(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; "
                              f"got {device!r} ({str(e).splitlines()[0]})") from None
    if d.type == "meta":
        raise InvalidArgument("device='meta' holds no values: the engine computes; use 'cpu' "
                              "or 'cuda'")
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgument(f"device={device!r} but CUDA is not available on this machine "
                                  "(torch.cuda.is_available() is False); use device='cpu'")
        if d.index is None:                                # "cuda" != "cuda:0"
            d = torch.device("cuda", torch.cuda.current_device())
        if d.index >= torch.cuda.device_count():
            raise InvalidArgument(f"device={device!r} but this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s)")
        return d
    try:
        torch.empty(1, device=d)
    except Exception as e:  # noqa: BLE001 - any backend failure: the device is not usable
        raise InvalidArgument(f"device={device!r} cannot be used on this machine "
                              f"({type(e).__name__}: {str(e).splitlines()[0]}); use 'cpu' or "
                              "'cuda'") from None
    return d


def input_shape_of(input_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3:
        raise InputShapeError(f"input_shape must be (C, H, W); got {input_shape!r}")
    c, h, w = (count(f"input_shape[{i}]", s) for i, s in enumerate(shape))
    return c, h, w


def unwrap(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper (``OptimizedModule``) holds: the engine analyses
    it in eager mode (the compiled code has no graph to hook); it shares its weights."""
    while isinstance(inner := getattr(model, "_orig_mod", None), nn.Module) \
            and type(model).__name__ == "OptimizedModule":
        model = inner
    return model


def working_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` itself, or a float32 copy on ``device`` if it lives elsewhere or holds
    float64/half/bfloat16 weights (the engine computes in float32; a warning says so)."""
    tensors = list(model.parameters()) + list(model.buffers())
    meta = [t for t in tensors if t.is_meta]
    if meta:
        raise InvalidArgument(f"the model's weights are on the meta device ({len(meta)} of "
                              f"{len(tensors)} tensors): they hold no values. Materialise and "
                              "load them first, e.g. model.to_empty(device='cpu') then "
                              "model.load_state_dict(...)")
    dtypes = sorted({str(t.dtype) for t in tensors if t.is_floating_point()} - {"torch.float32"})
    moved = any(t.device != device for t in tensors[:1])
    if not dtypes and not moved:
        return model
    if dtypes:
        warnings.warn(f"the model's weights are {', '.join(dtypes)}; the engine works on a float32 "
                      f"copy of the model (yours is not changed; the copy follows your later "
                      f"edits)", stacklevel=4)
    with model_lock(model):        # no borrow in progress: no foreign hooks or modes copied
        work = copy.deepcopy(model)
    return work.to(device=device, dtype=torch.float32) if dtypes else work.to(device)


def run_example(model: nn.Module, example: torch.Tensor, input_shape, changed: bool = False):
    """``model(example)`` (call borrowing the model), or :class:`InputShapeError` naming the
    input shape the model's first layer expects. ``changed``: the model was edited after the
    engine was made."""
    try:
        with torch.no_grad():
            return model(example)
    except CnnWidgetsError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the user's forward on this shape
        fits, hint = _first_layer(model, input_shape)
        if changed and fits:
            raise                  # the edited model fails by itself: the user's own error
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        what = "the model, changed since the engine was made," if changed else "the model"
        raise InputShapeError(f"{what} fails on one input of input_shape={tuple(input_shape)} "
                              f"({type(e).__name__}: {first}){hint}") from e


def _first_layer(model: nn.Module, shape) -> tuple[bool, str]:
    """(whether the first conv or linear module takes ``shape``'s channels or size, a clause
    '; its first layer ... expects ...')."""
    for name, m in model.named_modules():
        c, f = getattr(m, "in_channels", None), getattr(m, "in_features", None)
        kind = f"{name!r} ({type(m).__name__})"
        if isinstance(c, int):
            if c != shape[0]:
                return False, (f"; its first layer {kind} expects {c} input channel(s), "
                               f"input_shape has {shape[0]}: pass input_shape=({c}, H, W)")
            return True, (f"; its first layer {kind} takes {c} channel(s) as given: check H "
                          "and W (a flatten or linear layer later may expect another size)")
        if isinstance(f, int):
            if f != math.prod(shape):
                return False, (f"; its first layer {kind} expects {f} input features, "
                               f"input_shape gives {math.prod(shape)}")
            return True, ""
    return True, ""


def class_names_of(names: Any, n: int) -> list[str]:
    """``names`` (any iterable of n strings; None: "0".."n-1") as a list."""
    if names is None:
        return [str(i) for i in range(n)]
    if isinstance(names, str):
        raise InvalidType(f"class_names must be a list of {n} strings; got the string {names!r}")
    try:
        names = list(names)
    except TypeError:
        raise InvalidType(f"class_names must be a list of {n} strings; got {names!r}") from None
    bad = [(i, v) for i, v in enumerate(names) if not isinstance(v, str)]
    if bad:
        i, v = bad[0]
        raise InvalidType(f"class_names must be strings; {len(bad)} are not, the first at index "
                          f"{i} is {v!r} ({type(v).__name__}); e.g. use [str(c) for c in names]")
    if len(names) != n:
        raise InvalidArgument(f"class_names has {len(names)} names; the model has {n} outputs")
    return names
