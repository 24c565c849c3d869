"""Every numeric and list argument of the Engine's public calls is checked: a bad value gets an
InvalidArgument / InvalidType naming the argument and what it accepts, never garbage, a
ZeroDivisionError or a reshape error."""
import numpy as np
import pytest
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine import InvalidArgument, InvalidType
from cnn_widgets.engine import InverseSetSettings as S
from cnn_widgets.testing import TINY_SHAPE, random_images, tiny_lenet
from cnn_widgets.testing.reference import cpu_engine

X = random_images(6, seed=0)
Y = torch.arange(6) % 5


@pytest.fixture(scope="module")
def engine():
    return cpu_engine(tiny_lenet(0), TINY_SHAPE, dataset=(X, Y))


IS = ("inverse_set", lambda e, **kw: e.inverse_set(("fc2", 1), (0.0, 5.0), **{"K": 2, "n": 2,
                                                                               **kw}))
CASES = [
    # (id, call, error, words the message must contain)
    ("etalons one_hot_batch=-1", lambda e: e.etalons(X[:1], method="paper", one_hot_batch=-1),
     InvalidArgument, ["one_hot_batch", ">= 1", "-1"]),
    ("etalons one_hot_batch=0", lambda e: e.etalons(X[:1], method="paper", one_hot_batch=0),
     InvalidArgument, ["one_hot_batch", ">= 1"]),
    ("etalons one_hot_batch=2.5", lambda e: e.etalons(X[:1], method="paper", one_hot_batch=2.5),
     InvalidType, ["one_hot_batch", "integer"]),
    ("Engine batch_size=0", lambda e: cpu_engine(tiny_lenet(0), TINY_SHAPE, batch_size=0),
     InvalidArgument, ["batch_size", ">= 1"]),
    ("Engine input_shape", lambda e: cpu_engine(tiny_lenet(0), (1, 0, 8)),
     InvalidArgument, ["input_shape[1]", ">= 1"]),
    ("activations layers str", lambda e: e.activations(X, "relu1"), InvalidType,
     ["layers", "list", "['relu1']"]),
    ("activations layers []", lambda e: e.activations(X, []), InvalidArgument, ["layers", "empty"]),
    ("activations layers None", lambda e: e.activations(X, None), InvalidType,
     ["layers", "list", "None"]),
    ("activation_stats layers str", lambda e: e.activation_stats(X, layers="relu1"), InvalidType,
     ["layers", "['relu1']"]),
    ("activation_pattern layers str", lambda e: e.activation_pattern(X, layers="relu1"),
     InvalidType, ["layers", "['relu1']"]),
    ("count_regions layers str", lambda e: e.count_regions(layers="relu1"), InvalidType,
     ["layers", "['relu1']"]),
    ("count_regions layers []", lambda e: e.count_regions(layers=[]), InvalidArgument,
     ["layers", "empty"]),
    ("count_regions empty data", lambda e: e.count_regions((np.zeros((0, 1, 8, 8)), [])),
     InvalidArgument, ["empty"]),
    ("activation_slices k=0", lambda e: e.activation_slices(X[0], "conv2", k=0),
     InvalidArgument, ["k", ">= 1"]),
    ("receptive_field y=1.5", lambda e: e.receptive_field("conv2", 1.5, 0), InvalidType,
     ["y", "integer"]),
    ("reconstruct seed=-1", lambda e: e.reconstruct(X[0], ("conv2", 0, 1, 1), seed=-1),
     InvalidArgument, ["seed", "0..4294967295", "-1"]),
    ("maximize steps=0", lambda e: e.maximize(O.logit(0), steps=0), InvalidArgument,
     ["steps", ">= 1"]),
    ("maximize n_starts=0", lambda e: e.maximize(O.logit(0), n_starts=0), InvalidArgument,
     ["n_starts", ">= 1"]),
    ("maximize lr=0", lambda e: e.maximize(O.logit(0), steps=2, lr=0), InvalidArgument,
     ["lr", "> 0"]),
    ("maximize lr=nan", lambda e: e.maximize(O.logit(0), steps=2, lr=float("nan")),
     InvalidArgument, ["lr", "finite"]),
    ("maximize clamp reversed", lambda e: e.maximize(O.logit(0), steps=2, clamp=(1, 0)),
     InvalidArgument, ["clamp", "lo < hi"]),
    ("iterate_maximize every=0", lambda e: list(e.iterate_maximize(O.logit(0), steps=2, every=0)),
     InvalidArgument, ["every", ">= 1"]),
    ("top_images k=0", lambda e: e.top_images(O.logit(0), k=0), InvalidArgument, ["k", ">= 1"]),
    ("top_images batch_size=0", lambda e: e.top_images(O.logit(0), batch_size=0),
     InvalidArgument, ["batch_size", ">= 1"]),
    ("top_images empty data", lambda e: e.top_images(O.logit(0), data=np.zeros((0, 1, 8, 8))),
     InvalidArgument, ["empty"]),
    ("histogram bins=0", lambda e: e.activation_histogram(O.logit(0), bins=0), InvalidArgument,
     ["bins", ">= 1"]),
    ("gradcam classes=[]", lambda e: e.gradcam(X[:1], classes=[]), InvalidArgument,
     ["classes", "empty"]),
    ("gradcam classes=[7]", lambda e: e.gradcam(X[:1], classes=[7]), InvalidArgument,
     ["class", "0 <= class < 5"]),
    ("fool steps=0", lambda e: e.fool(1, steps=0), InvalidArgument, ["steps", ">= 1"]),
    ("fool every=0", lambda e: e.fool(1, steps=2, every=0), InvalidArgument, ["every", ">= 1"]),
    ("fool lr=-1", lambda e: e.fool(1, steps=2, lr=-1.0), InvalidArgument, ["lr", "> 0"]),
    ("fool target=5", lambda e: e.fool(5), InvalidArgument, ["target", "0 <= target < 5"]),
    ("out_of_sample n_noise<0", lambda e: e.out_of_sample(X, Y, n_noise=-1), InvalidArgument,
     ["n_noise", ">= 0"]),
    ("category_tree n_noise=0", lambda e: e.category_tree(include_noise=True, n_noise=0),
     InvalidArgument, ["n_noise", ">= 1"]),
    ("category_tree label -1", lambda e: e.category_tree(data=(X, Y - 1)), InvalidArgument,
     ["label", "0 <= label < 5", "-1"]),
    ("category_tree label 9", lambda e: e.category_tree(data=(X, Y + 4)), InvalidArgument,
     ["label", "0 <= label < 5", "index 1"]),
    ("prediction_tree max_images=0", lambda e: e.prediction_tree(0, max_images=0),
     InvalidArgument, ["max_images", ">= 1"]),
    ("embedding n_components=0", lambda e: e.embedding(n_components=0), InvalidArgument,
     ["n_components", ">= 1"]),
    ("embedding max_images=2", lambda e: e.embedding(max_images=2), InvalidArgument,
     ["max_images", ">= 3"]),
    ("inverse_set K=0", lambda e: IS[1](e, K=0), InvalidArgument, ["K", "1 <= K <= n"]),
    ("inverse_set max_outer=0", lambda e: IS[1](e, settings=S(max_outer=0)), InvalidArgument,
     ["max_outer", ">= 1"]),
    ("inverse_set inner_steps=0", lambda e: IS[1](e, settings=S(inner_steps=0)), InvalidArgument,
     ["inner_steps", ">= 1"]),
    ("inverse_set mu_factor=0", lambda e: IS[1](e, settings=S(mu_factor=0)), InvalidArgument,
     ["mu_factor", ">= 1"]),
    ("inverse_set lr=0", lambda e: IS[1](e, settings=S(lr=0)), InvalidArgument, ["lr", "> 0"]),
    ("inverse_set margin=0.5", lambda e: IS[1](e, settings=S(margin=0.5)), InvalidArgument,
     ["margin", "< 0.5"]),
    ("inverse_set beta=0", lambda e: IS[1](e, settings=S(beta=0)), InvalidArgument, ["beta", "> 0"]),
    ("inverse_set n=1.5", lambda e: IS[1](e, n=1.5), InvalidType, ["n", "integer"]),
    ("inverse_set prior_weight=nan", lambda e: IS[1](e, settings=S(prior_weight=float("nan"))),
     InvalidArgument, ["prior_weight", "finite", ">= 0"]),
    ("inverse_set tol=-1", lambda e: IS[1](e, settings=S(tol=-1)), InvalidArgument,
     ["tol", ">= 0"]),
    ("inverse_set mu_max<mu0", lambda e: IS[1](e, settings=S(mu0=10, mu_max=1)),
     InvalidArgument, ["mu_max", ">= 10"]),
    ("inverse_set code_norm=inf", lambda e: IS[1](e, settings=S(code_norm=float("inf"))),
     InvalidArgument, ["code_norm", "finite", "> 0"]),
    ("inverse_set settings dict", lambda e: IS[1](e, settings={"lr": 0.1}), InvalidType,
     ["settings", "InverseSetSettings", "dict"]),
    ("inverse_set judge", lambda e: IS[1](e, judge=tiny_lenet(0)), InvalidType,
     ["judge", "Engine", "Sequential"]),
]


@pytest.mark.parametrize("call,error,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_named_with_its_range(engine, call, error, words):
    with pytest.raises(error) as info:
        call(engine)
    msg = str(info.value)
    assert all(w in msg for w in words), msg


def test_no_plain_value_or_type_errors_in_the_engine():
    from pathlib import Path

    import cnn_widgets
    root = Path(cnn_widgets.__file__).parent
    found = [f"{p.relative_to(root)}:{i + 1}" for folder in ("engine", "testing")
             for p in sorted((root / folder).rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines())
             if "raise ValueError(" in line or "raise TypeError(" in line]
    assert not found, found
