"""Tiny models with known structure, for tests of the engine and the widgets.

Every model here is small enough that a test can run the paper's Algorithm 1 on it in
milliseconds, and each one isolates one feature the engine must handle: an in-place ReLU, a
hand-set two-layer MLP (the paper's Fig. 2), smooth activations, BatchNorm, functional ReLU,
a forward pass torch.fx cannot trace, a model that raises mid-forward, a non-2-D output.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..engine.core.errors import InvalidArgument

M = TypeVar("M", bound=nn.Module)

#: Input shape of :func:`tiny_lenet` and the other small conv nets here.
TINY_SHAPE = (1, 8, 8)
#: Number of classes of the small conv nets here.
TINY_CLASSES = 5

#: Layer names and per-sample output shapes of :func:`tiny_lenet`, in forward order, worked
#: out by hand from the architecture (8x8 input, 3x3 convs with padding 1, 2x2 pools).
TINY_LENET_LAYERS = (
    ("conv1", "Conv2d", (4, 8, 8)),
    ("relu1", "ReLU", (4, 8, 8)),
    ("pool1", "MaxPool2d", (4, 4, 4)),
    ("conv2", "Conv2d", (6, 4, 4)),
    ("relu2", "ReLU", (6, 4, 4)),
    ("pool2", "MaxPool2d", (6, 2, 2)),
    ("flatten", "Flatten", (24,)),
    ("fc1", "Linear", (16,)),
    ("relu3", "ReLU", (16,)),
    ("fc2", "Linear", (TINY_CLASSES,)),
)


def _seeded(seed: int):
    g = torch.Generator().manual_seed(int(seed))
    return g


def _reinit(model: M, seed: int, bias_scale: float = 0.3) -> M:
    """Deterministic weights independent of torch's global RNG; biases big enough that some
    ReLUs are off and some on for inputs in [0, 1]."""
    g = _seeded(seed)
    with torch.no_grad():
        for m in model.modules():
            w = getattr(m, "weight", None)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(w, torch.Tensor):
                fan_in = w[0].numel()
                w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * bias_scale)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                c, w, b, mean, var = m.num_features, m.weight, m.bias, m.running_mean, m.running_var
                # ours are affine and keep running statistics
                assert w is not None and b is not None and mean is not None and var is not None
                w.copy_(0.5 + torch.rand(c, generator=g))
                b.copy_(torch.randn(c, generator=g) * 0.2)
                mean.copy_(torch.randn(c, generator=g) * 0.3)
                var.copy_(0.5 + torch.rand(c, generator=g))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.1 + 0.2 * torch.rand(m.weight.shape, generator=g))
    return model


def tiny_lenet(seed: int = 0, *, inplace: bool = True, leaky: bool = False,
               batchnorm: bool = False, softmax: bool = False) -> nn.Sequential:
    """LeNet in miniature: (N, 1, 8, 8) -> (N, 5).

    conv1 -> relu1 (in-place by default, to catch code that reads a ReLU's input after it ran)
    -> pool1 -> conv2 [-> bn2] -> relu2 -> pool2 -> flatten -> fc1 -> relu3 -> fc2 [-> softmax].
    ``leaky`` makes relu2 and relu3 LeakyReLU(0.1); ``batchnorm`` inserts BatchNorm2d with
    non-trivial running statistics; ``softmax`` appends an nn.Softmax as the last layer.
    """
    act = (lambda: nn.LeakyReLU(0.1)) if leaky else nn.ReLU
    layers = [
        ("conv1", nn.Conv2d(1, 4, 3, padding=1)),
        ("relu1", nn.ReLU(inplace=inplace)),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
    ]
    if batchnorm:
        layers.append(("bn2", nn.BatchNorm2d(6)))
    layers += [
        ("relu2", act()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(24, 16)),
        ("relu3", act()),
        ("fc2", nn.Linear(16, TINY_CLASSES)),
    ]
    if softmax:
        layers.append(("softmax", nn.Softmax(dim=1)))
    return _reinit(nn.Sequential(OrderedDict(layers)), seed)


def tiny_mlp(seed: int = 0, *, activation: str = "relu", shape: Sequence[int] = TINY_SHAPE,
             hidden: int = 12, classes: int = TINY_CLASSES) -> nn.Sequential:
    """flatten -> fc1 -> act -> fc2 -> act2 -> fc3, with ``activation`` one of relu, leaky,
    sigmoid, tanh, gelu, softmax (softmax over the hidden features, i.e. inside the net)."""
    makers: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.2), "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh, "gelu": nn.GELU, "softmax": lambda: nn.Softmax(dim=1)}
    if activation not in makers:
        raise InvalidArgument(f"activation must be one of {sorted(makers)}; got {activation!r}")
    n_in = 1
    for s in shape:
        n_in *= int(s)
    model = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(n_in, hidden)),
        ("act", makers[activation]()),
        ("fc2", nn.Linear(hidden, hidden)),
        ("act2", nn.ReLU()),
        ("fc3", nn.Linear(hidden, classes)),
    ]))
    return _reinit(model, seed)


def smooth_conv_net(activation: str, seed: int = 0) -> nn.Sequential:
    """A conv net on (1, 8, 8) with one smooth activation (sigmoid, tanh, gelu or softmax over
    channels) between ReLU stages: not piecewise linear, so etalons are only a Jacobian."""
    makers: dict[str, Callable[[], nn.Module]] = {
        "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
        "softmax": lambda: nn.Softmax(dim=1)}
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 3, 3, padding=1)),
        ("act", makers[activation]()),
        ("pool1", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(48, 10)),
        ("relu", nn.ReLU()),
        ("fc2", nn.Linear(10, TINY_CLASSES)),
    ]))
    return _reinit(model, seed)


def gated_conv_net(gate: str, seed: int = 0) -> nn.Sequential:
    """A piecewise-linear conv net on (1, 8, 8) whose gate after conv1 is ``gate``: relu6,
    hardtanh, prelu or adaptive_max (AdaptiveMaxPool2d(4) in place of the 2x2 max-pool).
    Exact for autograd; its gate is not one Algorithm 1's replay knows."""
    gates: dict[str, tuple[Callable[[], nn.Module], nn.Module]] = {
        "relu6": (nn.ReLU6, nn.MaxPool2d(2)), "hardtanh": (nn.Hardtanh, nn.MaxPool2d(2)),
        "prelu": (lambda: nn.PReLU(3), nn.MaxPool2d(2)),
        "adaptive_max": (nn.ReLU, nn.AdaptiveMaxPool2d(4))}
    act, pool = gates[gate]
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 3, 3, padding=1)),
        ("gate", act()),
        ("pool", pool),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(48, 10)),
        ("relu", nn.ReLU()),
        ("fc2", nn.Linear(10, TINY_CLASSES)),
    ]))
    return _reinit(model, seed, bias_scale=1.0)


def fig2_mlp(alpha, b_hidden, beta, b_out) -> nn.Sequential:
    """The two-layer ReLU network of Fig. 2 of the etalon paper, with the paper's indexing.

    Input X = (X1, X2) given as an image of shape (1, 1, 2). ``alpha[i][j]`` is the weight from
    X_{i+1} to Y_{j+1} (2 x 3), ``b_hidden`` = (b1, b2, b3); ``beta[l][k]`` is the weight from
    Y_{l+1} to Z_{k+1} (3 x 2), ``b_out`` = (b4, b5). Z = ReLU(beta^T ReLU(alpha^T X + b) + b'),
    so the model's output is (Z1, Z2) and the registry is flatten, hidden, relu_y, out, relu_z.
    """
    hidden, out = nn.Linear(2, 3), nn.Linear(3, 2)
    model = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("hidden", hidden),
        ("relu_y", nn.ReLU()),
        ("out", out),
        ("relu_z", nn.ReLU()),
    ]))
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(alpha, dtype=torch.float32).T)
        hidden.bias.copy_(torch.tensor(b_hidden, dtype=torch.float32))
        out.weight.copy_(torch.tensor(beta, dtype=torch.float32).T)
        out.bias.copy_(torch.tensor(b_out, dtype=torch.float32))
    return model


class FunctionalReLUNet(nn.Module):
    """Traceable by torch.fx, but its ReLUs are ``F.relu`` calls, not modules: piecewise
    linear (the fast path is exact) yet invisible to hooks (Algorithm 1 cannot replay them)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(48, 10)
        self.fc2 = nn.Linear(10, TINY_CLASSES)
        _reinit(self, seed)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class UntraceableNet(nn.Module):
    """A forward pass with data-dependent Python control flow (torch.fx cannot trace it) and a
    functional ReLU. The branch is never taken for inputs of ordinary size, so the function is
    piecewise linear in practice, but the engine cannot prove it."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.fc1 = nn.Linear(192, 10)
        self.fc2 = nn.Linear(10, TINY_CLASSES)
        _reinit(self, seed)

    def forward(self, x):
        x = self.relu1(self.conv1(x)).flatten(1)
        if x.abs().sum() > 1e12:            # data-dependent: a TraceError under torch.fx
            x = x / 2
        return self.fc2(F.relu(self.fc1(x)))


class Boom(nn.Identity):
    """Identity that raises ``RuntimeError('boom')`` on real batches of two or more images
    while ``armed`` (an nn.Identity subclass, so the engine treats it as piecewise linear and
    lets every method reach it; torch.fx traces through it without raising; the engine's own
    one-image checks of the model, at construction and after a change, go through)."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def forward(self, x):
        if self.armed and not isinstance(x, torch.fx.Proxy) and x.shape[0] > 1:
            raise RuntimeError("boom: raised inside the model on purpose")
        return x


def raising_lenet(seed: int = 0) -> nn.Sequential:
    """:func:`tiny_lenet` with a :class:`Boom` module named ``boom`` after pool1 (i.e. after the
    in-place relu1 ran). Set ``model.boom.armed = True`` to make forward passes fail there."""
    base = tiny_lenet(seed)
    layers = []
    for name, m in base.named_children():
        layers.append((name, m))
        if name == "pool1":
            layers.append(("boom", Boom()))
    return nn.Sequential(OrderedDict(layers))


class ReorderedNet(nn.Module):
    """Modules registered in the reverse of the order forward() calls them: the layer registry
    must follow the forward order, not the attribute order."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.head = nn.Linear(12, TINY_CLASSES)
        self.relu = nn.ReLU()
        self.body = nn.Linear(64, 12)
        self.flat = nn.Flatten()
        _reinit(self, seed)

    def forward(self, x):
        return self.head(self.relu(self.body(self.flat(x))))


class ReusedReLUNet(nn.Module):
    """One ``self.relu`` module called twice per forward pass (a common idiom), on inputs of
    different shapes: the registry lists it once, at its first call."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(48, TINY_CLASSES)
        _reinit(self, seed)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.relu(self.conv2(x))
        return self.fc(x.flatten(1))


class ImageOutputNet(nn.Module):
    """Returns a (N, 2, 8, 8) map instead of (N, classes) logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class TupleOutputNet(nn.Module):
    """Returns a tuple (logits, features) instead of a tensor."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, TINY_CLASSES)

    def forward(self, x):
        f = x.flatten(1)
        return self.fc(f), f


def random_images(n: int, shape: Sequence[int] = TINY_SHAPE, seed: int = 0) -> torch.Tensor:
    """(n, *shape) float32 images in [0, 1) from a private generator."""
    return torch.rand((int(n), *shape), generator=_seeded(seed))
