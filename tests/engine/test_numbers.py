"""Numbers that cannot be right are never reported as results (issue 16, part 3): every float
the user gives is finite and of the right sign, labels and class names are checked where the
data enters, seeds fit every generator, and NaN from the model or a diverging ascent is an
error, never a result."""
import math

import numpy as np
import pytest
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine import (
    CnnWidgetsError,
    InvalidArgument,
    InvalidType,
    InverseSetSettings,
    NonFiniteResult,
)
from cnn_widgets.engine.visualization.regularizers import (
    AlphaNorm,
    GradientTrick,
    Jitter,
    TotalVariation,
)
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine

X = random_images(6, seed=0)
Y = torch.arange(6) % 5
INF, NAN = float("inf"), float("nan")


@pytest.fixture(scope="module")
def engine():
    return cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, Y))


# -- floats the user gives --------------------------------------------------------------------
@pytest.mark.parametrize("make,words", [
    (lambda: AlphaNorm(alpha=INF), ["AlphaNorm alpha", "finite", "inf"]),
    (lambda: AlphaNorm(alpha=NAN), ["AlphaNorm alpha", "finite", "nan"]),
    (lambda: AlphaNorm(alpha=0.5), ["AlphaNorm alpha", ">= 1", "0.5"]),
    (lambda: AlphaNorm(weight=-1e-3), ["AlphaNorm weight", ">= 0"]),
    (lambda: AlphaNorm(weight=INF), ["AlphaNorm weight", "finite"]),
    (lambda: AlphaNorm(mean=(NAN,)), ["AlphaNorm mean", "finite"]),
    (lambda: TotalVariation(beta=INF), ["TotalVariation beta", "finite", "inf"]),
    (lambda: TotalVariation(beta=0), ["TotalVariation beta", "> 0"]),
    (lambda: TotalVariation(weight=NAN), ["TotalVariation weight", "finite"]),
    (lambda: TotalVariation(eps=0), ["TotalVariation eps", "> 0"]),
    (lambda: GradientTrick(blur=INF), ["GradientTrick blur", "finite"]),
    (lambda: GradientTrick(rotate=NAN), ["GradientTrick rotate", "finite"]),
    (lambda: GradientTrick(translate=-1), ["GradientTrick translate", ">= 0"]),
    (lambda: GradientTrick(translate=1.5), ["GradientTrick translate", "integer"]),
    (lambda: Jitter(0), ["Jitter d", ">= 1"]),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_regulariser_numbers_are_checked(make, words):
    with pytest.raises(CnnWidgetsError) as info:
        make()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_valid_regularisers_still_run(engine):
    regs = [AlphaNorm(1e-3, alpha=1), TotalVariation(1e-2, beta=0.5), GradientTrick(0, 0, 0),
            Jitter(1)]
    r = engine.maximize(O.logit(0), steps=3, regularizers=regs)
    assert np.isfinite(r.values).all() and np.isfinite(r.images).all()


@pytest.mark.parametrize("make", [lambda: NAN * O.logit(0), lambda: O.logit(0) * INF,
                                  lambda: O.logit(0) - INF * O.channel("conv2", 0),
                                  lambda: O.logit(0) / 0])
def test_objective_weights_must_be_finite(make):
    with pytest.raises(InvalidArgument, match="objective"):
        make()


@pytest.mark.parametrize("target,words", [
    (("conv2", "a"), ["conv2", "'a'", "(channel, y, x)"]),
    (("conv2", (0, "y", 1)), ["conv2", "(channel, y, x)"]),
    (("conv2", 1.5), ["conv2", "1.5"]),          # was truncated to unit 1
])
def test_objective_given_as_a_pair_checks_its_unit(engine, target, words):
    with pytest.raises(InvalidType) as info:
        engine.maximize(target, steps=2)
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("make", [lambda: O.logit(2.5), lambda: O.channel("conv2", "1"),
                                  lambda: O.probability(None)])
def test_objective_indices_are_integers(make):
    with pytest.raises(InvalidType, match="integer"):
        make()


@pytest.mark.parametrize("kw", [{"mean": NAN}, {"mean": [INF]}, {"std": INF},
                                {"std": NAN}, {"std": 1e39}, {"mean": -INF}])
def test_mean_and_std_must_be_finite(kw):
    with pytest.raises(InvalidArgument) as info:
        cpu_engine(tiny_lenet(0), TINY_SHAPE, **kw)
    assert next(iter(kw)) in str(info.value) and "finite" in str(info.value)


def test_mean_given_as_text_is_a_type_error():
    with pytest.raises(InvalidType, match="mean must be a number"):
        cpu_engine(tiny_lenet(0), TINY_SHAPE, mean="0.5")


# -- labels and class names ---------------------------------------------------------------------
@pytest.mark.parametrize("labels,words", [
    (np.array([3.7, 0, 1, 2, 3, 4]), ["whole numbers", "index 0", "3.7"]),
    (np.array([0, 1, NAN, 2, 3, 4]), ["whole numbers", "index 2", "nan"]),
    (np.array([0, 1, 2, 3, 4, 1e30]), ["whole numbers", "index 5"]),
    (np.array([10, -1, 1, 2, 3, 4]), ["0 <= label < 5", "index 0", "10"]),
    (np.array([0, 1, 2, 3, 4, -2]), ["0 <= label < 5", "(or -1: no label)", "index 5", "-2"]),
])
def test_engine_dataset_labels_are_checked(labels, words):
    with pytest.raises(InvalidArgument) as info:
        cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, labels))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_labels_given_as_text_are_a_type_error():
    with pytest.raises(InvalidType, match="labels must be integers"):
        cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, np.array(list("012340"))))


def test_whole_float_labels_are_accepted_and_never_alias_the_callers_array():
    labels = np.array([4.0, 3, 2, 1, 0, 1])
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, labels))
    assert e.dataset.labels.dtype == torch.int64
    assert e.dataset.labels.tolist() == [4, 3, 2, 1, 0, 1]
    own = torch.arange(6) % 5
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, own))
    own[0] = 4
    assert int(e.dataset.labels[0]) == 0


def test_map_style_dataset_labels_are_not_truncated():
    items = [(X[i], 1.5 if i == 3 else i % 5) for i in range(6)]
    with pytest.raises(InvalidArgument, match="index 3, is 1.5"):
        cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=items)
    items = [(X[i], torch.tensor(i % 5)) for i in range(6)]
    assert cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=items).dataset.labels.tolist() == \
        [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize("call", [
    lambda e, d: e.count_regions(d),
    lambda e, d: e.category_tree(data=d),
    lambda e, d: e.top_images(O.logit(0), data=d),
    lambda e, d: e.embedding(data=d, method="pca"),
], ids=["count_regions", "category_tree", "top_images", "embedding"])
def test_data_labels_outside_the_classes_are_refused_everywhere(engine, call):
    """count_regions used to report classes 10 and -1 where category_tree refused them."""
    with pytest.raises(InvalidArgument, match="0 <= label < 5"):
        call(engine, (X, np.array([10, -1, 1, 2, 3, 4])))


def test_unlabelled_images_are_marked_minus_one_and_refused_where_labels_count():
    """The zoo's photos carry -1 (no ImageNet label); a view that groups by class refuses them."""
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, np.array([0, 1, 2, 3, 4, -1])))
    assert e.dataset.labels.tolist() == [0, 1, 2, 3, 4, -1]
    assert len(e.top_images(O.logit(0), k=2).indices) == 2
    for call in (e.count_regions, e.category_tree):
        with pytest.raises(InvalidArgument, match="index 5, is -1; -1 marks an image without"):
            call()


@pytest.mark.parametrize("names,error,words", [
    ([0, 1, 2, 3, 4], InvalidType, ["class_names", "strings", "index 0", "int"]),
    (["a", "b", 2, "d", "e"], InvalidType, ["class_names", "index 2"]),
    ("abcde", InvalidType, ["class_names", "the string 'abcde'"]),
    (["a", "b"], InvalidArgument, ["class_names has 2 names", "5 outputs"]),
    (7, InvalidType, ["class_names", "7"]),
])
def test_class_names_are_strings_one_per_class(names, error, words):
    with pytest.raises(error) as info:
        cpu_engine(tiny_lenet(0), TINY_SHAPE, class_names=names)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_class_names_from_a_generator():
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE, class_names=(f"c{i}" for i in range(5)))
    assert e.class_names == ["c0", "c1", "c2", "c3", "c4"]


class TinyDecoder(torch.nn.Sequential):
    code_dim = 4

    def __init__(self):
        super().__init__(torch.nn.Linear(4, 64), torch.nn.Sigmoid(), torch.nn.Unflatten(1, TINY_SHAPE))


# -- seeds --------------------------------------------------------------------------------------
U, R = ("fc2", 1), (0.0, 5.0)
QUICK = InverseSetSettings(inner_steps=2, max_outer=1)
SEEDED = {
    "maximize": lambda e, s: e.maximize(O.logit(0), steps=1, seed=s),
    "iterate_maximize": lambda e, s: list(e.iterate_maximize(O.logit(0), steps=1, seed=s)),
    "start_images": lambda e, s: e.start_images(seed=s),
    "reconstruct": lambda e, s: e.reconstruct(X[0], ("conv2", 0, 1, 1), method="random_masks",
                                              seed=s),
    "fool": lambda e, s: e.fool(1, steps=1, n_starts=1, seed=s),
    "out_of_sample": lambda e, s: e.out_of_sample(X, Y, n_noise=3, seed=s),
    "category_tree": lambda e, s: e.category_tree(include_noise=True, n_noise=3, seed=s),
    "embedding": lambda e, s: e.embedding(method="pca", seed=s),
    "noise_explanation": lambda e, s: e.noise_explanation(n=2, seed=s),
    "inverse_set": lambda e, s: e.inverse_set(U, R, K=1, n=1, seed=s, settings=QUICK),
    "inverse_set_restarts": lambda e, s: e.inverse_set_restarts(U, R, n=1, steps=1, seed=s),
    "inverse_set_full_optimisation": lambda e, s: e.inverse_set_full_optimisation(
        U, R, n=1, seed=s, settings=QUICK),
    "inverse_set_mcmc": lambda e, s: e.inverse_set_mcmc(U, R, TinyDecoder(), n=1, chains=1,
                                                        steps=1, seed=s),
}


@pytest.mark.parametrize("name", SEEDED)
def test_every_seed_is_checked_against_the_range_all_generators_take(engine, name):
    with pytest.raises(InvalidArgument) as info:
        SEEDED[name](engine, 2 ** 70)
    assert "seed" in str(info.value) and "0..4294967295" in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["maximize", "reconstruct", "embedding", "inverse_set_restarts",
                                  "inverse_set_mcmc"])
def test_the_largest_seed_works(engine, name):
    SEEDED[name](engine, 2 ** 32 - 1)


# -- embedding needs three images ------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2])
def test_embedding_of_one_or_two_images_is_refused(engine, n):
    with pytest.raises(InvalidArgument, match="at least 3 images"):
        engine.embedding(data=(X[:n], Y[:n]))


def test_embedding_of_three_images_of_three_classes():
    """t-SNE runs; the silhouette is undefined for as many classes as images: NaN, not a crash."""
    e = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    em = e.embedding(data=(X[:3], Y[:3]))
    assert em.pixels.shape == (3, 2) and np.isfinite(em.features).all()
    assert math.isnan(em.silhouette_pixels) and math.isnan(em.silhouette_features)


def test_embedding_components_are_checked(engine):
    with pytest.raises(InvalidArgument, match="at most 3"):
        engine.embedding(n_components=4, method="tsne")
    with pytest.raises(InvalidArgument, match="below the number of images"):
        engine.embedding(n_components=6, method="pca")


def test_restarts_without_a_generator_return_images(engine):
    base = engine.inverse_set_restarts(U, R, n=2, steps=2)
    assert base.images.shape == (2, *TINY_SHAPE)
    with pytest.raises(InvalidArgument, match="tv"):
        engine.inverse_set_restarts(U, R, n=2, steps=2, tv=INF)


# -- NaN from the model or a diverging ascent -----------------------------------------------------
def nan_model():
    model = tiny_lenet(0)
    with torch.no_grad():
        model.fc2.weight[2, 0] = NAN          # class 2's logit is NaN everywhere
    return model


def test_etalons_of_a_model_with_nan_are_an_error_not_exact_results():
    e = cpu_engine(nan_model(), TINY_SHAPE)
    with pytest.raises(NonFiniteResult, match="image 0"):
        e.etalons(X[:2])


def test_maximize_of_a_nan_objective_is_an_error():
    e = cpu_engine(nan_model(), TINY_SHAPE)
    with pytest.raises(NonFiniteResult, match="start images"):
        e.maximize(O.logit(2), steps=2)


def test_a_diverging_ascent_is_an_error(engine):
    with pytest.raises(NonFiniteResult, match="lower lr"):
        engine.maximize(O.logit(0), steps=5, lr=1e30, optimizer="sgd",
                        regularizers=[AlphaNorm(1.0, alpha=10)])
