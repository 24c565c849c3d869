"""CIFAR-style ResNets (He et al. 2016, Sec. 4.2): a 3x3 stem at stride 1 and no max-pool, so
the last stage stays spatial (4x4 on a 32x32 or 28x28 input). A small one the package trains
on the digits (offline, seconds), and ResNet-18 on CIFAR-10 (torchvision's dataset class) for
users who have the data (the visualization paper's setting)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..engine import Engine
from ..engine.core.model import default_device
from . import cache
from .digits import CLASS_NAMES, SPLIT_SEED, TEST_FRACTION, digits
from .pretrained import classifier_engine
from .training import Recipe, accuracy, train_classifier

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: ResNet-18's stages: two basic blocks each, 64..512 channels (layer4 is 4x4 at 32x32).
RESNET18 = {"blocks": (2, 2, 2, 2), "widths": (64, 128, 256, 512)}
#: The digits ResNet: one basic block per stage, 8..64 channels (layer4 is 4x4 at 28x28).
DIGITS_RESNET = {"blocks": (1, 1, 1, 1), "widths": (8, 16, 32, 64)}
# Keyword arguments of train_classifier; part of every cache key (editing them retrains).
DIGITS_RECIPE: Recipe = {"epochs": 6, "batch_size": 32, "lr": 2e-3, "seed": 0, "augment_shift": 2}
CIFAR_RECIPE: Recipe = {"epochs": 15, "batch_size": 128, "lr": 1e-3, "seed": 0, "augment_shift": 4}


class CifarResNet(nn.Module):
    """(N, C, H, W) -> (N, n_classes) logits. Named like torchvision's ResNet (``conv1``,
    ``bn1``, ``relu``, ``layer1``..``layerK`` of torchvision ``BasicBlock``s, ``avgpool``,
    ``fc``), so every block reuses its ``relu`` module twice, as in torchvision.

    blocks: basic blocks per stage; widths: channels per stage (the first stage keeps the
    resolution, each later one halves it with a strided 3x3 conv and a 1x1 shortcut).
    """

    def __init__(self, blocks: Sequence[int] = RESNET18["blocks"],
                 widths: Sequence[int] = RESNET18["widths"], in_channels: int = 3,
                 n_classes: int = 10):
        from torchvision.models.resnet import BasicBlock  # imported here: ~180 MB resident

        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        planes = widths[0]
        for i, (n, width) in enumerate(zip(blocks, widths)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or planes != width):
                    down = nn.Sequential(nn.Conv2d(planes, width, 1, stride, bias=False),
                                         nn.BatchNorm2d(width))
                stage.append(BasicBlock(planes, width, stride if j == 0 else 1, down))
                planes = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.n_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(planes, n_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


def fresh_resnet(seed: int, arch: dict, in_channels: int, n_classes: int) -> CifarResNet:
    """A :class:`CifarResNet` initialised from ``seed``; the caller's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CifarResNet(arch["blocks"], arch["widths"], in_channels, n_classes)


def resnet_digits(*, retrain: bool = False, verbose: bool = False, device=None) -> Engine:
    """Engine of a small :class:`CifarResNet` (one basic block per stage, 8..64 channels)
    trained on the scikit-learn digits in the MNIST frame (1, 28, 28) with the zoo's recipe:
    deterministic, on one CPU thread (about 10 s), cached like ``lenet_digits``; its dataset
    is the 360-image test split. ``layer4`` is its last spatial stage (64 x 4 x 4)."""
    data = digits()
    recipe = {"model": "CifarResNet", "arch": {k: list(v) for k, v in DIGITS_RESNET.items()},
              "train": DIGITS_RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    return classifier_engine(
        "resnet-digits", "ResNet (CIFAR-style, 4 basic blocks) on scikit-learn digits", recipe,
        lambda: fresh_resnet(DIGITS_RECIPE["seed"], DIGITS_RESNET, 1, len(CLASS_NAMES)),
        data.train_pair(), data.test_pair(), train_device=torch.device("cpu"), device=device,
        retrain=retrain, verbose=verbose, weights="trained")


# -- CIFAR-10 (torchvision's dataset class) ------------------------------------------------
def read_cifar10(root, download: bool = False):
    """(x_train, y_train, x_test, y_test) of ``torchvision.datasets.CIFAR10(root)``: float32
    (N, 3, 32, 32) in [0, 1] and int64 labels. download: let torchvision fetch it."""
    from torchvision.datasets import CIFAR10

    def tensors(train):
        ds = CIFAR10(os.fspath(root), train=train, download=download)
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return x.float().div_(255.0), torch.as_tensor(ds.targets, dtype=torch.int64)

    return (*tensors(True), *tensors(False))


class _DeterministicCuda:
    """Deterministic cuDNN/cuBLAS kernels for the duration of the block (CPU training is
    deterministic already); the caller's settings are restored after."""

    def __enter__(self):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # read when cuBLAS starts
        b = torch.backends.cudnn
        self.saved = (b.deterministic, b.benchmark, torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
        b.deterministic, b.benchmark = True, False
        torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc):
        b = torch.backends.cudnn
        b.deterministic, b.benchmark, on, warn = self.saved
        torch.use_deterministic_algorithms(on, warn_only=warn)


def cifar_resnet18(name: str, title: str, recipe: dict, train_pair, test_pair, class_names,
                   *, device=None, retrain: bool = False, verbose: bool = False) -> Engine:
    """Engine of a CIFAR-style ResNet-18 trained with ``recipe["train"]`` on ``train_pair``
    (images in [0, 1], normalised with CIFAR's mean/std before the model, as the engine
    does), cached under ``name``; ``test_pair`` is its dataset. Trains on ``device``
    (default: CUDA if available) with deterministic kernels."""
    train = recipe["train"]
    mean, std = torch.tensor(CIFAR_MEAN).view(3, 1, 1), torch.tensor(CIFAR_STD).view(3, 1, 1)
    (x_train, y_train), (x_test, y_test) = train_pair, test_pair
    train_device = torch.device(device) if device is not None else default_device()

    def fit(m):
        with _DeterministicCuda():
            train_classifier(m, (x_train - mean) / std, y_train, **train)

    model, meta, hit, path = cache.trained(
        name, recipe, lambda: fresh_resnet(train["seed"], RESNET18, 3, len(class_names)), fit,
        measure=lambda m: {"test_accuracy": accuracy(m, (x_test - mean) / std, y_test),
                           "train_device": str(train_device)},
        retrain=retrain, verbose=verbose, device=train_device,
        announce=f"{title}: training on {len(y_train)} images ({train_device}) ...")
    if verbose:
        print(f"{title}: test accuracy {meta['test_accuracy']:.2%} on {len(y_test)} images, "
              f"trained in {meta['trained_seconds']:.1f} s")
    engine = Engine(model, (3, 32, 32), dataset=(x_test, y_test), mean=CIFAR_MEAN, std=CIFAR_STD,
                    class_names=list(class_names), device=device)
    engine.model_card = cache.model_card(title, meta, recipe, hit, path, weights="trained")
    return engine


def cifar_recipe(model: str, root, epochs: int, n_train: int, n_test: int, **extra) -> dict:
    """The cache key of a CIFAR-10 ResNet-18: architecture, training, data (absolute root)."""
    return {"model": model, "arch": {k: list(v) for k, v in RESNET18.items()},
            "train": {**CIFAR_RECIPE, "epochs": int(epochs)}, **extra,
            "data": {"name": "torchvision-CIFAR10",
                     "root": os.path.abspath(os.path.expanduser(os.fspath(root))),
                     "n_train": int(n_train), "n_test": int(n_test)}}


def resnet18_cifar10(root, download: bool = False, *, epochs: int = CIFAR_RECIPE["epochs"],
                     limit: int | None = None, retrain: bool = False, verbose: bool = False,
                     device=None) -> Engine:
    """Engine of the CIFAR-style ResNet-18 trained on all ten classes of
    ``torchvision.datasets.CIFAR10(root)`` (the visualization paper's 10-class network; its
    ``layer4`` is 512 x 4 x 4), with the test split as its dataset and CIFAR's mean/std.
    limit: train on the first ``limit`` training images only (quick runs)."""
    x_train, y_train, x_test, y_test = read_cifar10(root, download)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    recipe = cifar_recipe("CifarResNet-18", root, epochs, len(y_train), len(y_test))
    return cifar_resnet18("resnet18-cifar10", "ResNet-18 (CIFAR-style) on CIFAR-10", recipe,
                          (x_train, y_train), (x_test, y_test), CIFAR_CLASSES, device=device,
                          retrain=retrain, verbose=verbose)
