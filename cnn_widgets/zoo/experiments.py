"""Two small experiments of the visualization paper, at digits scale (deterministic, seconds):

- Sec. 2.3: train a classifier on "super" images (each class's logit maximised from noise)
  instead of the training set, and test it on real digits (the paper: "The result is not
  good"); beside it the same classifier trained on as many real digits, for scale.
- Sec. 2.5: "we retrain the network with different random initial weight" to ask whether
  noise -> one class is a property of the network or of the dataset: the digits LeNet with its
  recipe and another seed (cached like the default).

And the plainest control of any claim: :func:`randomly_initialised`, the same network with
fresh random weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..engine import Engine, InvalidArgument
from ..engine.sanity.randomize import layer_seed, randomizable, reinitialize, working_copy
from ..engine.visualization.objectives import logit
from .digits import SPLIT_SEED, TEST_FRACTION, digits
from .pretrained import RECIPE, fresh_lenet, lenet_digits, lenet_engine
from .training import Recipe, accuracy, train_classifier

# Training of the student classifiers: the LeNet recipe, more epochs for the tiny sets.
STUDENT: Recipe = {**RECIPE, "epochs": 40}


@dataclass(frozen=True)
class SuperImageTraining:
    """images (n, 1, 28, 28) super-images, labels (n,); teacher_accuracy: the engine's model
    on the real test digits; super_accuracy: the engine's model on the super-images (they
    should all be "their" class); accuracy: the student trained on the super-images, on the
    real test digits; real_accuracy: the same student recipe trained on as many real training
    digits per class; seconds: wall time of the whole run."""
    images: np.ndarray
    labels: np.ndarray
    teacher_accuracy: float
    super_accuracy: float
    accuracy: float
    real_accuracy: float
    seconds: float


def super_images(engine: Engine, per_class: int = 10, *, steps: int = 100, lr: float = 0.1,
                 optimizer: str = "sgd", seed: int = 0,
                 clamp: tuple[float, float] | None = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(images (classes * per_class, C, H, W), labels): each class's logit maximised from
    ``per_class`` noise starts (plain gradient ascent by default, as the paper)."""
    imgs, labels = [], []
    for k in range(engine.n_classes):
        r = engine.maximize(logit(k), steps=steps, n_starts=per_class, lr=lr,
                            optimizer=optimizer, seed=seed + k, predict=False, clamp=clamp)
        imgs.append(r.images)
        labels += [k] * per_class
    return np.concatenate(imgs), np.asarray(labels, dtype=np.int64)


def super_image_training(engine: Engine | None = None, per_class: int = 10, *, steps: int = 100,
                         lr: float = 0.1, optimizer: str = "sgd", seed: int = 0,
                         train_seed: int = 0) -> SuperImageTraining:
    """Sec. 2.3 on the digits LeNet (default :func:`lenet_digits`): super-images as the
    training set of a fresh LeNet (``train_seed``), tested on the engine's real test digits."""
    t0 = time.perf_counter()
    engine = lenet_digits() if engine is None else engine
    if engine.dataset is None:
        raise InvalidArgument("super_image_training tests the students on the engine's dataset; "
                              "this engine has none: make it with dataset=(images, labels)")
    x_test, y_test = engine.dataset.images, engine.dataset.labels
    images, labels = super_images(engine, per_class, steps=steps, lr=lr, optimizer=optimizer,
                                  seed=seed)
    teacher = float((engine.predict(x_test).argmax(1) == y_test.numpy()).mean())
    on_super = float((engine.predict(images).argmax(1) == labels).mean())
    student = _student(torch.as_tensor(images), torch.as_tensor(labels), train_seed)
    data = digits()
    pick = np.concatenate([np.flatnonzero(data.y_train.numpy() == k)[:per_class]
                           for k in range(engine.n_classes)])
    real = _student(data.x_train[pick], data.y_train[pick], train_seed)
    return SuperImageTraining(images=images, labels=labels, teacher_accuracy=teacher,
                              super_accuracy=on_super,
                              accuracy=accuracy(student, x_test, y_test),
                              real_accuracy=accuracy(real, x_test, y_test),
                              seconds=time.perf_counter() - t0)


def _student(x: torch.Tensor, y: torch.Tensor, seed: int):
    model = fresh_lenet(seed)
    recipe: Recipe = {**STUDENT, "seed": seed}
    train_classifier(model, x.float(), y.long(), **recipe)
    return model


def lenet_digits_seed(seed: int, *, retrain: bool = False, verbose: bool = False,
                      device=None) -> Engine:
    """The digits LeNet trained by :func:`lenet_digits`' recipe with another ``seed`` (initial
    weights, shuffling, shifts); seed 0 is the default model. Cached per seed."""
    data = digits()
    recipe = {"model": "LeNet", "train": {**RECIPE, "seed": int(seed)},
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}
    return lenet_engine("lenet-digits", f"LeNet-5 (ReLU) on scikit-learn digits, seed {seed}",
                        recipe, data.x_train, data.y_train, data.x_test, data.y_test,
                        train_device=torch.device("cpu"), device=device, retrain=retrain,
                        verbose=verbose)


def randomly_initialised(engine: Engine, seed: int = 0) -> Engine:
    """A control: an Engine on a copy of ``engine``'s model with every layer that has its own
    parameters re-initialised by its ``reset_parameters()`` (batch-norm statistics included),
    the same weights as the sanity check's fully randomised model for ``seed``
    (:mod:`~..engine.sanity.randomize`); same input shape, normalisation, dataset and class
    names. The engine's model is not touched."""
    work = working_copy(engine)
    modules = dict(work.model.named_modules())
    for i, name in enumerate(randomizable(engine)):
        reinitialize(modules[name], layer_seed(int(seed), i))
    data = None if engine.dataset is None else (engine.dataset.images, engine.dataset.labels)
    out = Engine(work.model, engine.input_shape, dataset=data, class_names=engine.class_names,
                 mean=engine.mean.flatten().cpu(), std=engine.std.flatten().cpu(),
                 device=engine.device, batch_size=engine.batch_size, eval_mode=engine.eval_mode)
    out.model_card = {"name": f"randomly initialised (seed {seed}) copy of "
                              f"{engine.model_card.get('name', 'the model')}"}
    return out


class CodeEncoder(torch.nn.Module):
    """E_code: images (N, 1, 28, 28) -> codes (N, code_dim) of the digits generator G (the VAE
    encoder's architecture, mean head only), for the inverse set's ``start=code_encoder``."""

    def __init__(self, code_dim: int):
        super().__init__()
        from .generator import DigitsEncoder
        self.net = DigitsEncoder(code_dim)

    def forward(self, x):
        return self.net(x)[0]


# Keyword arguments of _fit_code_encoder; part of the cache key.
CODE_ENCODER_RECIPE = {"epochs": 8, "batch_size": 64, "lr": 3e-3, "seed": 0, "prior": 1.0}


def digits_code_encoder(*, retrain: bool = False, verbose: bool = False) -> CodeEncoder:
    """An encoder into the codes of :func:`~.generator.digits_generator`, fitted with G frozen
    so that G(E(x)) reconstructs the training digits (binary cross-entropy plus
    ``prior`` * ||E(x)||^2 / 2, the N(0, I) prior), deterministic and cached. The inverse-set
    paper's G takes CaffeNet fc6 codes, so its E(random images) are G's codes; this gives the
    same for the digits G (the VAE's own encoder is not kept)."""
    from . import cache
    from .generator import RECIPE as G_RECIPE
    from .generator import digits_generator
    G = digits_generator()
    recipe = {"model": "DigitsCodeEncoder", "train": CODE_ENCODER_RECIPE, "generator": G_RECIPE,
              "data": {"name": "sklearn-digits-28x28", "split_seed": SPLIT_SEED,
                       "test_fraction": TEST_FRACTION}}

    def build():
        with torch.random.fork_rng(devices=[]):
            return CodeEncoder(G.code_dim)

    enc, _, _, _ = cache.trained("digits-code-encoder", recipe, build,
                                 lambda e: _fit_code_encoder(e, G, digits().x_train,
                                                             **CODE_ENCODER_RECIPE),
                                 retrain=retrain, verbose=verbose, what="the code encoder")
    return enc


def _fit_code_encoder(enc, G, x, *, epochs, batch_size, lr, seed, prior) -> dict:
    import torch.nn.functional as F

    from .training import deterministic
    with deterministic(seed):
        for p in G.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(enc.parameters(), lr=lr)
        enc.train()
        for _ in range(epochs):
            order, total = torch.randperm(len(x), generator=gen), 0.0
            for s in range(0, len(x), batch_size):
                xb = x[order[s:s + batch_size]]
                c = enc(xb)
                loss = (F.binary_cross_entropy(G(c), xb, reduction="sum")
                        + 0.5 * prior * (c ** 2).sum()) / len(xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(xb)
        for p in G.parameters():
            p.requires_grad_(True)
    enc.eval()
    return {"final_loss": total / len(x)}
