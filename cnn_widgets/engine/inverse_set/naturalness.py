"""Whether samples stay natural (Sec. 3.1: "x is a valid input ... a natural looking image";
Sec. 4.1 blames bad samples on extreme code values): three numbers for every set of samples.

- the codes' median norm against the N(0, I) prior's (||c|| follows a chi distribution with
  d degrees of freedom: median about sqrt(d), 95 % of the mass in a narrow shell);
- the share of samples an independent classifier (the *judge*, another network) calls the
  class of the units — only for units that are class logits, else not applicable (None);
- the share of samples inside every range, recomputed with the engine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InvalidArgument, InvalidType
from ..core.model import ModelHost
from .problem import in_ranges, prior_norm_quantile


@dataclass(frozen=True)
class Naturalness:
    """code_norm: median ||c|| of the samples' codes; prior_norm: the prior's median ||c||;
    prior_interval: the prior's central 95 % of ||c|| (lo, hi); typical: share of codes with a
    norm inside that interval (all four None in pixel mode); judged: share of samples the
    judge calls one of ``classes`` (None: no judge, or no unit is a class logit); classes: the
    engine's class indices of the units that are logits; judge: the judge's model class name;
    in_range: share of samples with every unit inside its range (None for no samples)."""
    code_norm: float | None
    prior_norm: float | None
    prior_interval: tuple[float, float] | None
    typical: float | None
    judged: float | None
    classes: tuple[int, ...]
    judge: str | None
    in_range: float | None


def check_judge(engine, judge) -> ModelHost | None:
    """None, or an engine (another network) on the same inputs as ``engine``."""
    if judge is None:
        return None
    if not isinstance(judge, ModelHost):
        raise InvalidType(f"judge must be an Engine of another network on the same inputs "
                          f"(e.g. zoo.resnet_digits()); got {type(judge).__name__}")
    if tuple(judge.input_shape) != tuple(engine.input_shape):
        raise InvalidArgument(f"the judge must take the engine's inputs {tuple(engine.input_shape)}"
                              f"; it takes {tuple(judge.input_shape)}")
    return judge


def unit_classes(engine, units) -> tuple[int, ...]:
    """The class indices of the units that are logits: units of the model's last layer when it
    has one value per class. Hidden units have no class."""
    last = engine.layer_names[-1]
    if tuple(engine.layer(last).output_shape) != (engine.n_classes,):
        return ()
    return tuple(sorted({int(u[0]) for name, u in units if name == last}))


def judged_share(engine, judge: ModelHost, images: np.ndarray, classes) -> float:
    """Share of ``images`` whose judge's top class is one of the engine's ``classes``, matched
    by class name (a class the judge does not know counts as never called)."""
    names = {engine.class_names[c] for c in classes}
    wanted = [i for i, name in enumerate(judge.class_names) if name in names]
    top = judge.predict(images).argmax(1)
    return float(np.isin(top, wanted).mean())


def prior_norm(d: int) -> tuple[float, tuple[float, float]]:
    """Median and central 95 % interval of ||c|| for c ~ N(0, I_d) (chi distribution)."""
    median, lo, hi = (float(v) for v in prior_norm_quantile(d, [0.5, 0.025, 0.975]))
    return median, (lo, hi)


def naturalness(engine, images: np.ndarray, codes: np.ndarray | None, units, ranges,
                judge: ModelHost | None, activations: np.ndarray | None = None) -> Naturalness:
    """The three numbers for samples ``images`` (N, C, H, W) with ``codes`` (N, d) (None in
    pixel mode) of ``units`` (P (layer, unit)) and ``ranges`` (P, 2); ``activations`` (N, P):
    the units on ``images`` when a fresh pass has given them already (else computed here)."""
    norm = median = interval = typical = None
    if codes is not None:
        c = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
        median, interval = prior_norm(c.shape[1])
        if len(c):
            r = np.linalg.norm(c, axis=1)
            norm = float(np.median(r))
            typical = float(((r >= interval[0]) & (r <= interval[1])).mean())
    classes = unit_classes(engine, units)
    judged = in_range = None
    if len(images):
        if judge is not None and classes:
            judged = judged_share(engine, judge, images, classes)
        got = activations
        if got is None:
            layers = sorted({name for name, _ in units})
            acts = engine.activations(images, layers)
            got = np.stack([acts[name][(slice(None),) + tuple(u)] for name, u in units], axis=1)
        in_range = float(in_ranges(got.astype(np.float64), np.asarray(ranges)).mean())
    return Naturalness(norm, median, interval, typical, judged, classes,
                       type(judge.model).__name__ if judge is not None else None, in_range)
