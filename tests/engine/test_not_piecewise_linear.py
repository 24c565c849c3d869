"""Models that are not (provably) piecewise linear: the fast path still returns the Jacobian,
flagged exact=False with the reason; Algorithm 1 refuses with a clear message."""
import numpy as np
import pytest

from cnn_widgets.engine import NotPiecewiseLinear
from cnn_widgets.testing import (
    TINY_SHAPE,
    FunctionalReLUNet,
    UntraceableNet,
    as_user_model,
    gated_conv_net,
    random_images,
    smooth_conv_net,
    tiny_lenet,
    tiny_mlp,
    untouched,
)
from cnn_widgets.testing.reference import (
    assert_same_map,
    cpu_engine,
    max_abs,
    reference_jacobian,
    reference_unit_values,
)

SMOOTH = [
    pytest.param(lambda: smooth_conv_net("sigmoid", 1), "Sigmoid 'act'", id="conv-sigmoid"),
    pytest.param(lambda: smooth_conv_net("tanh", 2), "Tanh 'act'", id="conv-tanh"),
    pytest.param(lambda: smooth_conv_net("gelu", 3), "GELU 'act'", id="conv-gelu"),
    pytest.param(lambda: smooth_conv_net("softmax", 4), "Softmax 'act'", id="conv-softmax-inside"),
    pytest.param(lambda: tiny_mlp(5, activation="sigmoid"), "Sigmoid 'act'", id="mlp-sigmoid"),
    pytest.param(lambda: tiny_mlp(6, activation="softmax"), "Softmax 'act'", id="mlp-softmax"),
]


def _check_jacobian(engine, model, x, mean=None, std=None, train=False):
    et = engine.etalons(x, method="fast")
    for i in range(len(x)):
        J = reference_jacobian(model, x[i], mean=mean, std=std, train=train)
        assert_same_map(et.W[i], J, f"W vs jacobian, input {i}")
    return et


def _assert_paper_refuses(engine, *needles):
    with pytest.raises(NotPiecewiseLinear) as info:
        engine.etalons(random_images(1), method="paper")
    msg = str(info.value)
    assert "method='paper'" in msg and "method='fast'" in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


@pytest.mark.parametrize("make,part", SMOOTH)
def test_smooth_activation_gives_flagged_jacobian(make, part):
    model = make()
    engine = cpu_engine(model, TINY_SHAPE, mean=0.1, std=0.5)
    x = random_images(2, seed=21)
    et = _check_jacobian(engine, model, x, mean=0.1, std=0.5)
    assert et.exact is False
    assert part in et.reason and "not piecewise linear" in et.reason, et.reason
    _assert_paper_refuses(engine, part)


def test_sigmoid_map_is_a_tangent_plane_not_a_region_map():
    """With sigmoid inside, <W, x + d> + b misses f(x + d) by O(|d|^2) even where the ReLU and
    max-pool states stay put: the error is not zero and shrinks four-fold when d halves (so W
    is the true first derivative, and exact=False is deserved)."""
    model = tiny_mlp(7, activation="sigmoid")
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(1, seed=22)
    et = engine.etalons(x)
    pattern = engine.activation_pattern(x)
    d = random_images(1, seed=23) - 0.5
    for eps in (0.4, 0.2, 0.1, 0.05):
        if all(np.array_equal(engine.activation_pattern(x + e * d), pattern) for e in (eps, eps / 2)):
            break
    else:
        pytest.fail("no step keeps the ReLU pattern")
    errs = []
    for e in (eps, eps / 2):
        xe = x + e * d
        pred = (et.W.astype(np.float64) * xe.numpy()[:, None]).reshape(1, 5, -1).sum(-1) + et.b
        errs.append(max_abs(pred - reference_unit_values(model, xe, "")))
    assert errs[1] > 1e-5, errs
    assert 0.2 < errs[1] / errs[0] < 0.3, errs


def test_batchnorm_in_train_mode():
    """Engine(eval_mode=False) keeps the user's train mode: BatchNorm uses the batch's
    statistics, so the map is only the Jacobian of the one-image function (the batch is that
    image alone), flagged not exact; the running statistics must not move."""
    model = as_user_model(tiny_lenet(8, batchnorm=True))
    x = random_images(3, seed=24)
    with untouched(model):
        engine = cpu_engine(model, TINY_SHAPE, eval_mode=False)
        et = _check_jacobian(engine, model, x, train=True)     # images must not mix
        assert et.exact is False
        assert "BatchNorm2d 'bn2'" in et.reason and "train mode" in et.reason, et.reason
        _assert_paper_refuses(engine, "BatchNorm2d 'bn2'", "train mode")
        assert engine.predict(x).shape == (3, 5)


def test_batchnorm_in_train_mode_differs_from_eval():
    """Guard for the test above: with batch statistics the map really is a different one."""
    model = as_user_model(tiny_lenet(8, batchnorm=True))
    x = random_images(1, seed=24)
    w_train = cpu_engine(model, TINY_SHAPE, eval_mode=False).etalons(x).W
    w_eval = cpu_engine(model, TINY_SHAPE).etalons(x).W
    assert max_abs(w_train - w_eval) > 1e-3 * max_abs(w_eval)


def test_functional_relu_is_exact_and_algorithm1_replays_it():
    """F.relu calls are gate calls of the graph: Algorithm 1 and patterns see them (they
    refused this model before the graph)."""
    model = FunctionalReLUNet(9)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2, seed=25)
    et = _check_jacobian(engine, model, x)
    assert et.exact is True, et.reason
    assert_same_map(engine.etalons(x, method="paper").W, et.W, "paper vs fast")
    assert engine.gate_layers == ["relu", "pool", "relu:1"]
    assert engine.activation_pattern(x).shape == (2, 3 * 8 * 8 + 3 * 4 * 4 + 10)


def test_untraceable_model_is_flagged():
    model = UntraceableNet(10)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2, seed=26)
    et = _check_jacobian(engine, model, x)
    assert et.exact is False
    assert "traced" in et.reason, et.reason
    _assert_paper_refuses(engine, "traced")


@pytest.mark.parametrize("gate,part", [("prelu", "PReLU 'gate'")])   # ReLU6/Hardtanh: replayed
# since the matrix fix, see tests/engine/test_matrix_defects.py
def test_gates_algorithm1_cannot_replay(gate, part):
    """Piecewise linear, so the fast path is exact and equals the Jacobian; but Algorithm 1 only
    records ReLU/LeakyReLU masks and MaxPool1d/2d choices, so it must refuse rather than return
    a wrong W, and so must activation patterns (they would merge different regions)."""
    model = gated_conv_net(gate, 11)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2, seed=27) * 3          # big enough that ReLU6/Hardtanh saturate
    et = _check_jacobian(engine, model, x)
    assert et.exact is True, et.reason
    _assert_paper_refuses(engine, part)
    with pytest.raises(NotPiecewiseLinear, match=part):
        engine.activation_pattern(x)
    # a unit before the gate does not depend on it: Algorithm 1 is fine there
    fast = engine.etalons(x, layer="conv1", units=[(0, 3, 3)])
    paper = engine.etalons(x, layer="conv1", units=[(0, 3, 3)], method="paper")
    assert_same_map(fast.W, paper.W, "conv1 W")


def test_units_before_a_smooth_layer_are_exact():
    """A forward pass that stops at conv1 never reaches the sigmoid after it."""
    model = smooth_conv_net("sigmoid", 12)
    engine = cpu_engine(model, TINY_SHAPE, mean=0.2, std=0.7)
    x = random_images(2, seed=28)
    fast = engine.etalons(x, layer="conv1", units=[(1, 2, 2), (2, 7, 0)])
    assert fast.exact, fast.reason
    paper = engine.etalons(x, layer="conv1", units=[(1, 2, 2), (2, 7, 0)], method="paper")
    assert_same_map(fast.W, paper.W, "conv1 W")
    np.testing.assert_allclose(fast.b, paper.b, rtol=1e-5, atol=1e-6)
    assert engine.etalons(x).exact is False     # the logits are behind the sigmoid


def test_reused_relu_module():
    """`self.relu` called twice: Algorithm 1 records one mask per call (``relu``, ``relu:1``);
    it refused this model before the graph."""
    from cnn_widgets.testing import ReusedReLUNet
    model = ReusedReLUNet(13)
    engine = cpu_engine(model, TINY_SHAPE)
    x = random_images(2, seed=29)
    et = _check_jacobian(engine, model, x)
    assert et.exact
    assert_same_map(engine.etalons(x, method="paper").W, et.W, "paper vs fast")
    # its patterns include both calls: 3*8*8 + 3*4*4 ReLU states + 3*4*4 pool choices
    assert engine.activation_pattern(x).shape == (2, 192 + 48 + 48)
