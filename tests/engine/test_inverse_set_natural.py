"""Issues 17-18 on the inverse set: one validated settings value, the generator's prior on the
codes, and the three naturalness numbers every result carries (code norm against the prior's,
the share an independent network calls the units' class, the share inside the ranges)."""
import numpy as np
import pytest
import torch
from scipy.stats import chi2

from cnn_widgets import zoo
from cnn_widgets.engine import Engine, InvalidArgument, InvalidType
from cnn_widgets.engine import InverseSetSettings as S
from cnn_widgets.engine.inverse_set.objective import _Objective
from cnn_widgets.engine.inverse_set.problem import build_problem


@pytest.fixture(scope="module")
def setup(inverse_set_setup):
    engine, G, acts = inverse_set_setup
    return engine, G, tuple(float(v) for v in np.percentile(acts["9"][:, 2], [40, 70]))


@pytest.mark.parametrize("field,value,error,words", [
    ("lr", 0.0, InvalidArgument, ["lr", "> 0"]),
    ("lr", float("nan"), InvalidArgument, ["lr", "finite"]),
    ("mu0", -1.0, InvalidArgument, ["mu0", "> 0"]),
    ("mu_factor", 0.5, InvalidArgument, ["mu_factor", ">= 1"]),
    ("mu_max", 1.0, InvalidArgument, ["mu_max", ">= 10"]),
    ("prior_weight", -1.0, InvalidArgument, ["prior_weight", ">= 0"]),
    ("prior_weight", float("inf"), InvalidArgument, ["prior_weight", "finite"]),
    ("diversity_weight", "1", InvalidType, ["diversity_weight", "number"]),
    ("tv", -0.1, InvalidArgument, ["tv", ">= 0"]),
    ("tol", float("nan"), InvalidArgument, ["tol", "finite"]),
    ("margin", 0.5, InvalidArgument, ["margin", "< 0.5"]),
    ("code_norm", 0.0, InvalidArgument, ["code_norm", "> 0"]),
    ("min_norm_quantile", 1.0, InvalidArgument, ["min_norm_quantile", "< 1"]),
    ("min_norm_quantile", 0.0, InvalidArgument, ["min_norm_quantile", "> 0"]),
    ("beta", -0.2, InvalidArgument, ["beta", "> 0"]),
    ("inner_steps", 0, InvalidArgument, ["inner_steps", ">= 1"]),
    ("max_outer", 2.5, InvalidType, ["max_outer", "integer"]),
    ("max_steps", 0, InvalidArgument, ["max_steps", ">= 1"]),
    ("max_sampling_steps", -1, InvalidArgument, ["max_sampling_steps", ">= 0"]),
    ("diversity", "pixels", InvalidArgument, ["diversity", "'encoder'", "'pixels'"]),
    ("diversity_form", "mean", InvalidArgument, ["diversity_form", "'sum'"]),
    ("step", "adam", InvalidArgument, ["step", "'plain'"]),
    ("start", "noise", InvalidArgument, ["start", "'random'", "'noise'"]),
    ("full_seeds", 1, InvalidType, ["full_seeds", "True or False"]),
])
def test_settings_refuse_each_bad_field(field, value, error, words):
    with pytest.raises(error) as info:
        S(**{field: value})
    assert all(w in str(info.value) for w in words), str(info.value)


def test_settings_are_frozen_and_the_defaults_are_valid():
    s = S()
    with pytest.raises(AttributeError):
        s.lr = 1.0
    assert S(mu_max=None, code_norm=None, beta=None, max_outer=None).step_cap() == 15_000
    assert S().step_cap() is None and S(max_steps=7).step_cap() == 7


def test_the_prior_term_is_the_gaussian_penalty(setup):
    """With no diversity term the objective is prior_weight * mean_i ||c_i||^2 / (2 d) on codes,
    and nothing on pixels."""
    engine, G, rng = setup
    prob, _ = build_problem(engine, ("9", 2), rng, G, None, 0.25)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    obj = _Objective(prob, S(diversity="none", prior_weight=3.0), 1.0)
    want = 3.0 * sum(float((c ** 2).sum()) for c in z) / 5 / (2 * 8)
    assert float(obj.loss(z, None, None)) == pytest.approx(want, rel=1e-6)
    pix, _ = build_problem(engine, ("9", 2), rng, None, None, 0.25)
    x = torch.rand(3, 1, 28, 28)
    assert float(_Objective(pix, S(diversity="none", prior_weight=3.0, tv=0), 1.0)
                 .loss(x, x, None)) == 0.0


def renamed_judge(engine, seed=1):
    """Another network on the same inputs whose class names run backwards: '9' is its 0."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    return Engine(net, (1, 28, 28), class_names=[str(9 - i) for i in range(10)], device="cpu")


def test_naturalness_numbers_by_hand(setup):
    engine, G, rng = setup
    judge = renamed_judge(engine)
    res = engine.inverse_set(("9", 2), rng, generator=G, K=4, n=24, judge=judge)
    nat = res.naturalness
    norms = np.linalg.norm(res.codes, axis=1)
    lo, hi = np.sqrt(chi2.ppf([0.025, 0.975], 8))          # ||c||^2 ~ chi^2 with 8 dof
    assert nat.prior_interval == pytest.approx((lo, hi), rel=1e-6)
    assert nat.prior_norm == pytest.approx(np.sqrt(chi2.median(8)), rel=1e-6)
    assert nat.code_norm == pytest.approx(np.median(norms), rel=1e-6)
    assert nat.typical == pytest.approx(np.mean((norms >= lo) & (norms <= hi)))
    called = judge.predict(res.images).argmax(1)              # the judge's class 7 is named '2'
    assert nat.classes == (2,) and nat.judged == pytest.approx(np.mean(called == 7))
    assert nat.in_range == 1.0 and nat.judge == "Sequential"
    # a hidden unit has no class; pixel samples have no codes
    hidden = engine.inverse_set(("3", (3, 4, 4)), (-1e3, 1e3), generator=G, K=2, n=4, judge=judge)
    assert hidden.naturalness.classes == () and hidden.naturalness.judged is None
    pix = engine.inverse_set(("9", 2), rng, K=2, n=4, judge=judge)
    assert pix.naturalness.code_norm is None and pix.naturalness.typical is None
    assert pix.naturalness.judged == pytest.approx(np.mean(judge.predict(pix.images).argmax(1) == 7))


def test_baselines_carry_naturalness_and_their_share_inside(setup):
    engine, G, rng = setup
    judge = renamed_judge(engine)
    am = engine.inverse_set_restarts(("9", 2), rng, G, n=20, steps=10, judge=judge)
    assert am.naturalness.in_range == pytest.approx(am.share_in_range)
    assert am.naturalness.code_norm == pytest.approx(np.median(np.linalg.norm(am.codes, axis=1)),
                                                     rel=1e-6)
    mc = engine.inverse_set_mcmc(("9", 2), (-1e6, 1e6), G, n=10, chains=5, steps=4, judge=judge)
    assert mc.n == 10 and mc.naturalness.in_range == 1.0
    assert mc.naturalness.judged == pytest.approx(np.mean(judge.predict(mc.images).argmax(1) == 7))


def test_judge_must_take_the_same_inputs(setup):
    engine, G, rng = setup
    other = Engine(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10)),
                   (3, 8, 8), device="cpu")
    with pytest.raises(InvalidArgument, match=r"judge must take the engine's inputs \(1, 28, 28\)"
                                              r".*\(3, 8, 8\)"):
        engine.inverse_set(("9", 2), rng, generator=G, K=2, n=2, judge=other)


def test_codes_stay_where_the_prior_has_its_mass_and_the_judge_agrees():
    """Regression (issue 18, item 1): with the paper's free codes the sampling steps carried
    the codes to about 4x the prior's typical norm and another network called few samples the
    unit's class. The default prior term keeps them inside the prior's 95 % shell and the
    samples are mostly the class; the paper's setting (no prior, beta 0.5) is the control."""
    engine, G, judge = zoo.lenet_digits(), zoo.digits_generator(), zoo.resnet_digits()
    kw = dict(generator=G, K=10, n=100, judge=judge)
    ours = engine.inverse_set(("fc3", 0), (10, 12), **kw).naturalness
    paper = engine.inverse_set(("fc3", 0), (10, 12), settings=S(prior_weight=0, beta=0.5),
                               **kw).naturalness
    lo, hi = ours.prior_interval
    assert lo <= ours.code_norm <= hi and ours.typical >= 0.5
    assert ours.judged >= 0.5 and ours.in_range == 1.0
    assert paper.code_norm > hi and paper.judged < ours.judged          # the control


def test_the_floor_keeps_codes_off_the_origin(setup):
    engine, G, rng = setup
    floor = float(np.sqrt(chi2.ppf(0.2, 8)))
    res = engine.inverse_set(("9", 2), rng, generator=G, K=4, n=20,
                             settings=S(min_norm_quantile=0.2, code_norm=2.0))
    norms = np.linalg.norm(res.codes, axis=1)
    assert norms.min() >= floor * (1 - 1e-5) and norms.max() <= 2.0 * np.sqrt(8) * (1 + 1e-5)
    with pytest.raises(InvalidArgument, match=r"code_norm \* sqrt\(d\) = 0.283 is below the floor"):
        engine.inverse_set(("9", 2), rng, generator=G, K=2, n=2, settings=S(code_norm=0.1))


def test_the_prior_alone_does_not_collapse_codes_to_the_origin():
    """Regression (found here): the prior term alone pulled the class-8 codes to a median norm
    of about 1 (the VAE's origin draws an 8), 6 % of them in the prior's 95 % shell, and halved
    the diversity; the floor at the prior's 5 % quantile keeps them in the shell."""
    engine, G = zoo.lenet_digits(), zoo.digits_generator()
    kw = dict(generator=G, K=10, n=100)
    ours = engine.inverse_set(("fc3", 8), (6, 8), **kw)
    alone = engine.inverse_set(("fc3", 8), (6, 8), settings=S(min_norm_quantile=None), **kw)
    lo = float(np.sqrt(chi2.ppf(0.05, 16)))
    assert np.linalg.norm(ours.codes, axis=1).min() >= lo * (1 - 1e-5)
    assert ours.naturalness.typical >= 0.9
    assert alone.naturalness.code_norm < ours.naturalness.prior_interval[0]     # the control
