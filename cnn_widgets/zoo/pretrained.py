"""Ready engines around a LeNet trained once with the zoo's recipe and cached on disk."""
from __future__ import annotations

import os
import time
import warnings
from typing import Optional

import torch

from ..engine import Engine
from ..engine.session import default_device
from . import cache
from .digits import CLASS_NAMES, SPLIT_SEED, TEST_FRACTION, digits
from .lenet import LeNet
from .training import accuracy, train_classifier

# Keyword arguments of train_classifier. Part of every cache key: editing them retrains.
RECIPE = {"epochs": 15, "batch_size": 32, "lr": 2e-3, "seed": 0, "augment_shift": 2}
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
    return _engine("lenet-digits", "LeNet-5 (ReLU) on scikit-learn digits", recipe,
                   data.x_train, data.y_train, data.x_test, data.y_test,
                   train_device=torch.device("cpu"), device=device, retrain=retrain,
                   verbose=verbose)


def lenet_mnist(root, download: bool = False, *, epochs: int = MNIST_EPOCHS,
                retrain: bool = False, device=None, limit: Optional[int] = None,
                verbose: bool = False) -> Engine:
    """Engine for a LeNet trained on ``torchvision.datasets.MNIST(root)`` with the zoo's
    recipe for ``epochs`` epochs, with the MNIST test split as its dataset.

    download: let torchvision fetch MNIST into ``root`` if it is not there.
    limit: train on the first ``limit`` training images only (quick runs).
    Trains on ``device`` (default: CUDA if available) and caches the weights keyed by the
    recipe, the absolute root and the split sizes.
    """
    from torchvision.datasets import MNIST

    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    train = MNIST(root, train=True, download=download)
    test = MNIST(root, train=False, download=download)
    x_train, y_train = _mnist_tensors(train)
    x_test, y_test = _mnist_tensors(test)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = {"model": "LeNet", "train": {**RECIPE, "epochs": int(epochs)},
              "data": {"name": "torchvision-MNIST", "root": root,
                       "n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0])}}
    train_device = torch.device(device) if device is not None else default_device()
    return _engine("lenet-mnist", "LeNet-5 (ReLU) on MNIST", recipe, x_train, y_train,
                   x_test, y_test, train_device=train_device, device=device,
                   retrain=retrain, verbose=verbose)


def _mnist_tensors(ds):
    """torchvision MNIST -> (float32 (N, 1, 28, 28) in [0, 1], int64 (N,))."""
    return ds.data.to(torch.float32).div(255.0).unsqueeze(1), ds.targets.to(torch.int64)


def _engine(name, title, recipe, x_train, y_train, x_test, y_test, *, train_device, device,
            retrain, verbose) -> Engine:
    hit = None if retrain else cache.load(name, recipe)
    model = fresh_lenet(recipe["train"]["seed"])
    path = cache.cache_path(name, recipe)
    if hit is not None:
        state, meta = hit
        model.load_state_dict(state)
        if verbose:
            print(f"{title}: loaded from {path}")
    else:
        if verbose:
            print(f"{title}: training on {len(y_train)} images ({train_device}) ...", flush=True)
        model.to(train_device)
        start = time.perf_counter()
        train_classifier(model, x_train, y_train, **recipe["train"])
        meta = {"trained_seconds": time.perf_counter() - start,
                "test_accuracy": accuracy(model, x_test, y_test),
                "train_device": str(train_device)}
        model.cpu()
        try:
            cache.save(name, recipe, model.state_dict(), meta)
        except OSError as err:   # a read-only home still gets a working engine
            warnings.warn(f"could not cache the trained weights at {path}: {err}")
    model.eval()
    if verbose:
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images, "
              f"trained in {meta['trained_seconds']:.1f} s")
    engine = Engine(model, INPUT_SHAPE, dataset=(x_test, y_test), class_names=list(CLASS_NAMES),
                    device=device)
    engine.model_card = {"name": title, "test_accuracy": meta["test_accuracy"],
                         "trained_seconds": meta["trained_seconds"], "recipe": recipe,
                         "from_cache": hit is not None, "cache_file": str(path)}
    return engine
