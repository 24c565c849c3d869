"""Dataset scans of one objective, streaming in batches: the images that drive it most and
the histogram of its value over the whole set (visualization paper, Figs. 4–5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.data import ImageSet, as_image_set, as_images
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.types import Data, Target
from .objectives import as_objective

FIRST_BATCH = 8      # images in a watched scan's first batch (its first picture)


@dataclass(frozen=True)
class TopImages:
    """indices: (k,) dataset rows, highest value first; values: (k,) the objective there;
    images: (k, C, H, W); labels: (k,); objective: its description."""
    indices: np.ndarray
    values: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    objective: str
    source: str = "scan"        # "scan", or the path of the activation index that answered


@dataclass(frozen=True)
class Histogram:
    """counts: (bins,); edges: (bins + 1,); values: (N,) the objective on every image."""
    counts: np.ndarray
    edges: np.ndarray
    values: np.ndarray
    objective: str
    source: str = "scan"        # "scan", or the path of the activation index that answered


def _data(engine, data) -> ImageSet:
    if data is None:
        if engine.dataset is None:
            raise InvalidArgument("this engine has no dataset: pass data=(images, labels)")
        return engine.dataset
    if torch.is_tensor(data) or isinstance(data, np.ndarray):     # images without labels
        images = as_images(data, engine.input_shape, stack=True).cpu()
        return as_image_set((images, -torch.ones(len(images), dtype=torch.int64)),
                            engine.input_shape)
    return as_image_set(data, engine.input_shape, engine.n_classes, unlabelled=True)


def objective_values(engine: ModelHost, target: Target, data: Data = None, control: Control = NO_CONTROL,
                     batch_size: int | None = None) -> np.ndarray:
    """(N,) value of ``target`` (an objective or a (layer, unit) pair) on every image of
    ``data`` (default: the engine's dataset), in batches with progress and Stop."""
    return _scan(engine, target, data, control, batch_size)[0]


def _scan(engine, target, data=None, control: Control = NO_CONTROL, batch_size: int | None = None,
          live=None):
    """(values, the data set, the bound objective) of :func:`objective_values`. ``live``:
    (values so far, data set, objective) -> what ``control.partial`` gets after a batch, when
    its watcher wants one; then the first batch is only :data:`FIRST_BATCH` images, so the
    first picture comes early."""
    obj = as_objective(target).bind(engine)
    ds = _data(engine, data)
    names = engine.layer_names
    last = max(obj.layers, key=names.index)
    bs = check.optional_count("batch_size", batch_size) or engine.batch_size
    size = min(bs, FIRST_BATCH) if live is not None and control.partial_due() else bs
    out, s = [], 0
    while s < len(ds):
        with engine.borrow(), torch.no_grad():    # the borrow restores grad mode, interrupted too
            x = engine.prepare(ds.images[s:s + size])
            outs = hooks.run_capturing(engine.model, engine.normalize(x), obj.layers,
                                       stop_after=last)
            out.append(obj.evaluate(outs).cpu())
        s, size = min(s + size, len(ds)), bs
        if live is not None and control.partial_due():
            control.partial(live(torch.cat(out).numpy(), ds, obj))
        control.step(s, len(ds), "scan")
    return torch.cat(out).numpy(), ds, obj


def top_from_values(values: np.ndarray, ds: ImageSet, k: int, description: str) -> TopImages:
    k = check.count("k", k)
    if not 1 <= k <= len(values):
        raise InvalidArgument(f"k must be in 1..{len(values)} (the dataset size); got {k}")
    order = np.argsort(-values, kind="stable")[:k]        # ties: the lower index first
    return TopImages(indices=order, values=values[order], images=ds.images[order].numpy(),
                     labels=ds.labels[order].numpy(), objective=description)


def histogram_from_values(values: np.ndarray, bins: int, description: str) -> Histogram:
    counts, edges = np.histogram(values, bins=check.count("bins", bins))
    return Histogram(counts=counts, edges=edges, values=values, objective=description)


def top_images(engine: ModelHost, target: Target, k: int = 9, data: Data = None,
               control: Control = NO_CONTROL,
               batch_size: int | None = None) -> TopImages:
    """The ``k`` images of ``data`` (default: the engine's dataset) with the highest value of
    ``target`` (an objective, or a (layer, unit) pair). ``control.partial`` gets the top k of
    the images scanned so far."""
    k = check.count("k", k)
    values, ds, obj = _scan(engine, target, data, control, batch_size,
                            lambda v, ds, obj: top_from_values(v, ds, min(k, len(v)),
                                                               obj.description))
    return top_from_values(values, ds, k, obj.description)


def top_images_and_histogram(engine: ModelHost, target: Target, k: int = 9, bins: int = 50,
                             data: Data = None,
                             control: Control = NO_CONTROL,
                             batch_size: int | None = None) -> tuple[TopImages, Histogram]:
    """:func:`top_images` and :func:`activation_histogram` from one pass over ``data``;
    ``control.partial`` gets both for the images scanned so far."""
    k, bins = check.count("k", k), check.count("bins", bins)
    values, ds, obj = _scan(engine, target, data, control, batch_size,
                            lambda v, ds, obj: (top_from_values(v, ds, min(k, len(v)),
                                                                obj.description),
                                                histogram_from_values(v, bins, obj.description)))
    return (top_from_values(values, ds, k, obj.description),
            histogram_from_values(values, bins, obj.description))


def activation_histogram(engine: ModelHost, target: Target, bins: int = 50, data: Data = None,
                         control: Control = NO_CONTROL,
                         batch_size: int | None = None) -> Histogram:
    """Histogram of ``target`` over every image of ``data`` (default: the engine's dataset)."""
    values, _, obj = _scan(engine, target, data, control, batch_size)
    return histogram_from_values(values, bins, obj.description)
