"""Faults around the model: two engines on one model in two threads, and a KeyboardInterrupt
("Interrupt kernel") landing at a random moment of a call. Either way the user's model comes
back bitwise and mode-wise as it was, with no hooks, and the model's lock is free."""
import _thread
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch

from cnn_widgets import objectives as O
from cnn_widgets.engine.core.borrow import model_lock
from cnn_widgets.testing import (
    TINY_SHAPE,
    as_user_model,
    assert_model_untouched,
    hook_count,
    model_fingerprint,
    random_images,
    tiny_lenet,
)
from cnn_widgets.testing.reference import cpu_engine


def _user_model():
    """Train mode, conv1 frozen and the rest trainable: a restore that misses shows."""
    return as_user_model(tiny_lenet(0), frozen=("conv1",))


def _data(n):
    return random_images(n, seed=1), torch.arange(n) % 5


def _calls(x):
    """name -> call(engine) -> numpy arrays to compare."""
    return {
        "etalons-fast": lambda e: (e.etalons(x[:2]).W, e.etalons(x[:2]).b),
        "etalons-paper": lambda e: (e.etalons(x[:1], units=[0, 3], method="paper",
                                              one_hot_batch=16).W,),
        "top_images": lambda e: (e.top_images(("fc2", 1), k=4).indices,
                                 e.top_images(("fc2", 1), k=4).values),
        "maximize": lambda e: (e.maximize(O.logit(2), steps=8, n_starts=2).images,),
        "reconstruct": lambda e: (e.reconstruct(x[0], ("conv2", 1, 2, 2), method="all")
                                  .images["deconvnet"],),
        "count_regions": lambda e: (e.count_regions().total,),
        "gradcam": lambda e: (e.gradcam(x[:2]).maps,),
    }


def test_two_engines_one_model_in_two_threads():
    model = _user_model()
    before = model_fingerprint(model)
    x, y = _data(24)
    engines = [cpu_engine(model, TINY_SHAPE, dataset=(x, y), batch_size=b) for b in (4, 7)]
    calls = _calls(x)
    alone = {(i, name): call(e) for i, e in enumerate(engines) for name, call in calls.items()}
    assert_model_untouched(model, before)
    errors, mismatches = [], []

    def worker(i, rounds=20):
        order = list(calls)
        try:
            for r in range(rounds):
                for name in order[r % len(order):] + order[:r % len(order)]:
                    got = calls[name](engines[i])
                    for a, b in zip(got, alone[(i, name)]):
                        if not np.array_equal(np.asarray(a), np.asarray(b)):
                            mismatches.append((i, name, r))
        except BaseException as e:  # noqa: BLE001 - any escape is the failure we look for
            errors.append(f"engine {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    assert not errors, errors
    assert not mismatches, f"results differ from those computed alone: {mismatches[:5]}"
    assert_model_untouched(model, before)
    assert hook_count(model) == 0
    assert model.training and not model.conv1.weight.requires_grad
    assert model_lock(model).acquire(blocking=False)
    model_lock(model).release()


def _noop():
    """A Python call: a pending interrupt is delivered at its entry at the latest."""


def _time(call, repeat=3):
    call()                                  # warm-up (first-call tracing)
    t0 = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - t0) / repeat


def _interrupted_calls(model, calls, n=200, seed=0) -> int:
    """Run ``n`` calls, each with a KeyboardInterrupt due at a random moment inside it (the
    delay drawn up to 1.1 times the call's duration); assert after each that the model, its
    lock and the SIGINT handler are as before. Returns how many calls were interrupted."""
    before = model_fingerprint(model)
    handler = signal.getsignal(signal.SIGINT)
    durations = [_time(c) for c in calls]
    rng = np.random.default_rng(seed)
    interrupted = 0
    for i in range(n):
        k = i % len(calls)
        timer = threading.Timer(rng.uniform(0, 1.1 * durations[k]), _thread.interrupt_main)
        try:
            try:
                timer.start()
                calls[k]()
            finally:
                timer.cancel()              # the call ended first: not interrupted
                timer.join()
            _noop()
        except KeyboardInterrupt:
            interrupted += 1
        timer.join()
        try:
            assert_model_untouched(model, before)
        except AssertionError as e:
            raise AssertionError(f"call {i} (kind {k}): {e}") from None
        assert not model_lock(model)._is_owned(), f"call {i} (kind {k}) kept the model's lock"
        assert signal.getsignal(signal.SIGINT) is handler, f"call {i} left a SIGINT handler"
        assert torch.is_grad_enabled(), f"call {i} (kind {k}) left grad mode off"
    return interrupted


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals go to the main thread")
def test_keyboard_interrupt_at_random_moments_leaves_model_untouched():
    model = _user_model()
    x, y = _data(48)
    engine = cpu_engine(model, TINY_SHAPE, dataset=(x, y), batch_size=6)
    calls = [
        lambda: engine.top_images(("fc2", 1), k=3, batch_size=2),
        lambda: engine.maximize(O.logit(2), steps=12, n_starts=2),
        lambda: engine.etalons(x[:3]),
        lambda: engine.etalons(x[:1], units=[0, 1], method="paper", one_hot_batch=8),
    ]
    before = model_fingerprint(model)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)    # the timer's thread runs when due, not after 5 ms of bytecode
    try:
        interrupted = _interrupted_calls(model, calls)
    finally:
        sys.setswitchinterval(switch)
    # most calls are interrupted (about 2 in 3 on a quiet machine); a loaded machine stretches
    # the calls the delays were drawn for, so the bar is a quarter, still 50 interrupted calls
    assert interrupted >= 50, f"only {interrupted} of 200 calls were interrupted"
    engine.etalons(x[:1], method="paper")          # and the engine still works
    assert_model_untouched(model, before)
