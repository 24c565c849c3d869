"""The model side of an engine: the model, its device, its layers, input checks and plain forward
passes. Paper packages take an object of this kind; the :class:`~cnn_widgets.engine.Engine`
facade adds the capabilities."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from . import hooks, memory
from .borrow import borrowed, busy, hand_over, model_lock
from .change import check_public_methods, checked, signature
from .control import NO_CONTROL, Control
from .data import ImageSet, as_image_set, as_images, to_tensor
from .errors import (
    InputShapeError,
    InvalidArgument,
    InvalidType,
    LayerNotFound,
    ModelOutputError,
    NotAChain,
)
from .gates import GATE_KINDS
from .grad import outside_inference_mode
from .graph import ModelGraph, forget, register, registered, trace
from .layers import nonlinear_parts, registry
from .results import LayerInfo
from .setup import (
    class_names_of,
    default_device,
    device_of,
    input_shape_of,
    run_example,
    unwrap,
    working_model,
)
from .stamp import weights_stamp
from .types import ChannelValues, Data, Device, Images, Units
from .units import resolve_units
from .validate import count, name_list

_SOFTMAX = (nn.Softmax, nn.LogSoftmax, nn.Softmin)

__all__ = ["ModelHost", "default_device"]
H = TypeVar("H", bound="ModelHost")


class ModelHost:
    """Analysis engine for one image classifier.

    model: an ``nn.Module`` mapping (N, *input_shape) to (N, classes). It is never changed:
    each computation borrows it under a lock in eval mode with parameter gradients off and
    gives it back with every module's mode and every parameter's ``requires_grad`` restored.
    If ``device`` differs from the model's, the engine works on a copy moved there; if its
    weights are float64, half or bfloat16, on a float32 copy (with a warning). A
    ``torch.compile``d model is analysed through the module it wraps (same weights, eager).
    input_shape: (C, H, W) of one input, in the space images are given to the engine.
    dataset: None, ``(images, labels)`` or a map-style dataset of (image, label).
    mean, std: per-channel normalisation the engine applies before the model (None = none).
    eval_mode: run the model in eval mode (default). False keeps the model's own modes, so
    BatchNorm in train mode uses batch statistics (and etalons are flagged not exact).
    memory_budget: bytes one call may allocate on the engine's device (on the CPU, results
    included); None (default): half of the memory available when the call starts (see
    :mod:`.memory`). Large calls work in chunks that fit it.

    Every public call first checks that the model is still the one traced (:meth:`refresh`):
    edit the model between two calls and the next call analyses the new one.
    """
    graph: ModelGraph | None    # the model's torch.fx graph; None: module hooks (graph_error)
    graph_error: str | None

    def __init__(self, model: nn.Module, input_shape: Sequence[int], *, dataset: Data = None,
                 class_names: Sequence[str] | None = None, mean: ChannelValues = None,
                 std: ChannelValues = None, device: Device = None, batch_size: int = 256,
                 eval_mode: bool = True, memory_budget: int | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise InvalidType(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.input_shape = input_shape_of(input_shape)
        self.device = device_of(device)
        self._source = unwrap(model)           # the user's model; self.model may be a copy
        self.model = working_model(self._source, self.device)
        self._source_state = self._source_stamp()
        self.batch_size = count("batch_size", batch_size)
        self.memory_budget = memory_budget
        self.eval_mode = bool(eval_mode)
        c = self.input_shape[0]
        self.mean = self._channel_tensor(mean, c, 0.0, "mean")
        self.std = self._channel_tensor(std, c, 1.0, "std")
        self.dataset: ImageSet | None = as_image_set(dataset, self.input_shape)
        self.n_classes = 0
        self._nonlinear: list[str] | None = None
        self._calls = 0                        # public calls so far (see refresh)
        self._probe_x: torch.Tensor | None = None    # see _probe_input
        with self.borrow():
            self._analyse()
        self.class_names = class_names_of(class_names, self.n_classes)
        if self.dataset is not None:        # the labels' range needs the model's output size
            self.dataset = as_image_set(self.dataset, self.input_shape, self.n_classes,
                                        unlabelled=True)
        self.model_card: dict = {}
        self._closers: list[Callable[[], None]] = []

    def _analyse(self, replace: bool = False) -> None:
        """(Re)trace the model as it is now (call borrowing it): the layers, the graph (shared
        with the other engines on this model unless ``replace``) and the class count."""
        changed = self.n_classes > 0
        sig = signature(self.model)
        shared = registered(self.model, self.model.training)
        shape: tuple[int, ...] | str
        if not replace and shared is not None and shared.signature == sig:
            self.graph, self.graph_error = shared, None
            layers, shape = shared.layers, shared.output_shape
        else:
            start, example = time.perf_counter(), self._probe_input()
            out = run_example(self.model, example, self.input_shape, changed)
            layers, out = self._trace(example, out, replace or changed)
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            if self.graph is not None:                          # the trace compared them
                self.graph.probe.done(time.perf_counter() - start)
        if not isinstance(shape, tuple) or len(shape) != 2:
            raise ModelOutputError(f"the model's output must be 2-D (batch, classes); for an input "
                                   f"of shape {(1, *self.input_shape)} it returned {shape}")
        if changed and shape[1] != self.n_classes:
            raise ModelOutputError(f"the model changed: it now has {shape[1]} outputs, and this "
                                   f"engine was made for {self.n_classes} classes (class names, "
                                   "labels); make a new Engine for it")
        self.n_classes = int(shape[1])
        self._layers, self._signature, self._nonlinear = layers, sig, None

    def _trace(self, example: torch.Tensor, direct: torch.Tensor | None,
               replace: bool) -> tuple[list[LayerInfo], torch.Tensor]:
        """(layers, output): from the model's torch.fx graph (every module call and functional
        gate, add and concatenation), or, if it cannot be traced, from module hooks (module
        calls only; :attr:`graph_error` says why)."""
        self.graph, self.graph_error = None, None
        try:
            graph, out = trace(self.model, example, direct)
        except Exception as e:  # noqa: BLE001 - any tracing failure: the module-hook path
            self.graph_error = (f"the forward pass could not be traced with torch.fx "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            forget(self.model)
            return registry(self.model, example)
        self.graph = register(self.model, graph, replace)
        return self.graph.layers, out

    def refresh(self) -> None:
        """Bring the engine up to the model as it is now (run at the start of every public
        call): retrace when a submodule, a parameter's identity or shape or a plain attribute
        changed, or another engine on the model retraced it; now and then (see
        :mod:`.change`) compare the graph's output with ``model(x)`` on one image and retrace
        when they differ. Raises when the changed model cannot be analysed."""
        self._calls += 1                       # a new call: what was read for the last is stale
        stamp = self._source_stamp()           # None: the engine works on the model itself
        if stamp is not None and stamp != self._source_state:
            with model_lock(self._source):     # the user's model changed: copy it again
                self.model = working_model(self._source, self.device)
            self._source_state = stamp         # taken before the copy: a later edit is seen
            with self.borrow():
                self._analyse()
            return
        graph = self.graph
        if signature(self.model) != self._signature or (
                graph is not None and registered(self.model, graph.mode) is not graph):
            with self.borrow():
                self._analyse()
        elif graph is not None and graph.probe.due() and not busy(self.model):
            with self.borrow():
                if not graph.probe.run(graph, self.model, self._probe_input()):
                    self._analyse(replace=True)

    def _source_stamp(self) -> tuple | None:
        """The user's model's structure and weights' bytes when the engine works on a copy (on
        another device, or float32 of other float weights), which the copy must follow; None
        when it works on the model itself. Takes a CRC of every weight: 31 ms for a ResNet-50
        on the CPU, at each call; put the model on the engine's device to skip it."""
        if self.model is self._source:
            return None
        return signature(self._source), weights_stamp(self._source)

    def _probe_input(self) -> torch.Tensor:
        """One fixed random image, normalised: traced on, checked against ``model(x)`` when
        traced and by :class:`~.change.Probe` (a retrace after a probe fails is checked on the
        same image, so a graph that cannot reproduce it is dropped, not retraced forever)."""
        if self._probe_x is None:
            g = torch.Generator().manual_seed(0)
            self._probe_x = torch.rand(1, *self.input_shape, generator=g).to(self.device)
        return self.normalize(self._probe_x)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        check_public_methods(cls)          # every capability refreshes first

    @property
    @checked
    def layers(self) -> list[LayerInfo]:
        """The layers in forward order (name, kind, output shape) of the model as it is now."""
        return self._layers

    def require_graph(self, what: str) -> ModelGraph:
        """The model's graph, or :class:`NotAChain` saying that ``what`` needs it and what
        still works without it."""
        if self.graph is None:
            raise NotAChain(f"{what} needs the model's graph, but {self.graph_error}. Without "
                            "it, layers are module calls only (no functional ReLUs, adds or "
                            "concatenations); predict, activations, etalons (method='fast'), "
                            "maximize, Grad-CAM and scans still work")
        return self.graph

    @property
    def gate_layers(self) -> list[str]:
        """Names of the gate calls in forward order: every ReLU/LeakyReLU call, every
        ReLU6/Hardtanh module call and every max-pool call (module or functional), the
        switches that fix a linear region."""
        return [i.name for i in self.layers if i.kind in GATE_KINDS]

    # -- model hygiene ---------------------------------------------------------------------
    def borrow(self) -> borrowed:
        """Lend the model for one computation (``with engine.borrow() as model:``): under the
        model's own lock, shared by every engine that wraps it; eval mode (unless
        ``eval_mode=False``, then buffers are restored too), parameter gradients off; restored
        on exit, after an error or an interrupt too."""
        return borrowed(self.model, self.eval_mode, keep_buffers=not self.eval_mode)

    def hand_over(self) -> None:
        """Between steps of a long job: let a waiting borrow of the model (another thread's
        short request) go first; see :func:`~.borrow.hand_over`."""
        hand_over(self.model)

    @property
    def memory_budget(self) -> int:
        """Bytes one call may allocate: the value set, or half of what is available now."""
        if self._memory_budget is not None:
            return self._memory_budget
        return memory.default_budget(self.device)

    @memory_budget.setter
    def memory_budget(self, value: int | None) -> None:
        self._memory_budget = None if value is None else count("memory_budget", value)

    # -- inputs ----------------------------------------------------------------------------
    def _channel_tensor(self, value: ChannelValues, c: int, fill: float, what: str) -> torch.Tensor:
        with outside_inference_mode():        # usable in autograd even if made under it
            try:
                t = torch.full((c,), fill) if value is None else to_tensor(value).to(torch.float32)
            except (TypeError, ValueError, RuntimeError):
                raise InvalidType(f"{what} must be a number or one number per input channel; "
                                  f"got {value!r}") from None
            t = t.reshape(-1).clone()
            if t.numel() == 1:
                t = t.repeat(c)
            if t.numel() != c:
                raise InputShapeError(f"{what} must have 1 or {c} values (one per input "
                                      f"channel); got {t.numel()}")
            if not bool(torch.isfinite(t).all()):
                raise InvalidArgument(f"{what} must be finite numbers; got {t.tolist()}")
            if what == "std" and bool((t <= 0).any()):
                raise InvalidArgument(f"std must be positive; got {t.tolist()}")
            return t.view(c, 1, 1).to(self.device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel: engine input space -> the model's input."""
        return (x - self.mean) / self.std

    def prepare(self, x: Images) -> torch.Tensor:
        """Validate ``x`` and return a float32 (N, *input_shape) tensor on the engine's device.

        Accepts one image (C, H, W), a batch (N, C, H, W), and for one-channel models also one
        (H, W) image; numpy arrays, tensors or nested lists; channels-last (N, H, W, C) is
        converted with a warning, uint8 is scaled to [0, 1] (see :mod:`.data`). A stack
        (N, H, W) is refused rather than guessed: for a 1-channel model (3, H, W) is more
        likely an RGB image than 3 images.
        """
        t = as_images(x, self.input_shape)
        if t.shape[0] == 0:
            raise InputShapeError("got an empty batch (N = 0)")
        with outside_inference_mode():
            t = t.to(self.device)                # a copy already: results never alias x
        # a finite sum means no NaN/inf without the elementwise check's copies (twice the input)
        if not bool(torch.isfinite(t.sum())):
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                first = tuple(int(i) for i in bad.nonzero()[0])
                raise InputShapeError(f"input contains {int(bad.sum())} NaN/inf value(s); first "
                                      f"at index {first}")
        return t

    # -- layers and units ------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [info.name for info in self.layers]

    @property
    def default_layer(self) -> str:
        """The logits: the last layer, or the one before a final softmax (excluded as in the
        etalon paper)."""
        infos = self.layers
        if len(infos) > 1 and infos[-1].kind in {c.__name__ for c in _SOFTMAX}:
            return infos[-2].name
        return infos[-1].name

    def layer(self, name: str | None = None) -> LayerInfo:
        """The registry entry of ``name`` (default: the logits); :class:`LayerNotFound` lists
        the valid names."""
        name = self.default_layer if name is None else name
        for info in self.layers:
            if info.name == name:
                return info
        raise LayerNotFound(f"unknown layer {name!r}; layers in forward order: "
                            f"{', '.join(self.layer_names)}")

    def resolve_units(self, layer: str | None, units: Units = None) -> tuple[tuple[int, ...], ...]:
        """Turn ``units`` into coordinate tuples of the layer's output shape.

        units: None (every unit, for layers with at most 1024), an int (a flat index into the
        layer's output, row-major), a tuple of ints (one coordinate, such as (channel, y, x)),
        or a list of those.
        """
        return resolve_units(self.layer(layer), units)

    def flat_index(self, layer: str, units: Iterable[tuple[int, ...]]) -> torch.Tensor:
        """(P,) row-major flat indices of unit coordinates into the layer's output."""
        shape = self.layer(layer).output_shape
        return torch.tensor([int(np.ravel_multi_index(u, shape)) for u in units],
                            dtype=torch.long, device=self.device)

    # -- forward passes ----------------------------------------------------------------------
    def layer_output(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """(N, n_units) output of ``layer`` for prepared inputs, stopping the forward pass
        there. Call inside :meth:`borrow`; gradients flow when grad mode is on."""
        out = hooks.run_capturing(self.model, self.normalize(x), [layer], stop_after=layer,
                                  clone=False)[layer]
        return out.reshape(out.shape[0], -1)

    def predict(self, x: Images, control: Control = NO_CONTROL) -> np.ndarray:
        """Logits (N, classes) as numpy, computed in chunks of ``batch_size``."""
        x = self.prepare(x)
        outs = []
        with self.borrow(), torch.no_grad():
            for s in range(0, x.shape[0], self.batch_size):
                outs.append(self.model(self.normalize(x[s:s + self.batch_size])).cpu())
                control.step(min(s + self.batch_size, x.shape[0]), x.shape[0], "predict")
        return torch.cat(outs).numpy()

    def activations(self, x: Images, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs of the named layers, name -> (N, *output_shape) numpy."""
        layers = [self.layer(n).name for n in name_list("layers", layers)]
        x = self.prepare(x)
        result: dict[str, list] = {n: [] for n in layers}
        last = max(layers, key=self.layer_names.index)
        with self.borrow(), torch.no_grad():
            for s in range(0, x.shape[0], self.batch_size):
                got = hooks.run_capturing(self.model, self.normalize(x[s:s + self.batch_size]),
                                          layers, stop_after=last)
                for n in layers:
                    result[n].append(got[n].cpu())
        return {n: torch.cat(v).numpy() for n, v in result.items()}

    # -- piecewise linearity -------------------------------------------------------------------
    @property
    @checked
    def nonlinear_parts(self) -> list[str]:
        """Why the model is not piecewise linear (empty list when it is)."""
        if self._nonlinear is None:
            with model_lock(self.model):     # the model's own modes, not another borrow's
                self._nonlinear = nonlinear_parts(self.model, self.eval_mode)
        return self._nonlinear

    def nonlinear_parts_upto(self, layer: str | None = None) -> list[str]:
        """:attr:`nonlinear_parts` without the modules that first run after ``layer``: a forward
        pass stopped there never reaches them (e.g. a final softmax after the logits)."""
        if layer is None:
            return self.nonlinear_parts
        later = self.layers[self.layer_names.index(self.layer(layer).name) + 1:]
        return [r for r in self.nonlinear_parts
                if not any(r.startswith(f"{i.kind} '{i.name}' ") for i in later)]

    def exactness(self, layer: str | None = None) -> tuple[bool, str]:
        """(exact, reason): whether affine maps up to ``layer`` are exact, and why (not)."""
        parts = self.nonlinear_parts_upto(layer)
        if not parts:
            return True, "ReLU/max-pool network: the affine map is exact near x"
        return False, "Jacobian only (tangent plane at x): " + "; ".join(parts)

    # -- lifetime ----------------------------------------------------------------------------
    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` once when the engine is closed (the job runner ends its thread)."""
        self._closers.append(callback)

    def close(self) -> None:
        """End what the engine started (widget worker threads); the model is not touched."""
        closers, self._closers = self._closers, []
        for fn in closers:
            fn()

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({type(self.model).__name__}, input_shape={self.input_shape}, "
                f"device={self.device}, layers={len(self._layers)}, classes={self.n_classes}, "
                f"dataset={len(self.dataset) if self.dataset is not None else None})")


check_public_methods(ModelHost)
