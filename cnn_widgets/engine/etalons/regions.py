"""Linear regions: the activation pattern of an input (every ReLU call's on/off state, every
ReLU6/Hardtanh call's piece and every max-pool call's choice) and how many distinct patterns a
dataset visits, per class.

Inputs with the same pattern share one affine map, i.e. one set of etalons; counting patterns
measures the etalon paper's hypothesis that the number of etalons tracks the data's complexity."""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.data import labelled_data
from ..core.errors import LayerNotFound, NotPiecewiseLinear
from ..core.gates import UNRECORDED_KINDS, gates_of
from ..core.model import ModelHost
from ..core.results import RegionCount
from ..core.types import Data, Images, Layers


def gate_names(engine, layers=None):
    """The gate calls (every ReLU and max-pool call) that define the pattern (all by default)."""
    gates = engine.gate_layers
    if not gates:
        raise NotPiecewiseLinear("activation patterns need ReLU or max-pool layers; this model "
                                 "has none")
    if layers is None:
        return gates
    unknown = [n for n in layers if n not in gates]
    if unknown:
        raise LayerNotFound(f"{unknown} are not ReLU or max-pool calls; gate calls in this "
                            f"model: {', '.join(gates)}")
    return list(layers)


def _pattern_batch(engine, x, gates) -> np.ndarray:
    """(N, K) int64: 0/1 per ReLU input (on/off), the argmax index per max-pool output, in
    forward order of the gate calls ``gates``."""
    parts = {}

    def make(gate):
        def tap(module, inputs, output):
            parts[gate.name] = gate.state(inputs, output).flatten(1).to(torch.int64)
        return tap
    hooks.forward(engine.model, engine.normalize(x), {g.name: make(g) for g in gates})
    return torch.cat([parts[g.name] for g in gates], 1).cpu().numpy()


def _check(engine):
    engine.require_graph("activation patterns")
    other = [f"{i.kind} '{i.name}'" for i in engine.layers if i.kind in UNRECORDED_KINDS]
    if other:
        raise NotPiecewiseLinear(f"activation patterns record ReLU, LeakyReLU, ReLU6, "
                                 f"Hardtanh and max-pool states only; {', '.join(other)} would be missed")


def activation_pattern(engine: ModelHost, x: Images, layers: Layers = None) -> np.ndarray:
    """Activation pattern of each input, (N, K) int64, over the gate calls ``layers``
    (default: every ReLU and max-pool call, see ``engine.gate_layers``)."""
    _check(engine)
    gates = gates_of(engine, gate_names(engine, check.layer_list(engine, layers)))
    x = engine.prepare(x)
    with engine.borrow(), torch.no_grad():
        return np.concatenate([_pattern_batch(engine, x[s:s + engine.batch_size], gates)
                               for s in range(0, x.shape[0], engine.batch_size)])


def count_regions(engine: ModelHost, data: Data = None, layers: Layers = None,
                  control: Control = NO_CONTROL) -> RegionCount:
    """Distinct activation patterns per class over ``data`` (an ImageSet-like; default the
    engine's dataset), streamed in batches with progress; stops cleanly via ``control``.

    layers: count patterns of these gate calls only (default: all, i.e. linear regions of
    the whole network). Restricting to late layers shows how many distinct maps the data
    needs there, where whole-network regions are often one per image.
    """
    data = labelled_data(engine, data)
    _check(engine)
    names = gate_names(engine, check.layer_list(engine, layers))
    gates = gates_of(engine, names)
    seen = defaultdict(set)
    counts: defaultdict[int, int] = defaultdict(int)
    total = len(data)
    with engine.borrow(), torch.no_grad():
        for start, images, labels in data.batches(engine.batch_size):
            codes = _pattern_batch(engine, engine.prepare(images), gates)
            for row, label in zip(codes, labels.tolist()):
                seen[label].add(hashlib.blake2b(row.tobytes(), digest_size=16).digest())
                counts[label] += 1
            control.step(start + len(labels), total, "counting regions")
            engine.hand_over()
    everything = set().union(*seen.values()) if seen else set()
    return RegionCount(per_class={c: (counts[c], len(seen[c])) for c in sorted(seen)},
                       total=len(everything), images=total, layers=tuple(names))
