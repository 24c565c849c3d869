"""Pixel fooling (visualization paper, Sec. 2.1, Fig. 2): raise another class's logit with a
small learning rate, track the prediction, and compare the Grad-CAMs of start and end. With
``until_flip`` each image ends at the first recorded step it is predicted as the target: the
smallest change along its path that flips it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.types import Seed, Start
from .gradcam import gradcam
from .maximize import iterate_maximize, start_images
from .objectives import logit


@dataclass(frozen=True)
class Fooling:
    """start, end: (N, C, H, W); diff: (N, H, W) = sqrt(Σ_c (x_f − x_s)²);
    probabilities: (T, N, classes) at the recorded steps ``steps`` (T,), the last one the end;
    classes: (source, target); cam_start, cam_end: (N, 2, H, W) Grad-CAM of the start and end
    images for (source, target); cam_layer: the layer Grad-CAM read; flip_step: (N,) the first
    recorded step at which the image is predicted as the target (-1: never)."""
    start: np.ndarray
    end: np.ndarray
    diff: np.ndarray
    steps: np.ndarray
    probabilities: np.ndarray
    classes: tuple[int, int]
    cam_start: np.ndarray
    cam_end: np.ndarray
    cam_layer: str
    flip_step: np.ndarray

    @property
    def predictions_start(self) -> np.ndarray:
        return self.probabilities[0].argmax(1)

    @property
    def predictions_end(self) -> np.ndarray:
        return self.probabilities[-1].argmax(1)

    @property
    def flipped(self) -> np.ndarray:
        """(N,) the end image is predicted as the target class."""
        return self.predictions_end == self.classes[1]


@needs_grad
def fool(engine: ModelHost, target: int, *, start: Start = "dataset",
         indices: Sequence[int] | None = None, n_starts: int = 4,
         source: int | None = None, steps: int = 100, lr: float = 1e-2,
         optimizer: str = "sgd", every: int = 1, cam_layer: str | None = None, seed: Seed = 0,
         until_flip: bool = False, control: Control = NO_CONTROL) -> Fooling:
    """Raise the logit of class ``target`` on the start images (``start``/``indices``/
    ``n_starts`` as in :func:`maximize.start_images`) with plain SGD at a small ``lr`` for
    ``steps`` steps, recording the class probabilities every ``every`` steps.
    source: the class the images come from (default: the most common start prediction).
    With ``start="dataset"`` and no ``indices``, the first ``n_starts`` dataset images labelled
    ``source`` (without a source: the first not labelled ``target``).
    until_flip: each image's end is its image at ``flip_step`` (the last one if it never
    flips), and the ascent stops once every image has flipped.
    """
    target = check.class_index(engine, "target", target)
    n_starts, steps, every = (check.count(n, v) for n, v in
                              (("n_starts", n_starts), ("steps", steps), ("every", every)))
    if source is not None and not (0 <= int(source) < engine.n_classes and int(source) != target):
        raise InvalidArgument(f"source class {source} must differ from the target {target} and lie "
                         f"in 0 <= source < {engine.n_classes}")
    if isinstance(start, str) and start == "dataset" and indices is None and engine.dataset is not None:
        labels = engine.dataset.labels.numpy()
        wanted = f"class {source}" if source is not None else f"a class other than {target}"
        rows = np.flatnonzero(labels == int(source) if source is not None else labels != target)
        if len(rows) == 0:
            raise InvalidArgument(f"no dataset image is labelled {wanted}")
        indices = rows[:int(n_starts)].tolist()
    x0 = start_images(engine, start, n_starts, seed, indices)
    recorded, per_step, end, at_flip = [], [], None, None
    flip_step = np.full(len(x0), -1)
    for s in iterate_maximize(engine, logit(target), steps=steps, start=x0, lr=lr,
                              optimizer=optimizer, every=every, control=control):
        recorded.append(s.step)
        per_step.append(s.probabilities)
        end = s.images
        new = (flip_step < 0) & (s.probabilities.argmax(1) == target)
        flip_step[new] = s.step
        if until_flip:
            at_flip = end.copy() if at_flip is None else np.where(new[:, None, None, None], end, at_flip)
            if (flip_step >= 0).all():
                break
    assert end is not None                  # steps >= 1: the final step at least
    if until_flip:
        assert at_flip is not None          # set with end
        end = np.where((flip_step >= 0)[:, None, None, None], at_flip, end)
    probs = np.stack(per_step)
    if source is None:
        source = int(np.bincount(probs[0].argmax(1), minlength=engine.n_classes).argmax())
        if source == target:   # the starts are already the target: compare with the runner-up
            source = int(np.argsort(-probs[0].mean(0))[1])
    start = x0.cpu().numpy()
    cams = [gradcam(engine, img, classes=(source, target), layer=cam_layer) for img in (start, end)]
    return Fooling(start=start, end=end, diff=np.sqrt(((end - start) ** 2).sum(1)),
                   steps=np.asarray(recorded), probabilities=probs, classes=(int(source), target),
                   cam_start=cams[0].maps, cam_end=cams[1].maps, cam_layer=cams[0].layer,
                   flip_step=flip_step)
