"""The visualization paper's Sec. 2.3 / 2.5 helpers at digits scale: deterministic, and the
retrained LeNet is the default recipe with another seed."""
import numpy as np
import pytest
import torch

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine import InvalidArgument
from cnn_widgets.testing import untouched
from cnn_widgets.zoo import cache, lenet_digits, resnet_digits
from cnn_widgets.zoo.experiments import (
    lenet_digits_seed,
    randomly_initialised,
    super_image_training,
    super_images,
)


def test_super_images_are_class_maximisers_and_deterministic():
    engine = lenet_digits()
    a, labels = super_images(engine, per_class=2, steps=4)
    b, _ = super_images(engine, per_class=2, steps=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 1, 28, 28) and list(labels) == [k for k in range(10) for _ in (0, 1)]
    assert a.min() >= 0 and a.max() <= 1
    # each class's images raised that class's logit from the noise start
    r = engine.maximize(O.logit(3), steps=4, n_starts=2,
                        lr=0.1, optimizer="sgd", seed=3, clamp=(0.0, 1.0))
    np.testing.assert_array_equal(r.images, a[6:8])
    assert (r.trace[-1] > r.trace[0]).all()
    t1 = super_image_training(engine, per_class=2, steps=4)
    np.testing.assert_array_equal(t1.images, a)
    for v in (t1.teacher_accuracy, t1.super_accuracy, t1.accuracy, t1.real_accuracy):
        assert 0 <= v <= 1
    assert t1.teacher_accuracy > 0.9


def test_super_image_training_needs_the_engines_test_set_and_says_so_first():
    """Found by the type checker: an engine without a dataset got a raw AttributeError, and
    only after the super-images were made."""
    engine = lenet_digits()
    bare = Engine(engine.model, engine.input_shape, device="cpu")
    with pytest.raises(InvalidArgument, match="dataset"), untouched(engine.model):
        super_image_training(bare, per_class=1, steps=1000)


def test_seed_zero_is_the_default_model_and_other_seeds_have_their_own_cache():
    e0, default = lenet_digits_seed(0), lenet_digits()
    for p, q in zip(e0.model.parameters(), default.model.parameters()):
        assert torch.equal(p, q)
    r0, r1 = (e.model_card["recipe"] for e in (e0, default))
    assert r0 == r1
    other = {**r0, "train": {**r0["train"], "seed": 1}}
    assert cache.cache_path("lenet-digits", other) != cache.cache_path("lenet-digits", r0)


def test_randomly_initialised_resets_a_copy_and_keeps_the_rest():
    for trained in (lenet_digits(), resnet_digits()):
        with untouched(trained.model):
            a, b, c = (randomly_initialised(trained, s) for s in (0, 0, 1))
        assert a.model is not trained.model
        pa, pb, pc, pt = (dict(e.model.state_dict()) for e in (a, b, c, trained))
        assert pa.keys() == pt.keys()
        assert all(torch.equal(pa[k], pb[k]) for k in pa)                 # same seed, same weights
        weights = [k for k in pa if k.endswith("weight") and pa[k].dim() > 1]
        assert weights and not any(torch.equal(pa[k], pt[k]) for k in weights)
        assert not all(torch.equal(pa[k], pc[k]) for k in weights)          # another seed
        assert not any(k.endswith("running_var") and not torch.equal(pa[k], torch.ones_like(pa[k]))
                       for k in pa)                                          # batch-norm stats reset
        assert a.class_names == trained.class_names and a.input_shape == trained.input_shape
        assert torch.equal(a.dataset.images, trained.dataset.images)
        assert torch.equal(a.mean, trained.mean) and torch.equal(a.std, trained.std)
        acc = (a.predict(a.dataset.images).argmax(1) == a.dataset.labels.numpy()).mean()
        assert acc < 0.5                                                    # it is untrained


def test_code_encoder_maps_digits_into_the_generators_codes():
    from cnn_widgets.zoo import digits, digits_generator
    from cnn_widgets.zoo.experiments import digits_code_encoder
    E, G = digits_code_encoder(), digits_generator()
    x = digits().x_test[:50]
    with torch.no_grad():
        c = E(x)
        assert c.shape == (50, G.code_dim)
        assert float(((G(c) - x) ** 2).mean()) < 0.02          # G(E(x)) reconstructs x
    again = digits_code_encoder()
    for p, q in zip(E.parameters(), again.parameters()):
        assert torch.equal(p, q)
