"""The paper's two sanity checks: model randomisation, cascading from the logits
down or one layer at a time, and data randomisation against a model trained on shuffled labels.

Each compares every method's map of the original model with the map after the change, per
image, with the three measures of :mod:`.similarity`. The class explained at an image is the
predicted class of the model that makes the map (as the authors' code does), or the given
``classes`` for every model.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InputShapeError, InvalidArgument, InvalidType, NoSuitableLayer
from ..core.model import ModelHost
from ..core.types import Images, Layers, Methods, Seed
from .maps import explain, method_list, n_groups, predicted
from .randomize import layer_seed, randomizable, reinitialize, sibling, working_copy
from .similarity import METRICS, self_similarities, similarities

if TYPE_CHECKING:     # the maps are computed through the facade's methods
    from ..engine import Engine

OTHER_MODEL = "other model"


@dataclass(frozen=True)
class SanityRow:
    """One method's maps after one change, as soon as they are computed (a live view's row).

    stage: index into :attr:`SanityCheck.layers` (-1: the original model); layer: what was
    changed; method; maps: (N, C', H, W); rank_abs, rank, ssim: (N,) similarity to the
    original maps; classes: (N,) the class explained at each image.
    """
    stage: int
    layer: str
    method: str
    maps: np.ndarray
    rank_abs: np.ndarray
    rank: np.ndarray
    ssim: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class SanityCheck:
    """Similarity of each method's maps to the original ones after each change.

    x: (N, C, H, W) images; methods: M names; layers: L changes in order: the randomised layers
    from the top (with ``cascade``, stage l has layers[0..l] randomised; without, layers[l]
    alone), or ``("other model",)`` for the data-randomisation test; seed: of the random
    weights; original_classes: (N,) and classes: (L, N) the class explained per image;
    original: method -> (N, C', H, W) maps of the original model; maps: method -> (L, N, C',
    H, W) after each change (empty if not kept); rank_abs, rank, ssim: (M, L, N) similarities
    (nan where a map is constant, see :mod:`.similarity`).
    """
    x: np.ndarray
    methods: tuple[str, ...]
    layers: tuple[str, ...]
    cascade: bool
    seed: int
    original_classes: np.ndarray
    classes: np.ndarray
    original: dict[str, np.ndarray]
    maps: dict[str, np.ndarray]
    rank_abs: np.ndarray
    rank: np.ndarray
    ssim: np.ndarray

    def similarity(self, metric: str = "rank_abs") -> np.ndarray:
        """(M, L, N) values of ``metric``: "rank_abs", "rank" or "ssim"."""
        return getattr(self, check.one_of("metric", metric, METRICS))

    def mean(self, metric: str = "rank_abs") -> np.ndarray:
        """(M, L) mean over the images (nan values left out)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # an all-nan column stays nan
            return np.nanmean(self.similarity(metric), axis=-1)

    def curve(self, method: str, metric: str = "rank_abs") -> np.ndarray:
        """(L,) mean similarity of one method after each change (the paper's Fig. 4 curves)."""
        return self.mean(metric)[self.methods.index(check.one_of("method", method, self.methods))]


def sanity_check(engine: Engine, x: Images, methods: Methods = "all", cascade: bool = True,
                 classes: Sequence[int] | None = None, layers: Layers = None,
                 seed: Seed = 0, keep_maps: bool = True,
                 control: Control = NO_CONTROL) -> SanityCheck:
    """Model-randomisation test on images ``x`` (N, C, H, W), on a private copy of the model.

    layers: which of :func:`~.randomize.randomizable` to re-initialise (default all), always
    from the top (logits) down; cascade: cumulatively (the paper's cascading test) or one at a
    time with the others trained (independent test); seed: see :mod:`.randomize`.
    ``control.step`` after each method (group) of each stage; ``control.partial(rows)`` as
    each method's maps of a stage are done, rows: the tuple of every :class:`SanityRow` so far.
    """
    methods, x, fixed = _inputs(engine, x, methods, classes)
    cascade, keep_maps = _flag("cascade", cascade), _flag("keep_maps", keep_maps)
    seed = check.seed(seed)
    order = randomizable(engine)
    chosen = _chosen(order, layers)

    def stages() -> Iterator[tuple[str, object]]:
        # the copy is made once the original maps are shown (a ResNet-50's copy and its
        # analysis take a few forward passes), with a Stop check between its two steps
        work = working_copy(engine, control.check)
        modules = dict(work.model.named_modules())
        trained = None if cascade else {k: v.clone() for k, v in work.model.state_dict().items()}
        for name in chosen:
            if trained is not None:
                work.model.load_state_dict(trained)
            reinitialize(modules[name], layer_seed(seed, order.index(name)))
            yield name, work

    return _run(engine, stages(), len(chosen), x, methods, fixed, cascade, seed, keep_maps,
                control)


def sanity_check_data(engine: Engine, x: Images, other: ModelHost | nn.Module,
                      methods: Methods = "all",
                      classes: Sequence[int] | None = None, keep_maps: bool = True,
                      control: Control = NO_CONTROL) -> SanityCheck:
    """Data-randomisation test: the maps of ``engine``'s model against those of ``other`` (an
    engine of the same class or an ``nn.Module`` with the same input shape and classes, e.g.
    the model trained on shuffled labels), one stage named "other model"."""
    methods, x, fixed = _inputs(engine, x, methods, classes)
    keep_maps = _flag("keep_maps", keep_maps)
    other = _as_engine(engine, other)
    return _run(engine, iter([(OTHER_MODEL, other)]), 1, x, methods, fixed, False, 0, keep_maps,
                control)


def _run(first, stages, n_stages, x, methods, fixed, cascade, seed, keep_maps, control):
    """Maps of ``first`` (the original), then of each (name, engine) of ``stages``, with a
    Stop check between any two passes (chunks of images: :func:`~..core.chunks.spans`).

    ``control.partial`` gets the whole picture so far, every row done (a watcher may see only
    the latest value it was given)."""
    total, done = (n_stages + 1) * n_groups(methods), 0
    original_classes = fixed if fixed is not None else predicted(first, x, control.check)
    original: dict[str, np.ndarray] = {}
    rows: list[SanityRow] = []

    def live(row: SanityRow) -> SanityRow:
        rows.append(row)
        control.partial(tuple(rows))
        return row

    for group in explain(first, x, original_classes, methods, control.check):
        original.update(group)
        for m, maps in group.items():
            live(SanityRow(stage=-1, layer="original", method=m, maps=maps,
                           classes=original_classes, **self_similarities(maps)))
        done += 1
        control.step(done, total, "original model")
    names, classes, kept = [], [], {m: [] for m in methods}
    scores = {k: np.full((len(methods), n_stages, len(x)), np.nan) for k in METRICS}
    for s, (name, engine) in enumerate(stages):
        names.append(name)
        classes.append(fixed if fixed is not None else predicted(engine, x, control.check))
        for group in explain(engine, x, classes[-1], methods, control.check):
            for m, maps in group.items():
                row = live(_row(s, name, m, original[m], maps, classes[-1]))
                for k in METRICS:
                    scores[k][methods.index(m), s] = getattr(row, k)
                if keep_maps:
                    kept[m].append(maps)
            done += 1
            control.step(done, total, f"{name}: {', '.join(group)}")
    return SanityCheck(x=x.cpu().numpy(), methods=methods, layers=tuple(names), cascade=cascade,
                       seed=seed, original_classes=original_classes,
                       classes=np.stack(classes).astype(np.int64), original=original,
                       maps={m: np.stack(v) for m, v in kept.items()} if keep_maps else {},
                       **scores)


def _row(stage, layer, method, original, maps, classes) -> SanityRow:
    return SanityRow(stage=stage, layer=layer, method=method, maps=maps, classes=classes,
                     **similarities(original, maps))


def _inputs(engine, x, methods, classes):
    methods = method_list(methods)
    x = engine.prepare(x)
    if classes is None:
        return methods, x, None
    given = check.name_list("classes", classes, "3")
    if len(given) != len(x):
        raise InvalidArgument(f"classes must give one class per image ({len(x)}); got "
                              f"{len(given)}")
    return methods, x, np.array([check.class_index(engine, "class", c) for c in given],
                                dtype=np.int64)


def _flag(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidType(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _chosen(order, layers) -> tuple[str, ...]:
    """The layers to randomise, from the top (the logits) down."""
    if not order:
        raise NoSuitableLayer("the model has no layer with parameters and reset_parameters() "
                              "to re-initialise")
    if layers is None:
        return tuple(reversed(order))
    wanted = check.name_list("layers", layers, repr(order[-1]))
    bad = [n for n in wanted if n not in order]
    if bad:
        raise InvalidArgument(f"layers must be among the layers with parameters, "
                              f"{', '.join(order)}; got {', '.join(map(repr, bad))}")
    return tuple(n for n in reversed(order) if n in wanted)


def _as_engine(engine, other):
    if isinstance(other, nn.Module):
        other = sibling(engine, other)
    elif not isinstance(other, type(engine)):
        raise InvalidType(f"other must be an engine ({type(engine).__name__}) or a "
                          f"torch.nn.Module; got {type(other).__name__}")
    if tuple(other.input_shape) != tuple(engine.input_shape) or other.n_classes != engine.n_classes:
        raise InputShapeError(f"other must take the same inputs {engine.input_shape} and give "
                              f"{engine.n_classes} classes; it takes {other.input_shape} and "
                              f"gives {other.n_classes}")
    return other

