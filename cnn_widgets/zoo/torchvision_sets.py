"""Fashion-MNIST for the clustering notebook, when it is on disk (or ``download=True``).

Its ten classes split into clothing and footwear (plus a bag): a fair test of whether the
category hierarchy (Algorithm 1 of the clustering paper) is meaningful. The LeNet recipe and
the weight cache are the zoo's (see ``pretrained``); only the data and the class names change.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..engine import Engine
from ..engine.session import default_device
from .pretrained import MNIST_EPOCHS, RECIPE, _engine, _mnist_tensors

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FOOTWEAR = (5, 7, 9)


def lenet_fashion_mnist(root, download: bool = False, *, epochs: int = MNIST_EPOCHS,
                        retrain: bool = False, device=None, limit: Optional[int] = None,
                        verbose: bool = False) -> Engine:
    """Engine for a LeNet trained on ``torchvision.datasets.FashionMNIST(root)`` with the
    zoo's recipe, the test split as its dataset and the clothing names as class names.
    limit: train on the first ``limit`` training images only (quick runs)."""
    from torchvision.datasets import FashionMNIST

    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    x_train, y_train = _mnist_tensors(FashionMNIST(root, train=True, download=download))
    x_test, y_test = _mnist_tensors(FashionMNIST(root, train=False, download=download))
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = {"model": "LeNet", "train": {**RECIPE, "epochs": int(epochs)},
              "data": {"name": "torchvision-FashionMNIST", "root": root,
                       "n_train": int(x_train.shape[0]), "n_test": int(x_test.shape[0])}}
    train_device = torch.device(device) if device is not None else default_device()
    engine = _engine("lenet-fashion-mnist", "LeNet-5 (ReLU) on Fashion-MNIST", recipe, x_train,
                     y_train, x_test, y_test, train_device=train_device, device=device,
                     retrain=retrain, verbose=verbose)
    engine.class_names = list(FASHION_CLASSES)
    return engine
