"""The Engine: one object that owns a model, its device, its layer registry and its hooks."""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import hooks
from .control import NO_CONTROL, Control
from .data import ImageSet, as_image_set
from .errors import InputShapeError, LayerNotFound, ModelOutputError, UnitOutOfRange
from .layers import nonlinear_parts, registry
from .results import LayerInfo

Unit = Union[int, Tuple[int, ...]]

_SOFTMAX = (nn.Softmax, nn.LogSoftmax, nn.Softmin)
MAX_DEFAULT_UNITS = 1024


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def lent(module: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """``module`` in eval mode (if ``eval_mode``) with parameter gradients off, for one
    computation; every submodule's mode and every parameter's ``requires_grad`` restored in
    `finally`."""
    modes = [(m, m.training) for m in module.modules()]
    grads = [(p, p.requires_grad) for p in module.parameters()]
    try:
        if eval_mode:
            module.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield module
    finally:
        for m, mode in modes:
            m.training = mode
        for p, req in grads:
            p.requires_grad_(req)


class Engine:
    """Analysis engine for one image classifier.

    model: an ``nn.Module`` mapping (N, *input_shape) to (N, classes). It is never changed:
    each computation borrows it under a lock in eval mode with parameter gradients off and
    gives it back with every module's mode and every parameter's ``requires_grad`` restored.
    If ``device`` differs from the model's, the engine works on a copy moved there.
    input_shape: (C, H, W) of one input, in the space images are given to the engine.
    dataset: None, ``(images, labels)`` or a map-style dataset of (image, label).
    mean, std: per-channel normalisation the engine applies before the model (None = none).
    eval_mode: run the model in eval mode (default). False keeps the model's own modes, so
    BatchNorm in train mode uses batch statistics (and etalons are flagged not exact).
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int], *, dataset=None,
                 class_names: Optional[Sequence[str]] = None, mean=None, std=None,
                 device=None, batch_size: int = 256, eval_mode: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise InputShapeError(f"input_shape must be (C, H, W); got {self.input_shape}")
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cuda" and self.device.index is None:   # "cuda" != "cuda:0"
            self.device = torch.device("cuda", torch.cuda.current_device())
        param = next(model.parameters(), None)
        if param is not None and param.device != self.device:
            model = copy.deepcopy(model).to(self.device)   # the user's model stays where it is
        self.model = model
        self.batch_size = int(batch_size)
        self.eval_mode = bool(eval_mode)
        self._lock = threading.RLock()
        c = self.input_shape[0]
        self.mean = self._channel_tensor(mean, c, 0.0, "mean")
        self.std = self._channel_tensor(std, c, 1.0, "std")
        self.dataset: Optional[ImageSet] = as_image_set(dataset, self.input_shape)

        with self.borrow():
            example = torch.zeros(1, *self.input_shape, device=self.device)
            self.layers, out = registry(self.model, self.normalize(example))
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelOutputError(f"the model's output must be 2-D (batch, classes); for an input "
                                   f"of shape {(1, *self.input_shape)} it returned {shape}")
        self.n_classes = int(out.shape[1])
        if class_names is None:
            class_names = [str(i) for i in range(self.n_classes)]
        if len(class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(class_names)} names; the model has "
                             f"{self.n_classes} outputs")
        self.class_names = list(class_names)
        self._nonlinear: Optional[List[str]] = None
        self.model_card: dict = {}

    # -- model hygiene ---------------------------------------------------------------------
    @contextmanager
    def borrow(self) -> Iterator[nn.Module]:
        """Lend the model for one computation: eval mode (unless ``eval_mode=False``), parameter
        gradients off; modes and ``requires_grad`` restored in `finally`."""
        with self._lock:
            # in train mode BatchNorm updates its running statistics on every forward pass
            buffers = [] if self.eval_mode else [(b, b.detach().clone())
                                                 for b in self.model.buffers()]
            try:
                with lent(self.model, self.eval_mode):
                    yield self.model
            finally:
                with torch.no_grad():
                    for buf, saved in buffers:
                        buf.copy_(saved)

    # -- inputs ----------------------------------------------------------------------------
    def _channel_tensor(self, value, c, fill, what) -> torch.Tensor:
        t = torch.full((c,), fill) if value is None else torch.as_tensor(value, dtype=torch.float32)
        t = t.reshape(-1).to(torch.float32)
        if t.numel() == 1:
            t = t.repeat(c)
        if t.numel() != c:
            raise InputShapeError(f"{what} must have 1 or {c} values (one per input channel); "
                                  f"got {t.numel()}")
        if what == "std" and bool((t <= 0).any()):
            raise ValueError(f"std must be positive; got {t.tolist()}")
        return t.view(c, 1, 1).to(self.device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def prepare(self, x) -> torch.Tensor:
        """Validate ``x`` and return a float32 (N, *input_shape) tensor on the engine's device.

        Accepts one image (C, H, W), a batch (N, C, H, W), and for one-channel models also one
        (H, W) image; numpy arrays, tensors or nested lists. A stack (N, H, W) is refused rather
        than guessed: for a 1-channel model (3, H, W) is more likely an RGB image than 3 images.
        """
        t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
        shape, want = tuple(t.shape), self.input_shape
        if shape == want:
            t = t.unsqueeze(0)
        elif want[0] == 1 and shape == want[1:]:
            t = t.reshape(1, *want)
        if t.dim() != 4 or tuple(t.shape[1:]) != want:
            hint = ""
            if t.dim() in (3, 4) and tuple(t.shape[-2:]) == want[1:]:
                hint = (f": the model takes {want[0]} channel(s), this input has {shape[-3]}"
                        + (" (for a stack of 1-channel images use x[:, None])"
                           if t.dim() == 3 and want[0] == 1 else ""))
            raise InputShapeError(f"expected one image of shape {want} or a batch (N, {want[0]}, "
                                  f"{want[1]}, {want[2]}); got {shape}{hint}")
        if t.shape[0] == 0:
            raise InputShapeError("got an empty batch (N = 0)")
        t = t.to(device=self.device, dtype=torch.float32, copy=True)   # results never alias x
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise InputShapeError(f"input contains {int(bad.sum())} NaN/inf value(s); first at "
                                  f"index {first}")
        return t

    # -- layers and units ------------------------------------------------------------------
    @property
    def layer_names(self) -> List[str]:
        return [info.name for info in self.layers]

    @property
    def default_layer(self) -> str:
        """The logits: the last layer, or the one before a final softmax (excluded as in the
        etalon paper)."""
        infos = self.layers
        if len(infos) > 1 and infos[-1].kind in {c.__name__ for c in _SOFTMAX}:
            return infos[-2].name
        return infos[-1].name

    def layer(self, name: Optional[str] = None) -> LayerInfo:
        name = self.default_layer if name is None else name
        for info in self.layers:
            if info.name == name:
                return info
        raise LayerNotFound(f"unknown layer {name!r}; layers in forward order: "
                            f"{', '.join(self.layer_names)}")

    def resolve_units(self, layer: Optional[str], units=None) -> Tuple[Tuple[int, ...], ...]:
        """Turn ``units`` into coordinate tuples of the layer's output shape.

        units: None (every unit, for layers with at most 1024), an int (a flat index into the
        layer's output, row-major), a tuple of ints (one coordinate, such as (channel, y, x)),
        or a list of those.
        """
        info = self.layer(layer)
        shape = info.output_shape
        if units is None:
            if info.n_units > MAX_DEFAULT_UNITS:
                raise UnitOutOfRange(f"layer {info.name!r} has {info.n_units} units {shape}; pass "
                                     f"units=[...] as flat indices or tuples {_axes(shape)}")
            return tuple(np.ndindex(*shape))
        if isinstance(units, (int, np.integer)) or (
                isinstance(units, tuple) and all(isinstance(u, (int, np.integer)) for u in units)):
            units = [units]                 # one unit; a tuple of ints is always a coordinate
        out = []
        for u in units:
            if isinstance(u, (int, np.integer)):
                if not 0 <= int(u) < info.n_units:
                    raise UnitOutOfRange(f"unit {int(u)} out of range for layer {info.name!r}: "
                                         f"expected 0 <= unit < {info.n_units} (shape {shape})")
                out.append(tuple(int(i) for i in np.unravel_index(int(u), shape)))
            else:
                u = tuple(int(i) for i in u)
                if len(u) != len(shape) or any(not 0 <= i < s for i, s in zip(u, shape)):
                    raise UnitOutOfRange(f"unit {u} out of range for layer {info.name!r} with "
                                         f"output shape {shape}: expected {_ranges(shape)}")
                out.append(u)
        if not out:
            raise UnitOutOfRange("units is empty; pass at least one unit")
        return tuple(out)

    def flat_index(self, layer: str, units: Iterable[Tuple[int, ...]]) -> torch.Tensor:
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

    def predict(self, x, control: Control = NO_CONTROL) -> np.ndarray:
        """Logits (N, classes) as numpy, computed in chunks of ``batch_size``."""
        x = self.prepare(x)
        outs = []
        with self.borrow(), torch.no_grad():
            for s in range(0, x.shape[0], self.batch_size):
                outs.append(self.model(self.normalize(x[s:s + self.batch_size])).cpu())
                control.step(min(s + self.batch_size, x.shape[0]), x.shape[0], "predict")
        return torch.cat(outs).numpy()

    def activations(self, x, layers: Sequence[str]) -> Dict[str, np.ndarray]:
        """Outputs of the named layers, name -> (N, *output_shape) numpy."""
        for name in layers:
            self.layer(name)
        x = self.prepare(x)
        result: Dict[str, list] = {n: [] for n in layers}
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
    def nonlinear_parts(self) -> List[str]:
        """Why the model is not piecewise linear (empty list when it is)."""
        if self._nonlinear is None:
            self._nonlinear = nonlinear_parts(self.model, self.eval_mode)
        return self._nonlinear

    def nonlinear_parts_upto(self, layer: Optional[str] = None) -> List[str]:
        """:attr:`nonlinear_parts` without the modules that first run after ``layer``: a forward
        pass stopped there never reaches them (e.g. a final softmax after the logits)."""
        if layer is None:
            return self.nonlinear_parts
        later = self.layers[self.layer_names.index(self.layer(layer).name) + 1:]
        return [r for r in self.nonlinear_parts
                if not any(r.startswith(f"{i.kind} '{i.name}' ") for i in later)]

    def exactness(self, layer: Optional[str] = None) -> Tuple[bool, str]:
        parts = self.nonlinear_parts_upto(layer)
        if not parts:
            return True, "ReLU/max-pool network: the affine map is exact near x"
        return False, "Jacobian only (tangent plane at x): " + "; ".join(parts)

    # -- capabilities (one module each; bound here for the script API) ----------------------
    def etalons(self, x, layer: Optional[str] = None, units=None, method: str = "fast",
                control: Control = NO_CONTROL, **kw):
        """Exact per-input affine maps of units; see :mod:`cnn_widgets.engine.etalons`."""
        from .etalons import etalons
        return etalons(self, x, layer=layer, units=units, method=method, control=control, **kw)

    def activation_pattern(self, x, layers=None) -> np.ndarray:
        """(N, K) int64 codes of every ReLU's on/off state and every max-pool's choice."""
        from .regions import activation_pattern
        return activation_pattern(self, x, layers)

    def count_regions(self, data=None, layers=None, control: Control = NO_CONTROL):
        """Distinct linear regions (activation patterns) per class over ``data`` (default: the
        engine's dataset); see :mod:`cnn_widgets.engine.regions`."""
        from .regions import count_regions
        return count_regions(self, data, layers, control=control)

    # probing paper (FOVExplorer): engine/receptive_field.py, reconstruct.py, activation_stats.py
    def receptive_field(self, layer: str, y: int, x: int):
        """The input box a unit at (y, x) of ``layer`` can see; see :mod:`.receptive_field`."""
        from .receptive_field import receptive_field
        return receptive_field(self, layer, y, x)

    def reconstruct(self, x, unit, method: str = "deconvnet", control: Control = NO_CONTROL, **kw):
        """Backward reconstructions of one unit ``(layer, channel, y, x)`` at one image; method:
        "deconvnet", "deconvnet_masks", "random_masks", "filter", "all" or a list (one shared
        forward pass); see :mod:`.reconstruct`."""
        from .reconstruct import reconstruct
        return reconstruct(self, x, unit, method=method, control=control, **kw)

    def activation_stats(self, x, layers=None, control: Control = NO_CONTROL, **kw):
        """Active features per layer (the probing paper's Fig. 6); see :mod:`.activation_stats`."""
        from .activation_stats import activation_stats
        return activation_stats(self, x, layers=layers, control=control, **kw)

    # visualization paper (MaximizerPanel): engine/objectives.py, maximize.py, scan.py, gradcam.py,
    # fooling.py, out_of_sample.py
    def maximize(self, objective, control: Control = NO_CONTROL, **kw):
        """Gradient ascent on the input; see :mod:`.maximize`."""
        from .maximize import maximize
        return maximize(self, objective, control=control, **kw)

    def iterate_maximize(self, objective, **kw):
        """The same ascent as a generator of steps; see :mod:`.maximize`."""
        from .maximize import iterate_maximize
        return iterate_maximize(self, objective, **kw)

    def top_images(self, target, k: int = 9, data=None, control: Control = NO_CONTROL, **kw):
        """The dataset images that drive ``target`` (an objective or a (layer, unit)) most."""
        from .scan import top_images
        return top_images(self, target, k=k, data=data, control=control, **kw)

    def activation_histogram(self, target, bins: int = 50, data=None,
                             control: Control = NO_CONTROL, **kw):
        """Histogram of ``target`` over the dataset; see :mod:`.scan`."""
        from .scan import activation_histogram
        return activation_histogram(self, target, bins=bins, data=data, control=control, **kw)

    def gradcam(self, x, classes=None, layer: Optional[str] = None,
                control: Control = NO_CONTROL):
        """Grad-CAM maps (N, P, H, W) of ``classes`` for images ``x``; see :mod:`.gradcam`."""
        from .gradcam import gradcam
        return gradcam(self, x, classes=classes, layer=layer, control=control)

    def fool(self, target: int, control: Control = NO_CONTROL, **kw):
        """Pixel fooling towards class ``target`` with Grad-CAMs; see :mod:`.fooling`."""
        from .fooling import fool
        return fool(self, target, control=control, **kw)

    def out_of_sample(self, images, labels, control: Control = NO_CONTROL, **kw):
        """Percent of unseen classes' images and of noise predicted as each class (Table 1);
        see :mod:`.out_of_sample`."""
        from .out_of_sample import out_of_sample
        return out_of_sample(self, images, labels, control=control, **kw)

    # clustering (PredictionTreeView): engine/category_tree.py, engine/prediction_tree.py
    def category_tree(self, layer: Optional[str] = None, include_noise: bool = False,
                      control: Control = NO_CONTROL, **kw):
        """Class hierarchy (WPGMA) and minimum spanning tree; see :mod:`.category_tree`."""
        from .category_tree import category_tree
        return category_tree(self, layer=layer, include_noise=include_noise, control=control, **kw)

    def prediction_tree(self, category, layer: Optional[str] = None,
                        control: Control = NO_CONTROL, **kw):
        """Filter-wise prediction tree of one category; see :mod:`.prediction_tree`."""
        from .prediction_tree import prediction_tree
        return prediction_tree(self, category, layer=layer, control=control, **kw)

    # inverse set (InverseSetGallery): engine/inverse_set.py
    def inverse_set(self, units, ranges, generator=None, encoder=None, K: int = 10, n: int = 500,
                    control: Control = NO_CONTROL, **kw):
        """Diverse inputs whose units lie in their ranges; see :mod:`.inverse_set`."""
        from .inverse_set import inverse_set
        return inverse_set(self, units, ranges, generator=generator, encoder=encoder, K=K, n=n,
                           control=control, **kw)

    def __repr__(self):
        return (f"Engine({type(self.model).__name__}, input_shape={self.input_shape}, "
                f"device={self.device}, layers={len(self.layers)}, classes={self.n_classes}, "
                f"dataset={len(self.dataset) if self.dataset is not None else None})")


def _axes(shape):
    return "(" + ", ".join(["channel", "y", "x"][-len(shape):] if len(shape) <= 3
                           else [f"d{i}" for i in range(len(shape))]) + ")"


def _ranges(shape):
    names = ["c", "y", "x"][-len(shape):] if len(shape) <= 3 else [f"d{i}" for i in range(len(shape))]
    return ", ".join(f"0 <= {n} < {s}" for n, s in zip(names, shape))
