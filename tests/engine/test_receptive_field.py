"""Receptive fields from layer geometry, checked against where the input gradient of a unit
can be non-zero, on nets with strides, padding, dilation, ceil-mode and adaptive pools."""
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cnn_widgets.engine import NotAChain
from cnn_widgets.engine.core.errors import UnitOutOfRange
from cnn_widgets.engine.probing.receptive_field import field_maps
from cnn_widgets.testing import random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine


def odd_geometry_net():
    """(1, 1, 23, 21) through every geometry the walk knows; no ReLU so every tap can matter."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 2, 3, padding=1)),
        ("conv2", nn.Conv2d(2, 2, (5, 3), stride=2, padding=(2, 0))),
        ("bn", nn.BatchNorm2d(2).eval()),
        ("pool1", nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)),
        ("conv3", nn.Conv2d(2, 3, 3, dilation=2, padding=1)),
        ("avg", nn.AvgPool2d(2, stride=1)),
        ("adapt", nn.AdaptiveAvgPool2d((3, 2))),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(18, 4)),
    ]))


def gradient_box(engine, layer, c, y, x, n=24):
    """Bounding box of the input pixels where the gradient of unit (c, y, x) is non-zero for
    at least one of n random inputs (max-pool switches differ between inputs). c=None: every
    channel at (y, x), mixed with random positive weights (a concatenation's channels come
    from branches with different fields; the field of a position is their union)."""
    xs = random_images(n, engine.input_shape, seed=3) * 4 - 2
    shape = engine.layer(layer).output_shape
    with engine.borrow():
        xg = xs.clone().requires_grad_(True)
        out = engine.layer_output(xg, layer).reshape(n, *shape)
        if c is None:
            mix = torch.rand(shape[0], generator=torch.Generator().manual_seed(1)) + 0.5
            score = (out[:, :, y, x] * mix).sum()
        else:
            score = out[:, c, y, x].sum()
        (g,) = torch.autograd.grad(score, xg)
    rows, cols = np.nonzero(g.abs().sum((0, 1)).numpy())
    if len(rows) == 0:
        return 0, 0, 0, 0
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


@pytest.mark.parametrize("model,shape", [(odd_geometry_net, (1, 23, 21)),
                                         (tiny_lenet, (1, 8, 8))])
def test_field_is_the_support_of_the_gradient(model, shape):
    engine = cpu_engine(model(), shape)
    checked = 0
    for info in engine.layers:
        if len(info.output_shape) != 3:
            continue
        _, gh, gw = info.output_shape
        for y, x in {(0, 0), (gh - 1, gw - 1), (gh // 2, gw // 2), (0, gw - 1)}:
            f = engine.receptive_field(info.name, y, x)
            assert (f.top, f.left, f.bottom, f.right) == gradient_box(engine, info.name, 0, y, x), \
                (info.name, y, x)
            checked += 1
    assert checked >= 12


def test_units_after_flatten_see_the_whole_image():
    engine = cpu_engine(odd_geometry_net(), (1, 23, 21))
    f = engine.receptive_field("fc", 0, 0)
    assert (f.top, f.left, f.bottom, f.right) == (0, 0, 23, 21)


def test_vgg16_fields_match_the_published_sizes():
    """conv5_3 (features.28, the paper's layer 13) sees 196 px, pool5 212 px, conv1_1 3 px."""
    import torchvision
    engine = cpu_engine(torchvision.models.vgg16(weights=None).eval(), (3, 224, 224))
    centre = {name: engine.receptive_field(name, s // 2, s // 2)
              for name, s in [("features.0", 224), ("features.28", 14), ("features.30", 7)]}
    assert centre["features.0"].height == 3
    assert centre["features.28"].height == centre["features.28"].width == 196
    assert centre["features.30"].height == 212
    corner = engine.receptive_field("features.28", 0, 0)        # rows 16y - 90 .. 16y + 105
    assert (corner.top, corner.left, corner.bottom, corner.right) == (0, 0, 106, 106)
    maps = field_maps(engine)
    assert set(maps) == set(engine.layer_names)
    assert maps["features.28"].boxes().shape == (14, 14, 4)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, 3)

    def forward(self, x):
        h = self.conv1(x)
        return self.fc(self.flatten(h + self.conv2(h)))


def test_a_skip_connection_unions_the_branches():
    """The old chain walk refused 'flatten' here (a skip connection); the graph walk takes the
    union of the two branches at the add."""
    engine = cpu_engine(Residual(), (1, 8, 8))
    assert "add" in engine.layer_names
    assert engine.receptive_field("conv2", 4, 4).height == 5
    f = engine.receptive_field("add", 4, 4)
    assert (f.top, f.left, f.bottom, f.right) == (2, 2, 7, 7) == gradient_box(engine, "add", None, 4, 4)
    f = engine.receptive_field("add", 0, 0)
    assert (f.top, f.left, f.bottom, f.right) == (0, 0, 3, 3) == gradient_box(engine, "add", None, 0, 0)
    assert engine.receptive_field("fc", 0, 0).height == 8


def test_resampling_is_refused_by_name():
    class Upsampling(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 16 * 16, 3)

        def forward(self, x):
            h = torch.nn.functional.interpolate(self.conv(x), scale_factor=2.0)
            return self.fc(torch.relu(h).flatten(1))
    engine = cpu_engine(Upsampling(), (1, 8, 8))
    assert engine.receptive_field("conv", 4, 4).height == 3
    with pytest.raises(NotAChain, match="interpolate.*resamples"):
        engine.receptive_field("relu", 0, 0)


def test_positions_out_of_range_are_refused():
    engine = cpu_engine(tiny_lenet(), (1, 8, 8))
    with pytest.raises(UnitOutOfRange, match=r"0 <= y < 4, 0 <= x < 4"):
        engine.receptive_field("conv2", 4, 0)


class Shuffle(nn.Module):
    """ShuffleNet's moves: chunk along channels, a strided branch, concatenation, and the
    channel shuffle (view to 5-D, torch.transpose of the channel axes, view back)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.branch = nn.Conv2d(2, 2, 3, padding=1, dilation=1)
        self.fc = nn.Linear(4 * 9 * 9, 3)

    def forward(self, x):
        a, b = self.conv(x).chunk(2, dim=1)
        h = torch.cat([a, self.branch(torch.relu(b))], 1)
        n, c, hh, ww = h.shape
        h = torch.transpose(h.view(n, 2, c // 2, hh, ww), 1, 2).contiguous().view(n, c, hh, ww)
        return self.fc(torch.max_pool2d(h, 3, 2, 1, 1, True).flatten(1))


def test_split_shuffle_and_concat_keep_the_grid():
    engine = cpu_engine(Shuffle(), (1, 17, 17))
    checked = 0
    for layer in ["cat", "max_pool2d"]:
        _, gh, gw = engine.layer(layer).output_shape
        for y, x in {(0, 0), (gh - 1, gw - 1), (gh // 2, gw // 2), (0, gw - 1)}:
            f = engine.receptive_field(layer, y, x)
            assert (f.top, f.left, f.bottom, f.right) == gradient_box(engine, layer, None, y, x), \
                (layer, y, x)
            checked += 1
    assert checked == 8


class OneElementSizes(nn.Module):
    """Window sizes given as one-element lists, which torch reads as both axes (the type
    checker found pair() returning them as 1-tuples: an IndexError in the walk)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), [3], [2], [1])
        return self.fc(h.flatten(1))


def test_one_element_window_sizes_mean_both_axes():
    engine = cpu_engine(OneElementSizes(), (1, 8, 8))
    for y, x in [(0, 0), (3, 3), (1, 2)]:
        f = engine.receptive_field("max_pool2d", y, x)
        assert (f.top, f.left, f.bottom, f.right) == gradient_box(engine, "max_pool2d", 1, y, x)
