"""Reads served from an attached index that matches the engine (same architecture, weights
by content, and preprocessing) and the data (the engine's dataset, or the index's own source when the engine
has none). Each function returns the result the scanning path would return, or None when no
index can answer, and the facade then scans."""
from __future__ import annotations

import json

import numpy as np
import torch

from ..core import validate as check
from ..core.data import ImageSet, as_images
from ..core.errors import InvalidArgument
from ..core.results import RegionCount
from ..core.selection import default_layer_for
from ..core.stamp import tensors_stamp
from ..etalons.regions import gate_names
from ..probing.activation_stats import ActivationStats
from ..probing.activation_stats import default_layers as rectified_layers
from ..visualization.objectives import as_objective
from ..visualization.scan import Histogram, TopImages, histogram_from_values
from .source import Rows, architecture_hash, data_hash, engine_weights_hash
from .store import ActivationIndex


def attach(engine, index: ActivationIndex) -> ActivationIndex:
    """Make ``index`` the first one the engine's reads try."""
    engine.__dict__.setdefault("_indexes", [])
    engine._indexes = [index] + [i for i in engine._indexes if i.path != index.path]
    return index


def mismatch(engine, index: ActivationIndex) -> str | None:
    """Why ``index`` cannot answer for ``engine`` and its dataset (None when it can)."""
    fp = index.fingerprint
    if "architecture" not in fp:
        return "its fingerprint has no architecture (an earlier version built it): rebuild it"
    if fp["architecture"] != architecture_hash(engine):
        return "it was built for another architecture (the traced graph or a module differs)"
    if fp["weights"] != engine_weights_hash(engine):
        return "it was built with other weights"
    ours, theirs = json.loads(_prep(engine)), json.loads(fp["preprocessing"])
    theirs.pop("transform", None)
    if ours != theirs:
        return f"it was built with other preprocessing ({theirs}, the engine has {ours})"
    if engine.dataset is not None:
        if fp["data"] != _dataset_hash(engine):
            return "it was built on other data than the engine's dataset"
    elif index.source is None:
        return "the engine has no dataset and the index's images are not at hand (open it " \
               "with data=...)"
    return None


def _prep(engine) -> str:
    from .source import preprocessing
    d = json.loads(preprocessing(engine, ""))
    d.pop("transform")
    return json.dumps(d)


def _dataset_hash(engine) -> str:
    ds = engine.dataset
    stamp = (id(ds), tensors_stamp(ds.images, ds.labels))       # .data edits bump no version
    cached = engine.__dict__.get("_index_data")
    if cached is None or cached[0] != stamp:
        cached = engine._index_data = (stamp, data_hash(Rows(ds)))
    return cached[1]


def find(engine, data, layers=()) -> ActivationIndex | None:
    """The first attached index that holds ``layers`` and matches; None for explicit data."""
    if data is not None:
        return None
    for index in engine.__dict__.get("_indexes", ()):
        if all(n in index.layers for n in layers) and mismatch(engine, index) is None:
            return index
    return None


def _channel(engine, target, data):
    """(index, layer, channel, description) when ``target`` is one channel mean (or one unit
    of a flat layer, a logit) of an indexed layer, weight 1."""
    obj = as_objective(target).bind(engine)
    if len(obj.terms) != 1 or obj.terms[0][0] != 1.0:
        return None
    term = obj.terms[0][1]
    flat = len(engine.layer(term.layer).output_shape) == 1
    if not (term.kind == "channel" or (flat and term.kind in ("unit", "logit"))):
        return None
    index = find(engine, data, [term.layer])
    return None if index is None else (index, term.layer, int(term.index), obj.description)


def _images(engine, index: ActivationIndex, rows: np.ndarray) -> ImageSet:
    if engine.dataset is not None:
        return ImageSet(engine.dataset.images[rows], engine.dataset.labels[rows])
    items = [index.source[int(i)] for i in rows]
    images = as_images(torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in items]),
                       engine.input_shape, stack=True)
    return ImageSet(images, torch.tensor([int(y) for _, y in items], dtype=torch.int64))


def top_images(engine, target, k, data) -> TopImages | None:
    hit = _channel(engine, target, data)
    if hit is None:
        return None
    index, layer, c, description = hit
    k = check.count("k", k)
    if not 1 <= k <= index.n:
        raise InvalidArgument(f"k must be in 1..{index.n} (the dataset size); got {k}")
    top = index.layer(layer).top(c, k)
    if top is None:                                  # more than the stored top list
        values = index.layer(layer).values(c)
        rows = np.argsort(-values, kind="stable")[:k]
        top = rows, values[rows]
    rows, values = top
    ds = _images(engine, index, rows)
    return TopImages(indices=rows, values=values, images=ds.images.numpy(),
                     labels=ds.labels.numpy(), objective=description, source=str(index.path))


def histogram(engine, target, bins, data) -> Histogram | None:
    hit = _channel(engine, target, data)
    if hit is None:
        return None
    index, layer, c, description = hit
    h = histogram_from_values(index.layer(layer).values(c), bins, description)
    return Histogram(h.counts, h.edges, h.values, h.objective, source=str(index.path))


def activation_stats(engine, x, layers) -> ActivationStats | None:
    """Served when ``x`` is the first len(x) images of the engine's dataset."""
    if engine.dataset is None:
        return None
    layers = check.layer_list(engine, layers) or rectified_layers(engine)
    index = find(engine, None, layers)
    if index is None:
        return None
    t = as_images(x, engine.input_shape).cpu()
    n = len(t)
    if not 0 < n <= len(engine.dataset) or not torch.equal(t, engine.dataset.images[:n]):
        return None
    counts, channels = {}, {}
    for name in layers:
        shape = engine.layer(name).output_shape
        grid = shape[1:] if len(shape) == 3 else (1, 1)
        counts[name] = np.asarray(index.layer(name).required("active_map")[:n],
                                  np.int32).reshape(n, *grid)
        channels[name] = int(shape[0])
    return ActivationStats(layers=layers, channels=channels, counts=counts,
                           source=str(index.path))


def class_sums(engine, layer, data) -> np.ndarray | None:
    """(classes, D) per-class sums of ``layer``'s flattened output, for the category tree."""
    layer = default_layer_for(engine, "features", layer)
    index = find(engine, data, [layer])
    return None if index is None else index.layer(layer).array("class_sums")


def region_count(engine, data, layers) -> RegionCount | None:
    """Distinct activation patterns per class from the stored digests (all gate calls only,
    the very ones ``count_regions`` records)."""
    index = find(engine, data)
    if layers is not None or index is None or index.codes is None:
        return None
    names = gate_names(engine)
    if index.meta["settings"].get("gates") != names:
        return None
    codes, labels = np.asarray(index.codes), np.asarray(index.labels)
    per_class = {}
    for c in np.unique(labels):
        rows = codes[labels == c]
        per_class[int(c)] = (len(rows), len(np.unique(rows, axis=0)))
    return RegionCount(per_class=per_class, total=len(np.unique(codes, axis=0)),
                       images=len(labels), layers=tuple(names))


def open_attached(engine, path, data=None) -> ActivationIndex:
    """Open ``path``, refuse it with the reason when it does not match, attach it."""
    from .source import as_source
    source = as_source(engine, data)[0] if data is not None else None
    index = ActivationIndex(path, source=source)
    if source is not None and data_hash(source) != index.fingerprint["data"]:
        raise InvalidArgument(f"the index {index.path} was built on other data than the "
                              f"data given ({len(source)} items)")
    why = mismatch(engine, index)
    if why is not None:
        raise InvalidArgument(f"the index {index.path} does not match this engine: {why}; "
                              f"build one with engine.index(...)")
    return attach(engine, index)
