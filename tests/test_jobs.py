import gc
import threading
import time
import weakref

import pytest
import torch

from cnn_widgets.engine.core.control import Control
from cnn_widgets.jobs import JobRunner, runner_for


def slow(steps, dt=0.01, result="done"):
    def fn(control: Control):
        for i in range(1, steps + 1):
            time.sleep(dt)
            control.step(i, steps, "slow")
        return result
    return fn


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown()


def test_result_and_progress_reach_callbacks(runner, monkeypatch):
    import cnn_widgets.jobs as jobs
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_S", 3600.0)     # throttled on a slow machine too
    seen, results = [], []
    job = runner.submit(slow(20), on_progress=lambda d, t, m: seen.append((d, t)),
                        on_result=results.append)
    assert job.wait(30)
    assert results == ["done"] and job.state == "done"
    assert seen[-1] == (20, 20)                                  # the final report always arrives
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)   # monotone
    assert len(seen) < 20                                        # throttled


def test_stop_reports_stopped_and_ends_early(runner):
    stopped, results, done, running = [], [], [], threading.Event()

    def progress(d, t, m):
        done.append(d)
        running.set()
    job = runner.submit(slow(500), on_stopped=lambda: stopped.append(1), on_result=results.append,
                        on_progress=progress)
    assert running.wait(30)
    job.stop()
    assert job.wait(30)
    assert job.state == "stopped" and stopped == [1] and results == []
    assert done and done[-1] < 500


def test_newer_request_supersedes_and_old_one_stays_silent(runner):
    old_calls, new_calls = [], []
    first = runner.submit(slow(500, result="old"), key="k", on_result=old_calls.append,
                          on_stopped=lambda: old_calls.append("stopped"))
    time.sleep(0.05)
    first.on_progress = lambda *a: old_calls.append("progress")   # anything from now on is a bug
    second = runner.submit(slow(3, result="new"), key="k", on_result=new_calls.append)
    assert second.wait(30) and first.wait(30)
    assert first.state == "superseded" and old_calls == [] and new_calls == ["new"]


def test_other_keys_are_not_superseded(runner):
    out = []
    a = runner.submit(slow(5, result="a"), key="a", on_result=out.append)
    b = runner.submit(slow(5, result="b"), key="b", on_result=out.append)
    assert a.wait(30) and b.wait(30)
    assert sorted(out) == ["a", "b"]


def test_errors_reach_on_error_with_traceback(runner):
    got = []

    def boom(control):
        raise RuntimeError("injected failure")
    job = runner.submit(boom, on_error=lambda e, tb: got.append((e, tb)))
    assert job.wait(30) and job.state == "error"
    assert isinstance(got[0][0], RuntimeError) and "injected failure" in got[0][1]
    assert runner.submit(slow(1), on_result=got.append).wait(30)   # the worker survived


def test_failing_callback_is_reported_not_lost(runner):
    got = []

    def bad_result(_):
        raise ValueError("render failed")
    job = runner.submit(slow(1), on_result=bad_result, on_error=lambda e, tb: got.append(tb))
    assert job.wait(30) and job.state == "error" and "render failed" in got[0]


def test_one_worker_thread_and_clean_shutdown():
    r = JobRunner(name="cnnw-test-worker")
    jobs = [r.submit(slow(2), key=str(i)) for i in range(5)]
    assert all(j.wait(30) for j in jobs)
    assert [t.name for t in threading.enumerate()].count("cnnw-test-worker") == 1
    r.shutdown()
    assert not any(t.name == "cnnw-test-worker" for t in threading.enumerate())


class Custom(BaseException):
    pass


@pytest.mark.parametrize("exc", [KeyboardInterrupt("ctrl-c in a job"), SystemExit(3),
                                 Custom("<b>custom</b>")])
def test_a_base_exception_is_reported_and_the_worker_survives(runner, exc):
    got = []

    def boom(control):
        control.step(1, 50, "maximize")
        raise exc
    job = runner.submit(boom, on_error=lambda e, tb: got.append((e, tb)))
    assert job.wait(30) and job.state == "error" and job.error is exc
    assert got and got[0][0] is exc and type(exc).__name__ in got[0][1]
    assert runner.submit(slow(1), on_result=got.append).wait(30) and got[-1] == "done"
    assert len(runner.threads) == 1


def test_a_failing_error_callback_does_not_kill_the_worker(runner, capsys):
    def bad_error(e, tb):
        raise KeyboardInterrupt("the error display failed")

    def boom(control):
        raise Custom("x")
    assert runner.submit(boom, on_error=bad_error).wait(30)
    assert "the error display failed" in capsys.readouterr().err
    assert runner.submit(slow(1)).wait(30) and len(runner.threads) == 1


def test_an_interactive_job_does_not_queue_behind_a_long_one(runner):
    """The quick job ends while the long one (which runs until it is stopped) still runs: on
    any machine, it did not wait for it."""
    running = threading.Event()
    long = runner.submit(slow(10**9, 0.01), key="long", on_progress=lambda *a: running.set())
    assert running.wait(30)
    quick = runner.submit(slow(1, 0.0), key="quick", lane="interactive")
    assert quick.wait(60) and quick.state == "done"
    assert long.state == "running"
    long.stop()
    assert long.wait(60) and long.state == "stopped"
    with pytest.raises(ValueError, match="lane must be one of"):
        runner.submit(slow(1), lane="fast")


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("cnn_widgets-worker")]


def tiny_engine():
    from cnn_widgets import Engine
    from cnn_widgets.testing.models import TINY_SHAPE, random_images, tiny_lenet
    return Engine(tiny_lenet(), TINY_SHAPE, dataset=(random_images(8), torch.arange(8) % 5),
                  device="cpu")


def wait_until(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.02)
    return condition()


def test_dropped_engines_are_collected_and_their_threads_end():
    # this test's own threads: other tests' engines may be collected meanwhile, so no counting
    refs, threads = [], []
    for _ in range(10):
        engine = tiny_engine()
        runner = runner_for(engine)
        x = engine.dataset.images[:2]
        assert runner.submit(lambda control, e=engine: e.predict(x, control=control)).wait(30)
        assert runner.submit(lambda control, e=engine: e.predict(x), lane="interactive").wait(30)
        refs.append(weakref.ref(engine))
        threads.extend(runner.threads)
        del engine, runner
    assert len(threads) == 20
    gc.collect()
    assert [r() for r in refs] == [None] * 10                    # every engine collected
    assert wait_until(lambda: not any(t.is_alive() for t in threads)), threads


def test_leaving_with_engine_ends_its_threads():
    before = len(worker_threads())
    with tiny_engine() as engine:
        runner = runner_for(engine)
        runner.submit(slow(1)).wait(30)
        runner.submit(slow(1), lane="interactive").wait(30)
        assert len(runner.threads) == 2 and len(worker_threads()) == before + 2
    assert runner.closed and runner.threads == [] and len(worker_threads()) == before
    fresh = runner_for(engine)                  # the engine is usable again: a new runner
    assert fresh is not runner and fresh.submit(slow(1)).wait(30)
    engine.close()
    assert fresh.threads == []


def test_partials_are_throttled_keeping_the_latest_and_the_last_precedes_the_result(runner):
    from cnn_widgets.jobs import PROGRESS_INTERVAL_S
    seen, span = [], {}

    def many(control):
        start = time.monotonic()
        for i in range(2000):
            control.partial(i)
        span["s"] = time.monotonic() - start
        return "done"
    job = runner.submit(many, on_partial=lambda v: seen.append(v),
                        on_result=lambda r: seen.append(r))
    assert job.wait(30)
    assert seen[-2:] == [1999, "done"]                           # the last one, then the result
    assert seen[:-1] == sorted(seen[:-1])                        # in order, none twice
    assert len(seen) - 1 <= 2 + span["s"] / PROGRESS_INTERVAL_S  # at most one per interval


def test_a_pending_partial_goes_out_at_the_next_check_without_waiting_for_a_newer_one(runner):
    seen, arrived = [], threading.Event()

    def pause_after_two(control):
        control.partial("first")
        control.partial("second")          # within the interval: kept, not sent yet
        end = time.monotonic() + 60        # long work, checking for Stop between its steps
        while time.monotonic() < end:
            control.check()
            if arrived.wait(0.01):
                return "done"
        return "second never came while the job ran"

    def got(value):
        seen.append(value)
        if value == "second":
            arrived.set()
    job = runner.submit(pause_after_two, on_partial=got, on_result=seen.append)
    assert job.wait(30) and job.state == "done"
    assert seen == ["first", "second", "done"]                   # "second" came while it ran


def test_the_rows_done_before_a_stop_are_delivered_before_on_stopped(runner):
    seen, started, stopped = [], threading.Event(), threading.Event()

    def stopped_after_partials(control):
        control.partial(1)
        control.partial(2)
        started.set()
        assert stopped.wait(30)
        control.check()
    job = runner.submit(stopped_after_partials, on_partial=seen.append,
                        on_stopped=lambda: seen.append("stopped"))
    assert started.wait(30)
    job.stop()
    stopped.set()
    assert job.wait(30) and job.state == "stopped"
    assert seen == [1, 2, "stopped"]


def test_a_job_says_when_a_partial_is_due(runner, monkeypatch):
    """``control.partial_due()``: someone takes partials and the interval since the last one
    is over (the capability builds a costly live picture only then)."""
    import cnn_widgets.jobs as jobs
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_S", 3600.0)     # the next one: never, here
    asked = []

    def fn(control):
        asked.append(control.partial_due())                       # the first: at once
        control.partial("first")
        asked.append(control.partial_due())                       # within the interval
    assert runner.submit(fn, on_partial=lambda v: None).wait(30)
    assert runner.submit(fn).wait(30)                              # nobody takes partials
    assert asked == [True, False, False, False]
