import threading
import time

import pytest

from cnn_widgets.engine.core.control import Control
from cnn_widgets.jobs import JobRunner


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


def test_result_and_progress_reach_callbacks(runner):
    seen, results = [], []
    job = runner.submit(slow(20), on_progress=lambda d, t, m: seen.append((d, t)),
                        on_result=results.append)
    assert job.wait(5)
    assert results == ["done"] and job.state == "done"
    assert seen[-1] == (20, 20)                                  # the final report always arrives
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)   # monotone
    assert len(seen) < 20                                        # throttled


def test_stop_reports_stopped_and_ends_early(runner):
    stopped, results, done = [], [], []
    job = runner.submit(slow(500), on_stopped=lambda: stopped.append(1), on_result=results.append,
                        on_progress=lambda d, t, m: done.append(d))
    time.sleep(0.1)
    job.stop()
    assert job.wait(5)
    assert job.state == "stopped" and stopped == [1] and results == []
    assert done and done[-1] < 500


def test_newer_request_supersedes_and_old_one_stays_silent(runner):
    old_calls, new_calls = [], []
    first = runner.submit(slow(500, result="old"), key="k", on_result=old_calls.append,
                          on_stopped=lambda: old_calls.append("stopped"))
    time.sleep(0.05)
    first.on_progress = lambda *a: old_calls.append("progress")   # anything from now on is a bug
    second = runner.submit(slow(3, result="new"), key="k", on_result=new_calls.append)
    assert second.wait(5) and first.wait(5)
    assert first.state == "superseded" and old_calls == [] and new_calls == ["new"]


def test_other_keys_are_not_superseded(runner):
    out = []
    a = runner.submit(slow(5, result="a"), key="a", on_result=out.append)
    b = runner.submit(slow(5, result="b"), key="b", on_result=out.append)
    assert a.wait(5) and b.wait(5)
    assert sorted(out) == ["a", "b"]


def test_errors_reach_on_error_with_traceback(runner):
    got = []

    def boom(control):
        raise RuntimeError("injected failure")
    job = runner.submit(boom, on_error=lambda e, tb: got.append((e, tb)))
    assert job.wait(5) and job.state == "error"
    assert isinstance(got[0][0], RuntimeError) and "injected failure" in got[0][1]
    assert runner.submit(slow(1), on_result=got.append).wait(5)   # the worker survived


def test_failing_callback_is_reported_not_lost(runner):
    got = []

    def bad_result(_):
        raise ValueError("render failed")
    job = runner.submit(slow(1), on_result=bad_result, on_error=lambda e, tb: got.append(tb))
    assert job.wait(5) and job.state == "error" and "render failed" in got[0]


def test_one_worker_thread_and_clean_shutdown():
    r = JobRunner(name="cnnw-test-worker")
    jobs = [r.submit(slow(2), key=str(i)) for i in range(5)]
    assert all(j.wait(5) for j in jobs)
    assert [t.name for t in threading.enumerate()].count("cnnw-test-worker") == 1
    r.shutdown()
    assert not any(t.name == "cnnw-test-worker" for t in threading.enumerate())
