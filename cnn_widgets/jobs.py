"""One worker thread per engine: long work off the kernel's main thread, with progress, Stop,
and a newer request superseding an older one on the same channel.

Every callback a job makes (progress, result, stopped, error) goes through :meth:`Job._emit`,
which drops it once the job has been superseded, so an old request never paints over a newer
one. Callbacks run on the worker thread; widgets may write their traits from there (measured
live in JupyterLab with ipykernel 7, see DESIGN.md). Pure threading: no widget import.
"""
from __future__ import annotations

import atexit
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from .engine.core.control import Control
from .engine.core.errors import Cancelled

PROGRESS_INTERVAL_S = 0.05     # at most ~20 progress callbacks a second, plus the final one


class Job:
    """One request. ``state``: pending, running, done, stopped, superseded or error."""

    def __init__(self, runner: JobRunner, key: str, fn: Callable[[Control], Any],
                 on_progress=None, on_result=None, on_stopped=None, on_error=None,
                 on_partial=None):
        self.runner, self.key, self.fn = runner, key, fn
        self.on_progress, self.on_result, self.on_partial = on_progress, on_result, on_partial
        self.on_stopped, self.on_error = on_stopped, on_error
        self.state = "pending"
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._superseded = False
        self._finished = threading.Event()
        self._last_report = 0.0

    def stop(self) -> None:
        """Ask the job to stop at its next check; it reports ``on_stopped``."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (any end state); True if it did."""
        return self._finished.wait(timeout)

    def _emit(self, callback: Callable | None, *args) -> None:
        """The one route from the worker to the outside: silent once superseded."""
        if callback is None:
            return
        with self.runner.lock:
            if self._superseded:
                return
            callback(*args)

    def _report(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_report >= PROGRESS_INTERVAL_S:
            self._last_report = now
            self._emit(self.on_progress, done, total, message)

    def _run(self) -> None:
        if self._stop.is_set() or self._superseded:
            self._end("superseded" if self._superseded else "stopped", self.on_stopped)
            return
        self.state = "running"
        start = time.perf_counter()
        try:
            control = Control(lambda: self._stop.is_set() or self._superseded, self._report,
                              lambda value: self._emit(self.on_partial, value))
            self.result = self.fn(control)
        except Cancelled:
            self.seconds = time.perf_counter() - start
            self._end("superseded" if self._superseded else "stopped", self.on_stopped)
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never lost
            self.error, self.seconds = exc, time.perf_counter() - start
            self._end("error", self.on_error, exc, traceback.format_exc())
        else:
            self.seconds = time.perf_counter() - start
            self._end("done", self.on_result, self.result)

    def _end(self, state, callback, *args):
        self.state = state
        try:
            if state != "superseded":
                try:
                    self._emit(callback, *args)
                except Exception as exc:  # noqa: BLE001 - a failing callback must not kill the worker
                    self.state, self.error = "error", exc
                    if callback is not self.on_error:
                        self._emit(self.on_error, exc, traceback.format_exc())
        finally:
            self._finished.set()


class JobRunner:
    """A queue of jobs served by one daemon thread, started on first use."""

    def __init__(self, name: str = "cnn_widgets-worker"):
        self.name = name
        self.lock = threading.RLock()
        self._queue: deque = deque()
        self._wake = threading.Condition(self.lock)
        self._latest: dict = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[[Control], Any], *, key: str = "default", **callbacks) -> Job:
        """Queue ``fn(control)``; the previous job with the same ``key`` is superseded (it
        stops at its next check and stays silent). Callbacks: on_progress(done, total, msg),
        on_partial(value) for each ``control.partial(value)`` of ``fn``, on_result(result),
        on_stopped(), on_error(exc, traceback_text)."""
        job = Job(self, key, fn, **callbacks)
        with self._wake:
            if self._closed:
                raise RuntimeError("this job runner has been shut down")
            old = self._latest.get(key)
            if old is not None:
                old._superseded = True
            self._latest[key] = job
            self._queue.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return job

    def stop(self, key: str | None = None) -> None:
        """Stop the latest job of ``key`` (all keys when None)."""
        with self.lock:
            for k, job in self._latest.items():
                if key is None or k == key:
                    job.stop()

    def latest(self, key: str) -> Job | None:
        return self._latest.get(key)

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed and not self._queue:
                    return
                job = self._queue.popleft()
            job._run()

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop everything and join the thread (registered with atexit, which runs before
        IPython clears the namespace under a daemon thread)."""
        with self._wake:
            self._closed = True
            for job in self._latest.values():
                job.stop()
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUNNERS_LOCK = threading.Lock()


def runner_for(engine) -> JobRunner:
    """The one job runner (worker thread) of ``engine``, shared by all its widgets."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(engine)
        if runner is None:
            runner = _RUNNERS[engine] = JobRunner()
            atexit.register(runner.shutdown)
        return runner
