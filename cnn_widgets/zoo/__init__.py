"""Offline default data and models: digits shaped like MNIST and a LeNet trained on them.

``lenet_digits()`` gives a ready ``Engine`` in seconds with no download; ``lenet_mnist()``
does the same on torchvision's MNIST for users who have it.
"""
from .digits import DigitsData, digits
from .lenet import LeNet
from .pretrained import lenet_digits, lenet_mnist
from .training import accuracy, train_classifier

__all__ = ["digits", "DigitsData", "LeNet", "lenet_digits", "lenet_mnist", "train_classifier",
           "accuracy"]
