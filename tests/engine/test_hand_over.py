"""A short request of another thread does not queue behind a long job on the same model: long
loops hand the model over between steps (core.borrow.hand_over), and the long job's hooks act
on its own thread only."""
import threading

import numpy as np
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine import InverseSetSettings
from cnn_widgets.engine.core import hooks
from cnn_widgets.engine.core.borrow import model_lock
from cnn_widgets.engine.core.control import Control
from cnn_widgets.engine.core.errors import Cancelled
from cnn_widgets.testing import (
    TINY_SHAPE,
    assert_model_untouched,
    model_fingerprint,
    random_images,
    tiny_lenet,
)
from cnn_widgets.testing.reference import cpu_engine


def _latency_behind(engine, long_call, short_call, n=5):
    """Runs ``n`` short calls while ``long_call(control)`` runs in another thread. The long
    job runs until the short calls are done and it is told to stop, so a short call that
    waited for it would never end: they start once the long job polls its first stop check
    (it is inside its loop, holding the model), run in a thread of their own, given a
    minute (no machine is that slow), and must end while the long job still runs."""
    stepping, stop, ended, done = threading.Event(), threading.Event(), [], []

    def should_stop():
        stepping.set()
        return stop.is_set()

    def long_job():
        try:
            long_call(Control(should_stop=should_stop))
            ended.append("finished")
        except Cancelled:
            ended.append("stopped")

    def short_calls():
        for _ in range(n):
            short_call()
            done.append(1)

    t = threading.Thread(target=long_job)
    t.start()
    assert stepping.wait(60), "the long job never reached its loop"
    s = threading.Thread(target=short_calls, daemon=True)
    s.start()
    s.join(60)
    short_ended = not s.is_alive()
    stop.set()
    t.join()
    assert short_ended and len(done) == n, "the short calls waited for the long job"
    assert ended == ["stopped"], "the long job ended before the short calls"


def test_predict_gets_in_between_maximize_steps():
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    x = random_images(2, seed=3)
    alone = engine.predict(x)
    got = []
    _latency_behind(
        engine, lambda c: engine.maximize(O.logit(1), steps=10**9, lr=0.01, control=c),
        lambda: got.append(engine.predict(x)))
    for g in got:                           # the long job's hooks did not touch these passes
        np.testing.assert_array_equal(g, alone)


def test_etalons_get_in_between_inverse_set_steps():
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    x = random_images(1, seed=4)
    alone = engine.etalons(x).W
    got = []
    _latency_behind(
        engine, lambda c: engine.inverse_set(("fc2", 1), (0.0, 0.5), K=4, n=10**9, control=c,
                                            settings=InverseSetSettings(max_sampling_steps=10**9)),
        lambda: got.append(engine.etalons(x).W), n=3)
    for g in got:
        np.testing.assert_array_equal(g, alone)


def test_hooks_act_on_the_registering_thread_only():
    model = tiny_lenet(0).eval()
    x = random_images(2, seed=5)
    with torch.no_grad():
        plain = model(x)
    seen = []
    with hooks.hooked(model, {"conv1": lambda m, i, o: seen.append(1) or o * 0}):
        with torch.no_grad():
            other = []
            t = threading.Thread(target=lambda: other.append(model(x)))
            t.start()
            t.join()
            here = model(x)
    assert len(seen) == 1                                   # only this thread's pass
    torch.testing.assert_close(other[0], plain, rtol=0, atol=0)
    assert not torch.equal(here, plain)                     # the hook did act here


def test_hand_over_without_waiters_keeps_the_lock_and_the_model():
    model = tiny_lenet(0)
    engine = cpu_engine(model, TINY_SHAPE)
    before = model_fingerprint(engine.model)
    with engine.borrow():
        engine.hand_over()
        assert model_lock(engine.model)._is_owned()
    assert_model_untouched(engine.model, before)
