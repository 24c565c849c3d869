"""A two-class digits model, the offline analogue of the visualization paper's cat-vs-dog
ResNet-18: a LeNet trained (deterministically, cached) on two of the digits."""
from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..engine import Engine
from ..engine.core.errors import InvalidArgument
from . import cache
from .digits import SPLIT_SEED, TEST_FRACTION, digits
from .lenet import LeNet
from .pretrained import INPUT_SHAPE, RECIPE
from .training import accuracy, train_classifier

DEFAULT_CLASSES = (3, 8)     # two digits that share strokes, as cats and dogs share fur


def _pair(classes: Sequence[int], what: str = "digits 0..9") -> tuple[int, int]:
    try:
        a, b = (int(c) for c in classes)
    except (TypeError, ValueError):   # not two numbers: one, three, or "x"
        a = b = -1
    if a == b or not (0 <= a <= 9 and 0 <= b <= 9):
        raise InvalidArgument(f"classes must be two different {what}; got {classes!r}")
    return a, b


def _seeded(seed: int, make, *args, **kwargs):
    """``make(*args, **kwargs)`` with the global RNG seeded, restoring the caller's state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make(*args, **kwargs)


def _subset(x, y, pair):
    keep = (y == pair[0]) | (y == pair[1])
    return x[keep], (y[keep] == pair[1]).to(torch.int64)      # first digit -> 0, second -> 1


def other_digits(classes: Sequence[int] = DEFAULT_CLASSES):
    """(images (N, 1, 28, 28), digit labels (N,)) of the test split without the two classes:
    the out-of-sample images of Table 1."""
    pair = _pair(classes)
    d = digits()
    keep = (d.y_test != pair[0]) & (d.y_test != pair[1])
    return d.x_test[keep], d.y_test[keep]


def two_digits(classes: Sequence[int] = DEFAULT_CLASSES, *, retrain: bool = False,
               verbose: bool = False, device=None) -> Engine:
    """Engine for a LeNet trained on two digits (class 0 = ``classes[0]``, 1 = ``classes[1]``)
    with their test images as its dataset; ``model_card`` has the test accuracy. Trained with
    the zoo's recipe on the CPU on first use (about a second) and cached like
    :func:`~cnn_widgets.zoo.lenet_digits`."""
    pair = _pair(classes)
    d = digits()
    x_train, y_train = _subset(d.x_train, d.y_train, pair)
    x_test, y_test = _subset(d.x_test, d.y_test, pair)
    recipe = {"model": "LeNet-2", "train": RECIPE, "classes": list(pair),
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    model, meta, hit, path = cache.trained(
        f"two-digits-{pair[0]}{pair[1]}", recipe, lambda: _seeded(RECIPE["seed"], LeNet, 2),
        lambda m: train_classifier(m, x_train, y_train, **RECIPE),
        measure=lambda m: {"test_accuracy": accuracy(m, x_test, y_test)}, retrain=retrain)
    title = f"LeNet-5 (ReLU), digits {pair[0]} vs {pair[1]}"
    if verbose:
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images"
              + (" (cached)" if hit else f", trained in {meta['trained_seconds']:.1f} s"))
    engine = Engine(model, INPUT_SHAPE, dataset=(x_test, y_test),
                    class_names=[str(pair[0]), str(pair[1])], device=device)
    engine.model_card = cache.model_card(title, meta, recipe, hit, path, classes=pair)
    return engine


# -- CIFAR-10 and ResNet-18, as in the paper (for users who have the data) ------------------
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
RESNET_RECIPE = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "seed": 0, "augment_shift": 4}


def read_cifar10(root, download: bool = False):
    """(x_train, y_train, x_test, y_test) from ``root/cifar-10-batches-py`` (the python
    version torchvision downloads): float32 (N, 3, 32, 32) in [0, 1] and int64 labels."""
    folder = Path(root).expanduser() / "cifar-10-batches-py"
    if not folder.is_dir():
        if not download:
            raise FileNotFoundError(f"no CIFAR-10 at {folder}: pass download=True, or a root "
                                    f"that holds cifar-10-batches-py")
        from torchvision.datasets import CIFAR10
        CIFAR10(str(Path(root).expanduser()), download=True)

    def load(names):
        xs, ys = [], []
        for name in names:
            with open(folder / name, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], dtype=np.int64))
        return (torch.from_numpy(np.concatenate(xs)).float().div_(255.0),
                torch.from_numpy(np.concatenate(ys)))

    return (*load([f"data_batch_{i}" for i in range(1, 6)]), *load(["test_batch"]))


def _cifar_pair(classes) -> tuple[int, int]:
    what = f"CIFAR-10 classes ({', '.join(CIFAR_CLASSES)} or 0..9)"
    if len(classes) != 2 or any(isinstance(c, str) and c not in CIFAR_CLASSES for c in classes):
        raise InvalidArgument(f"classes must be two different {what}; got {tuple(classes)}")
    return _pair([CIFAR_CLASSES.index(c) if isinstance(c, str) else int(c) for c in classes], what)


def cifar_two_class(root, classes=("cat", "dog"), download: bool = False, *,
                    epochs: int = RESNET_RECIPE["epochs"], limit: int | None = None,
                    retrain: bool = False, verbose: bool = False, device=None) -> Engine:
    """Engine for torchvision's ResNet-18 trained on two CIFAR-10 classes (the paper's cat vs
    dog, or plane vs dog with ``("airplane", "dog")``), with their test images as its dataset
    and CIFAR's channel mean/std. Trains on ``device`` (default CUDA if available) and caches
    like the digits models; ``limit`` trains on the first ``limit`` images of the pair."""
    import torchvision

    from ..engine.core.model import default_device

    pair = _cifar_pair(classes)
    x_train, y_train, x_test, y_test = read_cifar10(root, download)
    x_train, y_train = _subset(x_train, y_train, pair)
    x_test, y_test = _subset(x_test, y_test, pair)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = {"model": "resnet18-2", "train": {**RESNET_RECIPE, "epochs": int(epochs)},
              "classes": list(pair), "data": {"name": "CIFAR-10", "root": str(root),
                                              "n_train": int(len(y_train))}}
    mean, std = torch.tensor(CIFAR_MEAN).view(3, 1, 1), torch.tensor(CIFAR_STD).view(3, 1, 1)
    # the engine normalises before the model, so the model learns on normalised images
    model, meta, hit, path = cache.trained(
        f"cifar-{CIFAR_CLASSES[pair[0]]}-{CIFAR_CLASSES[pair[1]]}", recipe,
        lambda: _seeded(RESNET_RECIPE["seed"], torchvision.models.resnet18, num_classes=2),
        lambda m: train_classifier(m, (x_train - mean) / std, y_train, **recipe["train"]),
        measure=lambda m: {"test_accuracy": accuracy(m, (x_test - mean) / std, y_test)},
        retrain=retrain, device=torch.device(device) if device is not None else default_device())
    title = f"ResNet-18, CIFAR-10 {CIFAR_CLASSES[pair[0]]} vs {CIFAR_CLASSES[pair[1]]}"
    if verbose:
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images")
    engine = Engine(model, (3, 32, 32), dataset=(x_test, y_test), mean=CIFAR_MEAN, std=CIFAR_STD,
                    class_names=[CIFAR_CLASSES[pair[0]], CIFAR_CLASSES[pair[1]]], device=device)
    engine.model_card = cache.model_card(title, meta, recipe, hit, path, classes=pair)
    return engine


def other_cifar(root, classes=("cat", "dog")):
    """(images, labels 0..9) of the CIFAR-10 test split without the two classes (Table 1)."""
    pair = _cifar_pair(classes)
    _, _, x, y = read_cifar10(root)
    keep = (y != pair[0]) & (y != pair[1])
    return x[keep], y[keep]
