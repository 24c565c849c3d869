"""Reference computations that do not go through the engine (forward hooks on a deep copy,
torch.autograd.functional.jacobian), for tests of the engine."""
import copy

import numpy as np
import torch

from ..engine import Engine

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
NORMALISATIONS = {"raw": (None, None), "mnist": (MNIST_MEAN, MNIST_STD)}


def cpu_engine(model, shape, **kw):
    """Engine(model, shape, device="cpu", **kw): the model is used in place, never copied."""
    kw.setdefault("device", "cpu")
    return Engine(model, shape, **kw)


def reference_unit_values(model, x, layer, mean=None, std=None, train=False):
    """Output of module ``layer`` ('' = the model's output) for raw images ``x`` (N, C, H, W),
    normalised as the engine would, computed on a deep copy with one plain forward hook.
    Returns (N, n_units) float64 numpy."""
    work = copy.deepcopy(model).train(train)
    x = torch.as_tensor(x, dtype=torch.float32)
    if mean is not None:
        x = (x - mean) / std
    got = {}
    if layer:
        dict(work.named_modules())[layer].register_forward_hook(
            lambda m, i, o: got.__setitem__("v", o.detach().clone()))
    with torch.no_grad():
        out = work(x)
    v = got["v"] if layer else out
    return v.reshape(v.shape[0], -1).double().numpy()


def reference_jacobian(model, x, mean=None, std=None, train=False):
    """d model(normalise(x)) / dx for ONE raw image x (C, H, W), by
    torch.autograd.functional.jacobian on a deep copy (running in the given mode).
    Returns (classes, C, H, W) float64 numpy."""
    work = copy.deepcopy(model).train(train)
    for p in work.parameters():
        p.requires_grad_(False)

    def f(img):
        z = img if mean is None else (img - mean) / std
        return work(z[None])[0]
    J = torch.autograd.functional.jacobian(f, torch.as_tensor(x, dtype=torch.float32))
    return J.double().numpy()


def autograd_gradient(engine, x, layer, coords):
    """d(unit ``coords`` of ``layer``)/d(input) for one image ``x`` (C, H, W), by plain
    autograd through the engine's forward pass; numpy (C, H, W)."""
    with engine.borrow():
        xg = torch.as_tensor(x)[None].clone().requires_grad_(True)
        out = engine.layer_output(xg, layer)
        idx = int(np.ravel_multi_index(coords, engine.layer(layer).output_shape))
        (g,) = torch.autograd.grad(out[0, idx], xg)
    return g[0].numpy()


def max_abs(a):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64))))


def assert_same_map(W1, W2, what="", rel=1e-5):
    """max |W1 - W2| <= rel * max |W| (and W is not trivially zero)."""
    W1, W2 = np.asarray(W1, np.float64), np.asarray(W2, np.float64)
    assert W1.shape == W2.shape, f"{what}: shapes {W1.shape} vs {W2.shape}"
    scale = max(max_abs(W1), max_abs(W2))
    assert scale > 0, f"{what}: both maps are all zero; the test would prove nothing"
    diff = max_abs(W1 - W2)
    assert diff <= rel * scale, f"{what}: max |diff| = {diff:.3g} > {rel} * {scale:.3g}"
