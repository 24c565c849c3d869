"""Ready engines around a LeNet trained once with the zoo's recipe and cached on disk."""
from __future__ import annotations

import os

import torch

from ..engine import Engine
from ..engine.core.model import default_device
from . import cache
from .digits import CLASS_NAMES, SPLIT_SEED, TEST_FRACTION, digits
from .lenet import LeNet
from .training import Recipe, accuracy, train_classifier

# Keyword arguments of train_classifier. Part of every cache key: editing them retrains.
RECIPE: Recipe = {"epochs": 15, "batch_size": 32, "lr": 2e-3, "seed": 0, "augment_shift": 2}
MNIST_EPOCHS = 3
INPUT_SHAPE = (1, 28, 28)


def fresh_lenet(seed: int) -> LeNet:
    """A LeNet initialised from ``seed``, leaving the caller's global RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LeNet(len(CLASS_NAMES))


def lenet_digits(*, retrain: bool = False, verbose: bool = False, device=None) -> Engine:
    """Engine for a LeNet trained on the scikit-learn digits (see ``digits()``), with the
    360-image test split as its dataset; ``engine.model_card`` has the test accuracy.

    The first call trains on the CPU (seconds) and caches the weights (see ``cache``);
    later calls load them. ``retrain=True`` ignores and overwrites the cache.
    """
    data = digits()
    recipe = {"model": "LeNet", "train": RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    return lenet_engine("lenet-digits", "LeNet-5 (ReLU) on scikit-learn digits", recipe,
                        data.x_train, data.y_train, data.x_test, data.y_test,
                        train_device=torch.device("cpu"), device=device, retrain=retrain,
                        verbose=verbose)


def lenet_mnist(root, download: bool = False, *, epochs: int = MNIST_EPOCHS,
                retrain: bool = False, device=None, limit: int | None = None,
                verbose: bool = False) -> Engine:
    """Engine for a LeNet trained on ``torchvision.datasets.MNIST(root)`` with the zoo's
    recipe for ``epochs`` epochs, with the MNIST test split as its dataset.

    download: let torchvision fetch MNIST into ``root`` if it is not there.
    limit: train on the first ``limit`` training images only (quick runs).
    Trains on ``device`` (default: CUDA if available) and caches the weights keyed by the
    recipe, the absolute root and the split sizes.
    """
    from torchvision.datasets import MNIST

    return lenet_torchvision(MNIST, "lenet-mnist", "LeNet-5 (ReLU) on MNIST", "torchvision-MNIST",
                             root, download, epochs=epochs, retrain=retrain, device=device,
                             limit=limit, verbose=verbose)


def lenet_torchvision(dataset, name, title, data_name, root, download, *, epochs, retrain,
                      device, limit, verbose, class_names=CLASS_NAMES) -> Engine:
    """:func:`lenet_engine` on an MNIST-like torchvision ``dataset`` class at ``root``: the
    zoo's recipe for ``epochs`` epochs, cached under ``name`` keyed by ``data_name``, the
    absolute root and the split sizes; trains on ``device`` (default: CUDA if available)."""
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    x_train, y_train = _mnist_tensors(dataset(root, train=True, download=download))
    x_test, y_test = _mnist_tensors(dataset(root, train=False, download=download))
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = {"model": "LeNet", "train": {**RECIPE, "epochs": int(epochs)},
              "data": {"name": data_name, "root": root,
                       "n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0])}}
    train_device = torch.device(device) if device is not None else default_device()
    return lenet_engine(name, title, recipe, x_train, y_train, x_test, y_test,
                        train_device=train_device, device=device, retrain=retrain,
                        verbose=verbose, class_names=class_names)


def _mnist_tensors(ds):
    """torchvision MNIST -> (float32 (N, 1, 28, 28) in [0, 1], int64 (N,))."""
    return ds.data.to(torch.float32).div(255.0).unsqueeze(1), ds.targets.to(torch.int64)


def lenet_engine(name, title, recipe, x_train, y_train, x_test, y_test, *, train_device, device,
                 retrain, verbose, class_names=CLASS_NAMES) -> Engine:
    """Engine of a LeNet trained with ``recipe`` (cached under ``name``) on the training pair,
    with the test pair as its dataset and ``class_names``; ``engine.model_card`` says how."""
    return classifier_engine(name, title, recipe, lambda: fresh_lenet(recipe["train"]["seed"]),
                             (x_train, y_train), (x_test, y_test), train_device=train_device,
                             device=device, retrain=retrain, verbose=verbose,
                             class_names=class_names)


def classifier_engine(name, title, recipe, fresh, train, test, *, device, retrain, verbose,
                      train_device=None, class_names=CLASS_NAMES, **card) -> Engine:
    """Engine of the classifier ``fresh()`` trained by ``train_classifier`` with
    ``recipe["train"]`` on ``train`` = (x, y) (cached under ``name`` with ``recipe`` as key),
    with ``test`` as its dataset and accuracy set; ``train_device``: recorded in the card's
    metadata when given; ``card``: extra model-card entries."""
    (x_train, y_train), (x_test, y_test) = train, test
    extra = {} if train_device is None else {"train_device": str(train_device)}
    where = "" if train_device is None else f" ({train_device})"
    model, meta, hit, path = cache.trained(
        name, recipe, fresh, lambda m: train_classifier(m, x_train, y_train, **recipe["train"]),
        measure=lambda m: {"test_accuracy": accuracy(m, x_test, y_test), **extra},
        retrain=retrain, verbose=verbose, device=train_device,
        announce=f"{title}: training on {len(y_train)} images{where} ...")
    if verbose:
        if hit:   # the file's name only: printed outputs (stored notebooks) name no machine's folders
            where = "the package's shipped weights" if cache.is_shipped(path) else "the cache"
            print(f"{title}: loaded from {where} ({path.name})")
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images, "
              f"trained in {meta['trained_seconds']:.1f} s")
    engine = Engine(model, tuple(x_test.shape[1:]), dataset=(x_test, y_test),
                    class_names=list(class_names), device=device)
    engine.model_card = cache.model_card(title, meta, recipe, hit, path, **card)
    return engine
