"""The Engine facade: one object per model that binds every paper's algorithms.

Each method is a typed, documented call of one paper package's function (the package is
named in the section comment); results are frozen dataclasses of CPU numpy arrays. The model
side (device, layers, input checks, borrowing) lives in :class:`~.core.model.ModelHost`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from torch import nn

from .clustering.category_tree import CategoryTree, category_tree
from .clustering.embedding import Embedding, embedding
from .clustering.prediction_tree import PredictionTree, prediction_tree
from .core.control import NO_CONTROL, Control
from .core.data import ImageSet
from .core.model import ModelHost
from .core.results import Etalons, RegionCount
from .core.selection import default_layer_for
from .core.types import (
    Category,
    Data,
    Encoder,
    Generator,
    Images,
    IndexData,
    Labels,
    Layers,
    LayerUnit,
    LayerUnits,
    Methods,
    PathLike,
    Ranges,
    Regularizers,
    Seed,
    Start,
    Target,
    Units,
)
from .etalons.affine_map import etalons
from .etalons.noise_bias import NoiseExplanation, noise_explanation
from .etalons.regions import activation_pattern, count_regions
from .index import ActivationIndex, build
from .index import route as indexed
from .inverse_set.baselines import Baseline, full_optimisation, restarts
from .inverse_set.mcmc import McmcSamples, mcmc
from .inverse_set.sampling import InverseSet, Seeds, inverse_set
from .inverse_set.settings import InverseSetSettings
from .probing.activation_stats import ActivationSlices, ActivationStats, activation_slices, activation_stats
from .probing.field_patterns import FieldPatterns, field_patterns
from .probing.receptive_field import FieldMap, ReceptiveField, field_map, receptive_field
from .probing.reconstruct import Reconstruction, reconstruct
from .sanity.check import SanityCheck, sanity_check, sanity_check_data
from .sanity.randomize import randomizable
from .visualization.fooling import Fooling, fool
from .visualization.gradcam import GradCam, gradcam
from .visualization.maximize import (
    MaximizeResult,
    MaximizeStep,
    iterate_maximize,
    maximize,
    start_images,
)
from .visualization.objectives import Objective  # noqa: F401 - resolves Target (get_type_hints)
from .visualization.out_of_sample import OutOfSample, out_of_sample
from .visualization.regularizers import (  # noqa: F401 - resolve Regularizers (get_type_hints)
    AlphaNorm,
    GradientTrick,
    Jitter,
    TotalVariation,
)
from .visualization.scan import (
    Histogram,
    TopImages,
    activation_histogram,
    top_images,
    top_images_and_histogram,
)


class Engine(ModelHost):
    """Analysis engine for one image classifier; see :class:`~.core.model.ModelHost` for the
    constructor (model, input_shape, dataset, class_names, mean, std, device, batch_size,
    eval_mode, memory_budget). Use it as a context manager, or call :meth:`close`, to end the worker thread
    that widgets started for it. The argument types (``Images``, ``Data``, ``Units``, ``Target``, ...)
    are described in :mod:`cnn_widgets.engine.core.types`."""

    def default_layer_for(self, purpose: str, layer: str | None = None) -> str:
        """The default layer of a view: ``"gradcam"``, ``"features"`` (the trees),
        ``"probing"`` (FOVExplorer) or ``"encoder"`` (inverse set); ``layer`` checked if given."""
        return default_layer_for(self, purpose, layer)

    # -- etalons paper: engine/etalons/ ----------------------------------------------------
    def etalons(self, x: Images, layer: str | None = None, units: Units = None, method: str = "fast",
                control: Control = NO_CONTROL, one_hot_batch: int | None = None,
                top_k: int | None = None) -> Etalons:
        """Exact per-input affine maps f_p(x) = <W_p, x> + b_p of ``units`` of ``layer``
        (default: the logits) at every image of ``x``, or of each image's own ``top_k``
        highest units (its top-k classes); method "fast" (autograd; the rows done so far go
        to ``control.partial``) or "paper" (Algorithm 1, ``one_hot_batch`` coordinate images
        at once)."""
        return etalons(self, x, layer, units, method, control, one_hot_batch, top_k)

    def activation_pattern(self, x: Images, layers: Layers = None) -> np.ndarray:
        """(N, K) int64 codes of every ReLU's on/off state and every max-pool's choice."""
        return activation_pattern(self, x, layers)

    def count_regions(self, data: Data = None, layers: Layers = None,
                      control: Control = NO_CONTROL) -> RegionCount:
        """Distinct linear regions (activation patterns) per class over ``data`` (default:
        the engine's dataset)."""
        return indexed.region_count(self, data, layers) or count_regions(self, data, layers, control)

    # -- probing paper: engine/probing/ ------------------------------------------------------
    def receptive_field(self, layer: str, y: int, x: int) -> ReceptiveField:
        """The input box a unit at (y, x) of ``layer`` can see."""
        return receptive_field(self, layer, y, x)

    def field_map(self, layer: str) -> FieldMap:
        """The receptive fields of every position of ``layer`` at once (FOVExplorer's grid)."""
        return field_map(self, layer)

    def reconstruct(self, x: Images, unit: LayerUnit | tuple[str, int, int, int],
                    method: Methods = "deconvnet", control: Control = NO_CONTROL,
                    seed: Seed = 0) -> Reconstruction:
        """Backward reconstructions of one unit ``(layer, channel, y, x)`` at one image;
        method: "deconvnet" (eq. 4-5), "deconvnet_masks" (eq. 6-7), "random_masks", "filter"
        (eq. 8-9), "all" or a list (one shared forward pass); ``seed`` for random weights."""
        return reconstruct(self, x, unit, method, control, seed)

    def activation_stats(self, x: Images, layers: Layers = None, control: Control = NO_CONTROL,
                         reading: str = "position") -> ActivationStats:
        """Active features per ReLU/pool layer for every image of ``x`` (Fig. 6); reading:
        "position" (active at a position) or "anywhere" (active somewhere in the image).
        An attached activation index answers the "position" reading."""
        return ((reading == "position" and indexed.activation_stats(self, x, layers))
                or activation_stats(self, x, layers, control, reading))

    def activation_slices(self, x: Images, layer: str, k: int = 8) -> ActivationSlices:
        """The ``k`` strongest channels of ``layer`` for one image (Fig. 2)."""
        return activation_slices(self, x, layer, k)

    # -- visualization paper: engine/visualization/ -----------------------------------------
    def maximize(self, objective: Target, *, steps: int = 256, start: Start = "noise",
                 n_starts: int = 1, lr: float = 0.05, optimizer: str = "adam",
                 regularizers: Regularizers = None, seed: Seed = 0,
                 indices: Sequence[int] | None = None, predict: bool = True,
                 clamp: tuple[float, float] | None = None,
                 control: Control = NO_CONTROL) -> MaximizeResult:
        """Gradient ascent on the input: x* = argmax objective(x) - sum of the regularizers'
        penalties. start: "noise", "dataset" or images; optimizer: "adam" or "sgd"."""
        return maximize(self, objective, steps=steps, start=start, n_starts=n_starts, lr=lr,
                        optimizer=optimizer, regularizers=regularizers, seed=seed,
                        indices=indices, predict=predict, clamp=clamp, control=control)

    def iterate_maximize(self, objective: Target, *, steps: int = 256, start: Start = "noise",
                         n_starts: int = 1, lr: float = 0.05, optimizer: str = "adam",
                         regularizers: Regularizers = None, seed: Seed = 0,
                         indices: Sequence[int] | None = None,
                         every: int | None | Callable[[int], bool] = 1,
                         predict: bool = True, clamp: tuple[float, float] | None = None,
                         control: Control = NO_CONTROL) -> Iterator[MaximizeStep]:
        """The same ascent as a generator of :class:`MaximizeStep` (every ``every``-th step
        and the last)."""
        return iterate_maximize(self, objective, steps=steps, start=start, n_starts=n_starts,
                                lr=lr, optimizer=optimizer, regularizers=regularizers,
                                seed=seed, indices=indices, every=every, predict=predict,
                                clamp=clamp, control=control)

    def start_images(self, start: Start = "noise", n_starts: int = 1, seed: Seed = 0,
                     indices: Sequence[int] | None = None) -> np.ndarray:
        """(N, C, H, W) start images of :meth:`maximize`: "noise" (Gaussian with the data's
        channel mean and std), "dataset" (``indices``, default the first ``n_starts``) or
        images."""
        return start_images(self, start, n_starts, seed, indices).cpu().numpy()

    def top_images(self, target: Target, k: int = 9, data: Data = None, control: Control = NO_CONTROL,
                   batch_size: int | None = None) -> TopImages:
        """The ``k`` images of ``data`` (default: the dataset) that drive ``target`` (an
        objective or a (layer, unit) pair) most."""
        return (indexed.top_images(self, target, k, data)
                or top_images(self, target, k, data, control, batch_size))

    def activation_histogram(self, target: Target, bins: int = 50, data: Data = None,
                             control: Control = NO_CONTROL,
                             batch_size: int | None = None) -> Histogram:
        """Histogram of ``target`` over every image of ``data`` (default: the dataset)."""
        return (indexed.histogram(self, target, bins, data)
                or activation_histogram(self, target, bins, data, control, batch_size))

    def top_images_and_histogram(self, target: Target, k: int = 9, bins: int = 50,
                                 data: Data = None,
                                 control: Control = NO_CONTROL, batch_size: int | None = None,
                                 ) -> tuple[TopImages, Histogram]:
        """:meth:`top_images` and :meth:`activation_histogram` from one pass over the data."""
        top = indexed.top_images(self, target, k, data)
        hist = indexed.histogram(self, target, bins, data) if top is not None else None
        if top is not None and hist is not None:        # one index answers both or neither
            return top, hist
        return top_images_and_histogram(self, target, k, bins, data, control, batch_size)

    def gradcam(self, x: Images, classes: Sequence[int] | None = None, layer: str | None = None,
                control: Control = NO_CONTROL) -> GradCam:
        """Grad-CAM maps (N, P, H, W) of ``classes`` (default: each image's predicted class)
        at ``layer`` (default: the last (C, H, W) layer)."""
        return gradcam(self, x, classes, layer, control)

    def fool(self, target: int, *, start: Start = "dataset", indices: Sequence[int] | None = None,
             n_starts: int = 4, source: int | None = None, steps: int = 100,
             lr: float = 0.01, optimizer: str = "sgd", every: int = 1,
             cam_layer: str | None = None, seed: Seed = 0, until_flip: bool = False,
             control: Control = NO_CONTROL) -> Fooling:
        """Push images of ``source`` towards class ``target`` by pixel gradient steps, with
        the Grad-CAMs of both classes before and after; ``until_flip``: each image ends at
        the first step it is predicted as the target."""
        return fool(self, target, start=start, indices=indices, n_starts=n_starts,
                    source=source, steps=steps, lr=lr, optimizer=optimizer, every=every,
                    cam_layer=cam_layer, seed=seed, until_flip=until_flip, control=control)

    def out_of_sample(self, images: Images, labels: Labels, names: Sequence[str] | None = None,
                      n_noise: int = 1000, seed: Seed = 0,
                      control: Control = NO_CONTROL) -> OutOfSample:
        """Percent of unseen classes' images and of noise predicted as each class (Table 1)."""
        return out_of_sample(self, images, labels, names, n_noise, seed, control)

    # -- clustering paper: engine/clustering/ -----------------------------------------------
    def category_tree(self, layer: str | None = None, include_noise: bool = False,
                      data: Data = None, n_noise: int | None = None, seed: Seed = 0,
                      control: Control = NO_CONTROL) -> CategoryTree:
        """Class hierarchy (Algorithm 1, WPGMA) and minimum spanning tree of class-mean
        features; ``include_noise`` adds uniform noise as a category."""
        return category_tree(self, layer, include_noise, data, n_noise, seed, control,
                             indexed.class_sums(self, layer, data))

    def prediction_tree(self, category: Category, layer: str | None = None, data: Data = None,
                        max_images: int | None = None, method: str = "fast",
                        control: Control = NO_CONTROL) -> PredictionTree:
        """Filter-wise prediction tree (Algorithm 2) over the images of one category."""
        return prediction_tree(self, category, layer, data, max_images, method, control)

    def embedding(self, layer: str | None = None, data: Data = None,
                  max_images: int | None = None, n_components: int = 2,
                  method: str = "auto", seed: Seed = 0,
                  control: Control = NO_CONTROL) -> Embedding:
        """2-D embedding of the images' features (Fig. 9): UMAP if installed, else t-SNE."""
        return embedding(self, layer, data, max_images, n_components, method, seed, control)

    # -- inverse-set paper: engine/inverse_set/ ---------------------------------------------
    def inverse_set(self, units: LayerUnits, ranges: Ranges, generator: Generator = None,
                    encoder: Encoder = None, K: int = 10, n: int = 500, *, seed: Seed = 0,
                    settings: InverseSetSettings | None = None, judge: ModelHost | None = None,
                    control: Control = NO_CONTROL) -> InverseSet:
        """``n`` diverse inputs G(c) whose ``units`` ((layer, unit) pairs) lie in ``ranges``
        ((z1, z2) each; None: the unit's 70th-90th percentile on the dataset): ``K`` seeds by
        the augmented Lagrangian, then sampling steps, solved as ``settings`` say
        (:class:`InverseSetSettings`: the paper's variants, eq. 13/14, the prior on the codes,
        the steps). ``judge``: another network's Engine on the same inputs, for the share of
        samples it calls the units' class (``InverseSet.naturalness``). The seeds as they move
        (a ``SeedBatch``), then every sample so far as new ones come (a ``SampleBatch``), go
        to ``control.partial``; see :func:`~.inverse_set.sampling.inverse_set`."""
        return inverse_set(self, units, ranges, generator, encoder, K, n, seed=seed,
                           settings=settings, judge=judge, control=control)

    def inverse_set_restarts(self, units: LayerUnits, ranges: Ranges, generator: Generator = None,
                             encoder: Encoder = None, n: int = 500, *,
                             steps: int = 100, lr: float = 0.05, seed: Seed = 1, tv: float = 0.05,
                             code_norm: float | None = None, judge: ModelHost | None = None,
                             control: Control = NO_CONTROL) -> Baseline:
        """Baseline: ``n`` independent activation-maximisation restarts through the same G."""
        return restarts(self, units, ranges, generator, encoder, n, steps=steps, lr=lr,
                        seed=seed, tv=tv, code_norm=code_norm, judge=judge, control=control)

    def inverse_set_full_optimisation(
            self, units: LayerUnits, ranges: Ranges, generator: Generator = None,
            encoder: Encoder = None, n: int = 100, *, seed: Seed = 0,
            settings: InverseSetSettings | None = None, judge: ModelHost | None = None,
            control: Control = NO_CONTROL) -> tuple[Baseline, Seeds]:
        """Baseline eq. 15: all ``n`` codes optimised at once with eq. 8 "all the way" (all
        inside and the objective within ``settings.tol`` over three outer iterations, or a cap;
        default settings :data:`FULL_OPTIMISATION`: at most 15,000 steps, mu capped at 1e6);
        the Baseline carries the objective and violation per outer iteration."""
        return full_optimisation(self, units, ranges, generator, encoder, n, seed=seed,
                                 settings=settings, judge=judge, control=control)

    # -- fidelity helpers (issue 12): the papers' own checks ----------------------------------
    def noise_explanation(self, n: int = 200, seed: Seed = 0,
                          control: Control = NO_CONTROL) -> NoiseExplanation:
        """Etalons of the logits at ``n`` noise images (Table 1's noise, same ``seed`` -> same
        images): per class the logit, effective bias b_p(x), <W, x>, the last layer's bias and
        whether the largest bias wins (visualization paper, Sec. 2.5)."""
        return noise_explanation(self, n, seed, control)

    def inverse_set_mcmc(self, units: LayerUnits, ranges: Ranges, generator: Generator,
                         encoder: Encoder = None, n: int = 500, *,
                         chains: int = 10, steps: int = 200, eps1: float = 1e-2,
                         eps2: float = 1e-2, eps3: float | None = None, burn_in: int = 0,
                         seed: Seed = 0, stop_at_n: bool = True,
                         judge: ModelHost | None = None,
                         control: Control = NO_CONTROL) -> McmcSamples:
        """PPGN-style Langevin chains in G's code space (prior -c, the units' gradient, noise),
        states filtered to ``ranges`` (PPGN itself gives no range; inverse-set paper, Fig. 2
        comparison): accepted samples, share in range, chain steps per sample, diversity,
        naturalness (``judge`` as in :meth:`inverse_set`)."""
        return mcmc(self, units, ranges, generator, encoder, n, chains=chains, steps=steps,
                    eps1=eps1, eps2=eps2, eps3=eps3, burn_in=burn_in, seed=seed,
                    stop_at_n=stop_at_n, judge=judge, control=control)

    def field_patterns(self, layer: str, unit: tuple[int, int, int],
                       data: Images | ImageSet | None = None, gates: Layers = None,
                       control: Control = NO_CONTROL) -> FieldPatterns:
        """Distinct ReLU/max-pool configurations inside the FOV tree of unit ``(channel, y,
        x)`` of ``layer`` over ``data`` (default: the dataset), over all images and over
        those that activate the unit (probing paper: a unit is the OR of configurations);
        ``gates``: only these gate layers of the tree."""
        return field_patterns(self, layer, unit, data, gates, control)

    # -- sanity checks paper: engine/sanity/ ------------------------------------------------
    def sanity_check(self, x: Images, methods: Methods = "all", cascade: bool = True,
                     classes: Sequence[int] | None = None, layers: Layers = None, seed: Seed = 0,
                     keep_maps: bool = True, control: Control = NO_CONTROL) -> SanityCheck:
        """Model-randomisation test (Adebayo et al.) on images ``x`` (N, C, H, W): the layers
        with parameters re-initialised from the logits down (``cascade``: cumulatively, else
        one at a time), on a copy of the model; per method ("etalon", "deconvnet",
        "deconvnet_masks" = guided backprop, "random_masks", "filter", "gradient", "gradcam")
        and layer the maps (L, N, C', H, W) and their rank correlations (with and without
        absolute values) and SSIM to the original maps, (M, L, N); ``classes``: the class per
        image (default: each model's prediction)."""
        return sanity_check(self, x, methods, cascade, classes, layers, seed, keep_maps, control)

    def sanity_layers(self) -> tuple[str, ...]:
        """The layers :meth:`sanity_check` can re-initialise (parameters of their own and a
        ``reset_parameters()``), top (logits) first: its stages when ``layers`` is None."""
        return tuple(reversed(randomizable(self)))

    def sanity_check_data(self, x: Images, other: ModelHost | nn.Module, methods: Methods = "all",
                          classes: Sequence[int] | None = None, keep_maps: bool = True,
                          control: Control = NO_CONTROL) -> SanityCheck:
        """Data-randomisation test: the same measures between this model's maps and those of
        ``other`` (an Engine or a module), e.g. ``zoo.lenet_digits_shuffled()``."""
        return sanity_check_data(self, x, other, methods, classes, keep_maps, control)

    # -- activation index: engine/index/ ----------------------------------------------------
    def index(self, data: IndexData = None, layers: Layers = None, *,
              path: PathLike | None = None, k: int = 64,
              batch_size: int | None = None, chunk_size: int | None = None,
              num_workers: int = 0, patterns: bool = False, class_sums: bool = True,
              control: Control = NO_CONTROL, progress: bool | None = None,
              ) -> ActivationIndex | None:
        """Scan ``data`` (default: the dataset; or (images, labels), a folder of class folders,
        any map-style dataset) once and keep per channel of ``layers``: top-``k`` images by
        spatial mean and max, per-image values, mean/variance, active fraction, class sums;
        ``patterns``: also activation-pattern digests (count_regions). Saved under ``path``
        (default ``~/.cache/cnn_widgets/index``) in chunks of ``chunk_size`` images: an
        interrupted build resumes; a finished one is opened. Attached: top_images,
        activation_histogram, activation_stats, category_tree and count_regions read it.
        ``progress``: tqdm (default: in a terminal); under torch.distributed each rank scans
        its share (None on ranks > 0)."""
        index = build(self, data, layers, path=path, k=k, batch_size=batch_size,
                      chunk_size=chunk_size, num_workers=num_workers, patterns=patterns,
                      class_sums=class_sums, control=control, progress=progress)
        return indexed.attach(self, index) if index is not None else index

    def open_index(self, path: PathLike, data: IndexData = None) -> ActivationIndex:
        """Open (content hash checked) and attach an index built by :meth:`index` or
        ``python -m cnn_widgets.index`` (a cluster job too); ``data``: the dataset it was
        built from, when it is not the engine's (for the top images' pictures)."""
        return indexed.open_attached(self, path, data)
