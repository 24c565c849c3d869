"""VGG models for the probing paper: torchvision's VGG-16 on the bundled photographs, and a
small VGG-style net the package trains on the digits (the fast offline default)."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..engine import Engine
from .digits import CLASS_NAMES, SPLIT_SEED, TEST_FRACTION, digits
from .photos import IMAGENET_MEAN, IMAGENET_STD, photos
from .pretrained import classifier_engine
from .training import Recipe

VGG16_INIT_SEED = 0
#: VGG-16's ``features.28`` is the paper's layer 13 (the last convolution); ``features.29`` its ReLU.
PAPER_LAYER_13 = "features.28"
#: The paper's layers 1..13 (the convolutions) as VGG-16 module names.
PAPER_LAYERS = {i + 1: f"features.{n}" for i, n in
                enumerate([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28])}
DIGITS_RECIPE: Recipe = {"epochs": 10, "batch_size": 32, "lr": 3e-3, "seed": 0, "augment_shift": 2}
#: The file name of torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (tests check it): asking
#: whether the weights are there need not import torchvision (~180 MB resident).
VGG16_FILE = "vgg16-397923af.pth"


def vgg16_checkpoint() -> Path:
    """Where torchvision keeps the ImageNet VGG-16 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def vgg16(pretrained: bool | None = None, *, size: int = 224, device=None) -> Engine:
    """Engine of torchvision's VGG-16 on ``photos(size)`` with ImageNet mean/std.

    pretrained: None (default) uses the ImageNet weights if they are already in the torch
    cache (:func:`vgg16_checkpoint`) and a seeded random init otherwise (the paper's own
    random-parameter experiment); True loads them, downloading if needed; False is always
    the random init. ``engine.model_card`` says which weights are in use. The photos have no
    ImageNet labels: the dataset's labels are -1. Batches of 2 images: on a CPU as fast as 8,
    and a pass over the photos at 224 px keeps ~60 MB of activations instead of ~300 MB.
    """
    import torchvision
    from torchvision.models import VGG16_Weights

    path = vgg16_checkpoint()
    use = path.is_file() if pretrained is None else bool(pretrained)
    if use:    # one copy of the 138M weights: no init to overwrite, the file mapped, not read
        with torch.device("meta"):
            model = torchvision.models.vgg16(weights=None)
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            state = VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        model.load_state_dict(state, assign=True)
        card = {"name": "VGG-16, ImageNet weights (torchvision IMAGENET1K_V1)",
                "weights": "pretrained", "checkpoint": str(path)}
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(VGG16_INIT_SEED)
            model = torchvision.models.vgg16(weights=None)
        card = {"name": f"VGG-16, random init (torchvision's init, seed {VGG16_INIT_SEED})",
                "weights": "random",
                "note": "no ImageNet weights in the torch cache; vgg16(pretrained=True) downloads "
                        "them"}
    model.eval()
    images, names = photos(size)
    labels = torch.full((len(names),), -1, dtype=torch.int64)
    engine = Engine(model, (3, size, size), dataset=(images, labels),
                    class_names=list(VGG16_Weights.IMAGENET1K_V1.meta["categories"]),
                    mean=IMAGENET_MEAN, std=IMAGENET_STD, device=device, batch_size=2)
    engine.model_card = {**card, "images": list(names), "paper_layer_13": PAPER_LAYER_13}
    return engine


class DigitsVGG(nn.Module):
    """A VGG in miniature for (N, 1, 28, 28) digits, named like torchvision's VGG:
    ``features`` (3x3 convs with padding 1, ReLU, 2x2 max-pools: 28 -> 14 -> 7 -> 3) and
    ``classifier`` (two linear layers)."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("0", nn.Conv2d(1, 8, 3, padding=1)), ("1", nn.ReLU()),
            ("2", nn.Conv2d(8, 8, 3, padding=1)), ("3", nn.ReLU()),
            ("4", nn.MaxPool2d(2)),
            ("5", nn.Conv2d(8, 16, 3, padding=1)), ("6", nn.ReLU()),
            ("7", nn.Conv2d(16, 16, 3, padding=1)), ("8", nn.ReLU()),
            ("9", nn.MaxPool2d(2)),
            ("10", nn.Conv2d(16, 32, 3, padding=1)), ("11", nn.ReLU()),
            ("12", nn.MaxPool2d(2)),
        ]))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(OrderedDict([
            ("0", nn.Linear(32 * 3 * 3, 64)), ("1", nn.ReLU()), ("2", nn.Linear(64, n_classes)),
        ]))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def fresh_digits_vgg(seed: int) -> DigitsVGG:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsVGG(len(CLASS_NAMES))


def vgg_digits(*, retrain: bool = False, verbose: bool = False, device=None) -> Engine:
    """Engine of :class:`DigitsVGG` trained on the scikit-learn digits with the zoo's recipe
    (deterministic, seconds on the CPU, cached like ``lenet_digits``), with the 360-image test
    split as its dataset. ``features.10`` is its last convolution (7x7 positions)."""
    data = digits()
    recipe = {"model": "DigitsVGG", "train": DIGITS_RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    return classifier_engine("vgg-digits", "VGG-style net (5 convs) on scikit-learn digits",
                             recipe, lambda: fresh_digits_vgg(DIGITS_RECIPE["seed"]),
                             data.train_pair(), data.test_pair(), device=device,
                             retrain=retrain, verbose=verbose, weights="trained")
