"""Fashion-MNIST for the clustering notebook, when it is on disk (or ``download=True``).

Its ten classes split into clothing and footwear (plus a bag): a fair test of whether the
category hierarchy (Algorithm 1 of the clustering paper) is meaningful. The LeNet recipe and
the weight cache are the zoo's (see ``pretrained``); only the data and the class names change.
"""
from __future__ import annotations

from ..engine import Engine
from .pretrained import MNIST_EPOCHS, lenet_torchvision

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FOOTWEAR = (5, 7, 9)


def lenet_fashion_mnist(root, download: bool = False, *, epochs: int = MNIST_EPOCHS,
                        retrain: bool = False, device=None, limit: int | None = None,
                        verbose: bool = False) -> Engine:
    """Engine for a LeNet trained on ``torchvision.datasets.FashionMNIST(root)`` with the
    zoo's recipe, the test split as its dataset and the clothing names as class names.
    limit: train on the first ``limit`` training images only (quick runs)."""
    from torchvision.datasets import FashionMNIST

    return lenet_torchvision(FashionMNIST, "lenet-fashion-mnist", "LeNet-5 (ReLU) on Fashion-MNIST",
                             "torchvision-FashionMNIST", root, download, epochs=epochs,
                             retrain=retrain, device=device, limit=limit, verbose=verbose,
                             class_names=FASHION_CLASSES)
