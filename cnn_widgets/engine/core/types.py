"""The types of the engine's public arguments, named once for every signature.

``help(engine.etalons)`` shows these names (``x: 'Images'``); what each accepts is here. They are
aliases only: the checks happen where the values are used (:mod:`.data`, :mod:`.validate`,
``ModelHost.resolve_units``), and the type checker (mypy, ``.ci/run``) reads them.

Images   a batch (N, C, H, W) or one image (C, H, W) (one-channel models: also (H, W)); a
         tensor, numpy array or nested list; floats in [0, 1], or uint8 0..255 (scaled);
         channels-last is converted with a warning (see :mod:`.data`)
Labels   (N,) class indices: a tensor, numpy array or list of ints (whole floats accepted)
Data     None (the engine's dataset), an ImageSet, (images, labels), or a map-style dataset
         of (image, label) pairs
IndexData  what :meth:`Engine.index` scans: a Data, images alone, or a folder of class folders
Unit     one unit of a layer: a flat index (int) or a coordinate tuple such as (channel, y, x)
Units    None (every unit of a small layer), a Unit, or a sequence of Units
LayerUnit  (layer name, Unit)
Layers   None (the call's default) or a sequence of layer names
Target   an objective (``cnn_widgets.objectives``) or a (layer, unit) pair
Range    (z1, z2) with z1 < z2; Ranges: one Range or one per unit
Seed     an integer in 0..2**32 - 1
Device   a torch device, its name ("cpu", "cuda:1"), a CUDA index, or None (CUDA if available)
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np
import torch
from torch import nn

from .data import ImageSet

if TYPE_CHECKING:      # paper packages sit above core: their classes are named for the checker only
    from ..visualization.objectives import Objective
    from ..visualization.regularizers import AlphaNorm, GradientTrick, Jitter, TotalVariation


class MapDataset(Protocol):
    """A map-style dataset: ``len(ds)`` items ``ds[i] = (image, label)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


Images: TypeAlias = torch.Tensor | np.ndarray | Sequence[Any]
Labels: TypeAlias = torch.Tensor | np.ndarray | Sequence[int]
Data: TypeAlias = ImageSet | tuple[Images, Labels] | MapDataset | None
PathLike: TypeAlias = str | os.PathLike[str]
IndexData: TypeAlias = Data | Images | PathLike

Unit: TypeAlias = int | tuple[int, ...]
Units: TypeAlias = Unit | Sequence[Unit] | None
LayerUnit: TypeAlias = tuple[str, Unit]
LayerUnits: TypeAlias = LayerUnit | Sequence[LayerUnit]
Layers: TypeAlias = Sequence[str] | None
Target: TypeAlias = "Objective | LayerUnit"

Range: TypeAlias = tuple[float, float]
Ranges: TypeAlias = Range | Sequence[Range] | np.ndarray
Seed: TypeAlias = int
Device: TypeAlias = torch.device | str | int | None
#: per-channel mean or std: one number for every channel, one per channel, or None (none)
ChannelValues: TypeAlias = float | Sequence[float] | torch.Tensor | np.ndarray | None
#: a method name or several, e.g. "all", "gradient" or ["gradient", "gradcam"]
Methods: TypeAlias = str | Sequence[str]
#: a class index or a class name
Category: TypeAlias = int | str
#: start images of the maximiser: "noise", "dataset", or Images
Start: TypeAlias = str | Images
Regularizers: TypeAlias = "Sequence[AlphaNorm | TotalVariation | GradientTrick | Jitter] | None"
#: G of the inverse set: codes (N, code_dim) -> images, with an int ``code_dim``; None: pixels
Generator: TypeAlias = nn.Module | None
#: E of the inverse set: a layer name of the engine, a module on images, or None (default layer)
Encoder: TypeAlias = str | nn.Module | None
#: images -> codes (a VAE's encoder): the inverse set's seeds start at E(noise images)
CodeEncoder: TypeAlias = nn.Module | Callable[[torch.Tensor], Any]

__all__ = ["MapDataset", "Images", "Labels", "Data", "PathLike", "IndexData", "Unit", "Units",
           "LayerUnit", "LayerUnits", "Layers", "Target", "Range", "Ranges", "Seed", "Device",
           "ChannelValues", "Methods", "Category", "Start", "Regularizers", "Generator",
           "Encoder", "CodeEncoder"]
