"""A two-class digits model, the offline analogue of the visualization paper's cat-vs-dog
ResNet-18: a LeNet trained (deterministically, cached) on two of the digits; and the paper's
own two-class CIFAR-10 ResNet-18 (CIFAR-style, see ``resnet``) for users who have the data."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..engine import Engine
from ..engine.core.errors import InvalidArgument
from . import cache
from .digits import SPLIT_SEED, TEST_FRACTION, digits
from .lenet import LeNet
from .pretrained import INPUT_SHAPE, RECIPE
from .resnet import CIFAR_CLASSES, CIFAR_RECIPE, cifar_recipe, cifar_resnet18, read_cifar10
from .training import Recipe, accuracy, train_classifier

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


def two_digits(classes: Sequence[int] = DEFAULT_CLASSES, *, seed: int = 0, retrain: bool = False,
               verbose: bool = False, device=None) -> Engine:
    """Engine for a LeNet trained on two digits (class 0 = ``classes[0]``, 1 = ``classes[1]``)
    with their test images as its dataset; ``model_card`` has the test accuracy. Trained with
    the zoo's recipe on the CPU on first use (about a second) and cached like
    :func:`~cnn_widgets.zoo.lenet_digits`; ``seed``: the recipe's seed (initial weights,
    shuffling, shifts), 0 being the default model."""
    pair = _pair(classes)
    d = digits()
    x_train, y_train = _subset(d.x_train, d.y_train, pair)
    x_test, y_test = _subset(d.x_test, d.y_test, pair)
    train: Recipe = {**RECIPE, "seed": int(seed)}
    recipe = {"model": "LeNet-2", "train": train, "classes": list(pair),
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    model, meta, hit, path = cache.trained(
        f"two-digits-{pair[0]}{pair[1]}", recipe, lambda: _seeded(train["seed"], LeNet, 2),
        lambda m: train_classifier(m, x_train, y_train, **train),
        measure=lambda m: {"test_accuracy": accuracy(m, x_test, y_test)}, retrain=retrain)
    title = f"LeNet-5 (ReLU), digits {pair[0]} vs {pair[1]}" + (f", seed {seed}" if seed else "")
    if verbose:
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images"
              + (" (cached)" if hit else f", trained in {meta['trained_seconds']:.1f} s"))
    engine = Engine(model, INPUT_SHAPE, dataset=(x_test, y_test),
                    class_names=[str(pair[0]), str(pair[1])], device=device)
    engine.model_card = cache.model_card(title, meta, recipe, hit, path, classes=pair)
    return engine


# -- CIFAR-10 and the CIFAR-style ResNet-18, as in the paper (for users who have the data) ----
def _cifar_pair(classes) -> tuple[int, int]:
    what = f"CIFAR-10 classes ({', '.join(CIFAR_CLASSES)} or 0..9)"
    if len(classes) != 2 or any(isinstance(c, str) and c not in CIFAR_CLASSES for c in classes):
        raise InvalidArgument(f"classes must be two different {what}; got {tuple(classes)}")
    return _pair([CIFAR_CLASSES.index(c) if isinstance(c, str) else int(c) for c in classes], what)


def cifar_two_class(root, classes=("cat", "dog"), download: bool = False, *,
                    epochs: int = CIFAR_RECIPE["epochs"], limit: int | None = None,
                    retrain: bool = False, verbose: bool = False, device=None) -> Engine:
    """Engine for the CIFAR-style ResNet-18 (3x3 stem, no max-pool: ``layer4`` is 512 x 4 x 4,
    so Grad-CAM has positions) trained on two classes of ``torchvision.datasets.CIFAR10(root)``
    (the paper's cat vs dog, or plane vs dog with ``("airplane", "dog")``), with their test
    images as its dataset and CIFAR's channel mean/std. Trains on ``device`` (default CUDA if
    available) and caches like the digits models; ``limit`` trains on the first ``limit``
    images of the pair."""
    pair = _cifar_pair(classes)
    x_train, y_train, x_test, y_test = read_cifar10(root, download)
    x_train, y_train = _subset(x_train, y_train, pair)
    x_test, y_test = _subset(x_test, y_test, pair)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = cifar_recipe("CifarResNet-18-2", root, epochs, len(y_train), len(y_test),
                          classes=list(pair))
    names = [CIFAR_CLASSES[pair[0]], CIFAR_CLASSES[pair[1]]]
    engine = cifar_resnet18(f"cifar-{names[0]}-{names[1]}", f"ResNet-18 (CIFAR-style), "
                            f"CIFAR-10 {names[0]} vs {names[1]}", recipe, (x_train, y_train),
                            (x_test, y_test), names, device=device, retrain=retrain,
                            verbose=verbose)
    engine.model_card["classes"] = pair
    return engine


def other_cifar(root, classes=("cat", "dog")):
    """(images, labels 0..9) of the CIFAR-10 test split without the two classes (Table 1)."""
    pair = _cifar_pair(classes)
    _, _, x, y = read_cifar10(root)
    keep = (y != pair[0]) & (y != pair[1])
    return x[keep], y[keep]
