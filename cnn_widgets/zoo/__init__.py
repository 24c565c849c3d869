"""Offline default data and models: digits shaped like MNIST and a LeNet trained on them.

``lenet_digits()`` gives a ready ``Engine`` in seconds with no download; ``lenet_mnist()``
does the same on torchvision's MNIST for users who have it.
"""
from .digits import DigitsData, digits
from .lenet import LeNet
from .photos import IMAGENET_MEAN, IMAGENET_STD, photos
from .pretrained import lenet_digits, lenet_mnist
from .training import accuracy, train_classifier

_LAZY = {  # name -> module that defines it, imported on first use
    "vgg16": "cnn_widgets.zoo.vgg",            # torchvision VGG-16 on the photos (probing paper)
    "vgg_digits": "cnn_widgets.zoo.vgg",       # small VGG-style net trained on the digits
    "two_digits": "cnn_widgets.zoo.two_class", # two-class digits model (cat-vs-dog analogue)
    "digits_generator": "cnn_widgets.zoo.generator",  # generator G for the inverse set
    "resnet_digits": "cnn_widgets.zoo.resnet", # CIFAR-style ResNet trained on the digits
    "resnet18_cifar10": "cnn_widgets.zoo.resnet",  # CIFAR-style ResNet-18 on CIFAR-10
    "lenet_digits_shuffled": "cnn_widgets.zoo.shuffled_labels",  # sanity checks' random labels
}
__all__ = ["digits", "DigitsData", "LeNet", "lenet_digits", "lenet_mnist", "train_classifier",
           "accuracy", "photos", "IMAGENET_MEAN", "IMAGENET_STD", *_LAZY]


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnn_widgets.zoo' has no attribute {name!r}")
