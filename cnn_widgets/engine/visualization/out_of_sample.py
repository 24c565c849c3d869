"""Out-of-sample prediction (visualization paper, Sec. 2.5, Table 1): which class a model
gives to images of classes it never saw, and to random noise."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.noise import gaussian_noise
from ..core.types import Images, Labels, Seed


@dataclass(frozen=True)
class OutOfSample:
    """shares: (rows, classes) percent of each row's images predicted as each of the model's
    classes (rows sum to 100); rows: the unseen classes' names then "random noise";
    columns: the model's class names; counts: (rows,) images per row."""
    shares: np.ndarray
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: np.ndarray

    def table(self) -> str:
        """The table as plain text (one line per row)."""
        head = f"{'':>14}" + "".join(f"{c + ' (%)':>10}" for c in self.columns)
        lines = [head] + [f"{r:>14}" + "".join(f"{v:10.1f}" for v in row)
                          for r, row in zip(self.rows, self.shares)]
        return "\n".join(lines)


def out_of_sample(engine: ModelHost, images: Images, labels: Labels,
                  names: Sequence[str] | None = None, n_noise: int = 1000, seed: Seed = 0,
                  control: Control = NO_CONTROL) -> OutOfSample:
    """Percent of ``images`` (N, C, H, W) of each label, and of ``n_noise`` noise images
    (:func:`~..core.noise.gaussian_noise`: the dataset's channel mean and std, the same noise
    as Algorithm 1's noise category for the same ``seed``), predicted as each class.
    names: label -> row name (default: the label as text)."""
    n_noise, seed = check.count("n_noise", n_noise, 0), check.seed(seed)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise InvalidArgument(f"{len(images)} images but {len(labels)} labels")
    kinds = sorted(set(labels.tolist()))
    pred = engine.predict(images, control=control).argmax(1)
    rows, counts = [], []
    for k in kinds:
        rows.append(np.bincount(pred[labels == k], minlength=engine.n_classes))
        counts.append(int((labels == k).sum()))
    if n_noise:
        noise_pred = engine.predict(gaussian_noise(engine, n_noise, seed), control=control).argmax(1)
        rows.append(np.bincount(noise_pred, minlength=engine.n_classes))
        counts.append(int(n_noise))
    totals = np.asarray(counts)
    names = [str(names[k]) if names is not None else str(k) for k in kinds]
    return OutOfSample(shares=100.0 * np.stack(rows) / totals[:, None],
                       rows=tuple(names + (["random noise"] if n_noise else [])),
                       columns=tuple(engine.class_names), counts=totals)
