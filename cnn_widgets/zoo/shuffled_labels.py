"""The data-randomisation test's model (Adebayo et al., Sanity Checks for Saliency Maps):
the digits LeNet trained on the training digits with their labels shuffled, so that it can
only memorise them.

The recipe is :func:`~.pretrained.lenet_digits`' (Adam, learning rate, batch size, seed) with
two changes the memorisation needs: 200 epochs instead of 15 (the authors' code likewise
raises its epochs for random labels, from 50 to 100), and no random shifts (with 2-pixel
shifts the network stays at chance on its own training set). The permutation of the labels
is drawn from a generator seeded with ``label_seed``. Shipped in the package (training takes
minutes on a busy 2-core CPU), cached like the other recipes.
"""
from __future__ import annotations

import torch

from ..engine import Engine
from .digits import SPLIT_SEED, TEST_FRACTION, digits
from .pretrained import RECIPE, lenet_engine
from .training import Recipe, accuracy

SHUFFLED_RECIPE: Recipe = {**RECIPE, "epochs": 200, "augment_shift": 0}


def shuffled(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``labels`` (N,) in an order drawn from a generator seeded with ``seed``."""
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed)))]


def lenet_digits_shuffled(*, label_seed: int = 0, retrain: bool = False, verbose: bool = False,
                          device=None) -> Engine:
    """Engine of a LeNet trained on the scikit-learn training digits with shuffled labels,
    with the (truly labelled) test split as its dataset. ``engine.model_card`` has its
    accuracy on the shuffled training labels (memorisation, ``train_accuracy``) and on the
    test split (chance, ``test_accuracy``)."""
    data = digits()
    y = shuffled(data.y_train, label_seed)
    recipe = {"model": "LeNet", "train": SHUFFLED_RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION, "labels": "shuffled",
                       "label_seed": int(label_seed)}}
    engine = lenet_engine("lenet-digits-shuffled",
                          "LeNet-5 (ReLU) on scikit-learn digits with shuffled labels", recipe,
                          data.x_train, y, data.x_test, data.y_test,
                          train_device=torch.device("cpu"), device=device, retrain=retrain,
                          verbose=verbose)
    engine.model_card["train_accuracy"] = accuracy(engine.model, data.x_train, y)
    return engine
