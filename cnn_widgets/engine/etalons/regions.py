"""Linear regions: the activation pattern of an input (every ReLU's on/off state and every
max-pool's choice) and how many distinct patterns a dataset visits, per class.

Inputs with the same pattern share one affine map, i.e. one set of etalons; counting patterns
measures the etalon paper's hypothesis that the number of etalons tracks the data's complexity.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument, LayerNotFound, NotPiecewiseLinear
from ..core.gates import GATES, UNRECORDED, gate_state
from ..core.layers import functional_relus
from ..core.results import RegionCount


def gate_names(engine, layers=None):
    """The ReLU and max-pool modules that define the pattern (all of them by default)."""
    gates = [n for n, m in engine.model.named_modules() if isinstance(m, GATES)]
    if not gates:
        raise NotPiecewiseLinear("activation patterns need ReLU or max-pool modules; this model "
                                 "has none")
    if layers is None:
        return gates
    unknown = [n for n in layers if n not in gates]
    if unknown:
        raise LayerNotFound(f"{unknown} are not ReLU or max-pool modules; gates in this model: "
                            f"{', '.join(gates)}")
    return list(layers)


def _pattern_batch(engine, model, x, names) -> np.ndarray:
    """(N, K) int64: 0/1 per ReLU input (on/off), the argmax index per max-pool output, in
    forward order of the modules ``names``."""
    parts = []

    def hook(module, inputs, output):
        parts.append(gate_state(module, inputs, output).flatten(1).to(torch.int64))
    with hooks.hooked(model, {n: hook for n in names}):
        model(engine.normalize(x))
    return torch.cat(parts, 1).cpu().numpy()


def _check(engine):
    relus = functional_relus(engine.model)
    if relus:
        raise NotPiecewiseLinear(f"activation patterns are read from ReLU modules, but the "
                                 f"forward pass also calls {relus} functionally; make them modules")
    other = [f"{type(m).__name__} '{n}'" for n, m in engine.model.named_modules()
             if isinstance(m, UNRECORDED)]
    if other:
        raise NotPiecewiseLinear(f"activation patterns record ReLU, LeakyReLU, MaxPool1d and "
                                 f"MaxPool2d states only; {', '.join(other)} would be missed")


def activation_pattern(engine, x, layers=None) -> np.ndarray:
    """Activation pattern of each input, (N, K) int64, over the gate modules ``layers``
    (default: every ReLU and max-pool)."""
    _check(engine)
    names = gate_names(engine, check.layer_list(engine, layers))
    x = engine.prepare(x)
    with engine.borrow() as model, torch.no_grad():
        return np.concatenate([_pattern_batch(engine, model, x[s:s + engine.batch_size], names)
                               for s in range(0, x.shape[0], engine.batch_size)])


def count_regions(engine, data=None, layers=None, control: Control = NO_CONTROL) -> RegionCount:
    """Distinct activation patterns per class over ``data`` (an ImageSet-like; default the
    engine's dataset), streamed in batches with progress; stops cleanly via ``control``.

    layers: count patterns of these gate modules only (default: all, i.e. linear regions of
    the whole network). Restricting to late layers shows how many distinct maps the data
    needs there, where whole-network regions are often one per image.
    """
    from ..core.data import as_image_set
    data = engine.dataset if data is None else as_image_set(data, engine.input_shape)
    if data is None:
        raise InvalidArgument("count_regions needs data: pass (images, labels) or give the engine a "
                         "dataset")
    _check(engine)
    names = gate_names(engine, check.layer_list(engine, layers))
    seen = defaultdict(set)
    counts = defaultdict(int)
    total = len(data)
    with engine.borrow() as model, torch.no_grad():
        for start, images, labels in data.batches(engine.batch_size):
            codes = _pattern_batch(engine, model, engine.prepare(images), names)
            for row, label in zip(codes, labels.tolist()):
                seen[label].add(hashlib.blake2b(row.tobytes(), digest_size=16).digest())
                counts[label] += 1
            control.step(start + len(labels), total, "counting regions")
            engine.hand_over()
    everything = set().union(*seen.values()) if seen else set()
    return RegionCount(per_class={c: (counts[c], len(seen[c])) for c in sorted(seen)},
                       total=len(everything), images=total, layers=tuple(names))
