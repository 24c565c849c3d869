"""A short request of another thread does not queue behind a long job on the same model: long
loops hand the model over between steps (core.borrow.hand_over), and the long job's hooks act
on its own thread only."""
import threading
import time

import numpy as np
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine import InverseSetSettings
from cnn_widgets.engine.core import hooks
from cnn_widgets.engine.core.borrow import model_lock
from cnn_widgets.testing import (
    TINY_SHAPE,
    assert_model_untouched,
    model_fingerprint,
    random_images,
    tiny_lenet,
)
from cnn_widgets.testing.reference import cpu_engine


def _latency_behind(engine, long_call, short_call, n=5):
    """Seconds each of ``n`` short calls took while ``long_call`` ran in another thread."""
    started, done, times = threading.Event(), threading.Event(), []

    def long_job():
        started.set()
        long_call()
        done.set()

    t = threading.Thread(target=long_job)
    t.start()
    started.wait()
    time.sleep(0.2)                       # the long job holds the model by now
    for _ in range(n):
        t0 = time.perf_counter()
        short_call()
        times.append(time.perf_counter() - t0)
        if done.is_set():
            break
    t.join()
    assert not done.is_set() or len(times) == n, "the long job ended before the short calls"
    return times


def test_predict_gets_in_between_maximize_steps():
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    x = random_images(2, seed=3)
    alone = engine.predict(x)
    got = []
    times = _latency_behind(
        engine, lambda: engine.maximize(O.logit(1), steps=3000, lr=0.01),
        lambda: got.append(engine.predict(x)))
    assert max(times) < 0.5, times          # one step of the long job is ~1 ms here
    for g in got:                           # the long job's hooks did not touch these passes
        np.testing.assert_array_equal(g, alone)


def test_etalons_get_in_between_inverse_set_steps():
    engine = cpu_engine(tiny_lenet(0), TINY_SHAPE)
    x = random_images(1, seed=4)
    alone = engine.etalons(x).W
    got = []
    times = _latency_behind(
        engine, lambda: engine.inverse_set(("fc2", 1), (0.0, 0.5), K=4, n=400,
                                           settings=InverseSetSettings(max_sampling_steps=3000)),
        lambda: got.append(engine.etalons(x).W), n=3)
    assert max(times) < 0.5, times
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
