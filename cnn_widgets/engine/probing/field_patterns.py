"""The probing paper's "logic OR of many intermediate configurations" (Sec. 2, Fig. 3): a unit
at the end of the chain is active for many different activation configurations inside its
field-of-view tree. Here the configuration of an image is the state of every ReLU (on/off) and
max-pool (which input won) inside the unit's FOV tree, i.e. at the positions of each earlier
gate layer that can reach the unit; counting the distinct ones over a dataset counts the
linear regions the unit sees (the whole-network count is ``count_regions``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ..core import hooks
from ..core.control import NO_CONTROL, Control
from ..core.data import ImageSet, as_images
from ..core.errors import InvalidArgument
from ..core.gates import gates_of
from ..core.model import ModelHost
from ..core.types import Images, Layers
from .receptive_field import _compute_fields, receptive_field


@dataclass(frozen=True)
class FieldPatterns:
    """images: how many were looked at; active: how many of them drive the unit > 0;
    patterns: distinct FOV-tree configurations over all images; active_patterns: over the
    images where the unit is active (the "OR" the paper speaks of); boxes: gate layer ->
    (top, bottom, left, right) of its positions inside the tree (bottom/right exclusive);
    field: the unit's input box (top, bottom, left, right)."""
    layer: str
    unit: tuple[int, int, int]
    images: int
    active: int
    patterns: int
    active_patterns: int
    boxes: dict[str, tuple[int, int, int, int]]
    field: tuple[int, int, int, int]


def tree_boxes(engine, layer: str, y: int, x: int) -> dict[str, tuple[int, int, int, int]]:
    """Gate call (up to and including ``layer``) -> the box of its output positions that
    reach position (y, x) of ``layer`` (fields computed from that gate's grid on)."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for gate in engine.gate_layers:
        if len(engine.layer(gate).output_shape) != 3:     # off the grid: reaches no position
            continue
        fm = _compute_fields(engine, start=gate)[0].get(layer)
        if fm is not None and fm.bottom[y] > fm.top[y] and fm.right[x] > fm.left[x]:
            out[gate] = (int(fm.top[y]), int(fm.bottom[y]), int(fm.left[x]), int(fm.right[x]))
    return out


def field_patterns(engine: ModelHost, layer: str, unit: tuple[int, int, int],
                   data: Images | ImageSet | None = None, gates: Layers = None,
                   control: Control = NO_CONTROL) -> FieldPatterns:
    """Distinct FOV-tree configurations of unit ``(channel, y, x)`` of ``layer`` over ``data``
    (images (N, C, H, W) or an ImageSet; default the engine's dataset); gates: count the
    states of these gate layers of the tree only (default: all of them; a deep tree makes
    nearly every image its own configuration, one layer shows the OR more plainly)."""
    name = engine.layer(layer).name
    shape = engine.layer(name).output_shape
    if len(shape) != 3:
        raise InvalidArgument(f"layer {name!r} has output shape {shape}; a field of view needs "
                              "a (channels, H, W) layer")
    ((c, y, x),) = engine.resolve_units(name, [tuple(unit)])
    if data is None:
        if engine.dataset is None:
            raise InvalidArgument("field_patterns needs data: pass images or give the engine a "
                                  "dataset")
        data = engine.dataset
    images = as_images(getattr(data, "images", data), engine.input_shape, stack=True)
    boxes = tree_boxes(engine, name, y, x)
    if gates is not None:
        unknown = [g for g in gates if g not in boxes]
        if unknown or not gates:
            raise InvalidArgument(f"gates must be a non-empty list of the tree's gate layers "
                                  f"{list(boxes)}; got {list(gates)}")
        boxes = {g: boxes[g] for g in boxes if g in gates}
    rf = receptive_field(engine, name, y, x)
    seen, seen_active, active = set(), set(), 0
    n = len(images)
    gate_list = gates_of(engine, list(boxes))
    parts, value = {}, {}                        # filled by the taps, batch by batch

    def gate_tap(gate):
        def tap(module, inputs, output):
            t, b, l_, r = boxes[gate.name]
            parts[gate.name] = gate.state(inputs, output)[:, :, t:b, l_:r].flatten(1).long()
        return tap

    taps = {g.name: gate_tap(g) for g in gate_list}
    own = taps.get(name)

    def unit_tap(module, inputs, output):      # returns None: the output stays as it is
        if own is not None:
            own(module, inputs, output)
        value["u"] = output[:, c, y, x].clone()
    taps[name] = unit_tap
    with engine.borrow(), torch.no_grad():
        for s in range(0, n, engine.batch_size):
            hooks.forward(engine.model, engine.normalize(
                engine.prepare(images[s:s + engine.batch_size])), taps)
            rows = torch.cat([parts[g.name] for g in gate_list], 1).cpu().numpy()
            on = (value["u"] > 0).cpu().numpy()
            for row, is_on in zip(rows, on):
                key = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
                seen.add(key)
                if is_on:
                    seen_active.add(key)
            active += int(on.sum())
            control.step(min(s + engine.batch_size, n), n, "field patterns")
    return FieldPatterns(layer=name, unit=(c, y, x), images=n, active=active,
                         patterns=len(seen), active_patterns=len(seen_active), boxes=boxes,
                         field=(rf.top, rf.bottom, rf.left, rf.right))
