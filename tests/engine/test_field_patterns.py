"""The probing paper's "logic OR of configurations": distinct gate states inside one unit's
field-of-view tree, against a count made by hand on tiny LeNet's known geometry."""
import numpy as np
import pytest
import torch

from cnn_widgets.engine.probing.field_patterns import tree_boxes
from cnn_widgets.testing import random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine, reference_unit_values


def hand_count(model, x, c, y, xx):
    """tiny LeNet: relu1 (4, 8, 8) -> pool1 2x2 -> conv2 3x3 pad 1 -> relu2 (6, 4, 4). The unit
    relu2 (c, y, xx) reads pool1 rows y-1..y+1 (clipped), i.e. relu1 rows 2y-2..2y+3."""
    p0, p1 = max(y - 1, 0), min(y + 2, 4)
    q0, q1 = max(xx - 1, 0), min(xx + 2, 4)
    relu1 = reference_unit_values(model, x, "relu1").reshape(len(x), 4, 8, 8)
    relu2 = reference_unit_values(model, x, "relu2").reshape(len(x), 6, 4, 4)
    rows = []
    for i in range(len(x)):
        a = relu1[i, :, 2 * p0:2 * p1, 2 * q0:2 * q1]
        on = (a > 0).astype(int).ravel().tolist()
        win = []                                   # which of each 2x2 window won, per channel
        for ch in range(4):
            for py in range(p0, p1):
                for px in range(q0, q1):
                    w = relu1[i, ch, 2 * py:2 * py + 2, 2 * px:2 * px + 2]
                    k = int(np.argmax(w))
                    win.append((2 * py + k // 2) * 8 + 2 * px + k % 2)
        rows.append((tuple(on), tuple(win), tuple((relu2[i, :, y, xx] > 0).astype(int))))
    active = relu2[:, c, y, xx] > 0
    return len(set(rows)), len({r for r, a in zip(rows, active) if a}), int(active.sum())


def test_field_patterns_match_a_hand_count_and_ignore_pixels_outside_the_field():
    model = tiny_lenet(1)
    engine = cpu_engine(model, (1, 8, 8), batch_size=7)
    x = random_images(40, seed=3)
    x[20:] = x[:20]                                 # repeats: patterns < images
    x[20:, :, :, 5:] = torch.rand(20, 1, 8, 3)      # ... except outside the field of (0, 0)
    boxes = tree_boxes(engine, "relu2", 0, 0)
    assert boxes == {"relu1": (0, 4, 0, 4), "pool1": (0, 2, 0, 2), "relu2": (0, 1, 0, 1)}
    for unit in [(2, 0, 0), (4, 1, 2), (0, 3, 3)]:
        fp = engine.field_patterns("relu2", unit, data=x)
        want = hand_count(model, x, *unit)
        assert (fp.patterns, fp.active_patterns, fp.active) == want, unit
        assert fp.images == 40
    corner = engine.field_patterns("relu2", (2, 0, 0), data=x)
    assert corner.patterns <= 20 and corner.field == (0, 5, 0, 5)
    assert engine.count_regions((x, torch.zeros(40))).total > corner.patterns
    conv = engine.field_patterns("conv2", (2, 0, 0), data=x)    # a conv unit: no gate of its own
    assert conv.active == corner.active and "conv2" not in conv.boxes
    own = engine.field_patterns("relu2", (2, 0, 0), data=x, gates=["relu2"])
    assert own.patterns == len({tuple(r) for r in (reference_unit_values(
        model, x, "relu2").reshape(40, 6, 4, 4)[:, :, 0, 0] > 0).astype(int)})
    with pytest.raises(ValueError, match="tree's gate layers"):
        engine.field_patterns("relu2", (2, 0, 0), data=x, gates=["relu3"])
    with pytest.raises(ValueError, match="channels, H, W"):
        engine.field_patterns("fc1", (0,), data=x)
