"""Worker threads per engine: long work off the kernel's main thread, with progress, Stop,
and a newer request superseding an older one on the same key.

Two lanes, each its own daemon thread: ``"long"`` (maximize, inverse set, counting regions)
and ``"interactive"`` (a pad stroke, a click), so a short request never queues behind a long
job; the model lock is per model, so the interactive job runs as soon as the long one gives
the model back between its steps or chunks.

Every callback a job makes (progress, partial, result, stopped, error) goes through
:meth:`Job._emit`, under the runner's one lock, and is dropped once the job has been
superseded, so an old request never paints over a newer one. Progress and partial results
(``control.partial(value)`` of a capability) are throttled alike: at most one every
:data:`PROGRESS_INTERVAL_S`; of partials the latest is kept and delivered at the job's next
report or check once the interval is over, and always before its result (or its stop). So a
partial value must be the whole picture so far (every row done, not just the new one);
``control.partial_due()`` tells a capability when one would be taken, so it builds a costly
one (a live picture's class scores) only then.
Callbacks run on a worker thread; widgets may write their traits from there (measured live
in JupyterLab with ipykernel 7). Pure threading: no widget
import.

Lifetime: a runner holds no reference to its engine. Its threads end when the engine is
closed (``engine.close()`` or leaving ``with Engine(...)``), when it is garbage-collected,
or at interpreter exit.
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
from .engine.core.errors import Cancelled, CnnWidgetsError, InvalidArgument

PROGRESS_INTERVAL_S = 0.05     # at most ~20 progress (and partial) callbacks a second, plus the final one
LANES = ("long", "interactive")
_IDLE_POLL_S = 1.0             # an idle worker rechecks the closed flag this often
_NOTHING = object()            # no partial value pending


class RunnerClosed(CnnWidgetsError, RuntimeError):
    """A job was submitted to a runner whose engine has been closed."""


class Job:
    """One request. ``state``: pending, running, done, stopped, superseded or error."""

    def __init__(self, runner: JobRunner, key: str, fn: Callable[[Control], Any],
                 on_progress=None, on_result=None, on_stopped=None, on_error=None,
                 on_partial=None, lane: str = "long"):
        self.runner, self.key, self.fn, self.lane = runner, key, fn, lane
        self.on_progress, self.on_result, self.on_partial = on_progress, on_result, on_partial
        self.on_stopped, self.on_error = on_stopped, on_error
        self.state = "pending"
        self.request: Any = None       # what the submitter asked (a widget's Request)
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._superseded = False
        self._finished = threading.Event()
        self._last_report = 0.0
        self._last_partial = 0.0
        self._pending = _NOTHING       # the latest partial value not yet delivered

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

    def _partial(self, value: Any) -> None:
        """``control.partial(value)``: kept as the latest, delivered if the interval is over."""
        self._pending = value
        self._flush_partial()

    def _flush_partial(self, force: bool = False) -> None:
        """Deliver the pending partial if there is one and the interval is over (or ``force``)."""
        if self._pending is _NOTHING:
            return
        now = time.monotonic()
        if force or now - self._last_partial >= PROGRESS_INTERVAL_S:
            value, self._pending, self._last_partial = self._pending, _NOTHING, now
            self._emit(self.on_partial, value)

    def _partial_due(self) -> bool:
        """``control.partial_due()``: someone takes partials and the interval is over."""
        return (self.on_partial is not None
                and time.monotonic() - self._last_partial >= PROGRESS_INTERVAL_S)

    def _should_stop(self) -> bool:
        """Polled by every ``control.step``/``check``: a due partial goes out here too."""
        self._flush_partial()
        return self._stop.is_set() or self._superseded

    def _run(self) -> None:
        if self._stop.is_set() or self._superseded:
            self._end("superseded" if self._superseded else "stopped", self.on_stopped)
            return
        self.state = "running"
        start = time.perf_counter()
        try:
            control = Control(self._should_stop, self._report, self._partial,
                              self._partial_due)
            self.result = self.fn(control)
        except Cancelled:
            self.seconds = time.perf_counter() - start
            self._flush_partial(force=True)       # what was done before the stop is shown
            self._end("superseded" if self._superseded else "stopped", self.on_stopped)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt/SystemExit raised by a
            # job's own code must not kill the worker (signals never reach this thread)
            self.error, self.seconds = exc, time.perf_counter() - start
            self._end("error", self.on_error, exc, traceback.format_exc())
        else:
            self.seconds = time.perf_counter() - start
            self._flush_partial(force=True)       # the last partial always precedes the result
            self._end("done", self.on_result, self.result)

    def _end(self, state, callback, *args):
        self.state = state
        try:
            if state != "superseded":
                try:
                    self._emit(callback, *args)
                except BaseException as exc:  # noqa: BLE001 - a failing callback must not kill the worker
                    self.state, self.error = "error", exc
                    if callback is not self.on_error:
                        self._emit(self.on_error, exc, traceback.format_exc())
                    else:
                        traceback.print_exc()      # the error display itself failed
        except BaseException:  # noqa: BLE001 - on_error failed too: the worker lives on
            traceback.print_exc()
        finally:
            # drop the work and the callbacks: they hold the widget, hence the engine
            self.fn = self.on_progress = self.on_result = self.on_partial = None
            self.on_stopped = self.on_error = None
            self._pending = _NOTHING
            self._finished.set()


class JobRunner:
    """One queue and one daemon thread per lane (started on first use); one lock for every
    callback."""

    def __init__(self, name: str = "cnn_widgets-worker"):
        self.name = name
        self.lock = threading.RLock()
        self._wake = threading.Condition(self.lock)
        self._queues: dict[str, deque] = {lane: deque() for lane in LANES}
        self._threads: dict[str, threading.Thread] = {}
        self._latest: dict = {}
        self.closed = False
        _ALIVE.add(self)

    def submit(self, fn: Callable[[Control], Any], *, key: str = "default",
               lane: str = "long", **callbacks) -> Job:
        """Queue ``fn(control)`` on ``lane`` ("long" or "interactive"); the previous job with
        the same ``key`` is superseded (it stops at its next check and stays silent).
        Callbacks: on_progress(done, total, msg), on_partial(value) for each
        ``control.partial(value)`` of ``fn``, on_result(result), on_stopped(),
        on_error(exc, traceback_text)."""
        if lane not in LANES:
            raise InvalidArgument(f"lane must be one of {LANES}; got {lane!r}")
        job = Job(self, key, fn, lane=lane, **callbacks)
        with self._wake:
            if self.closed:
                raise RunnerClosed("this job runner has been shut down (its engine was closed)")
            old = self._latest.get(key)
            if old is not None:
                old._superseded = True
            self._latest[key] = job
            self._queues[lane].append(job)
            thread = self._threads.get(lane)
            if thread is None or not thread.is_alive():
                name = self.name if lane == "long" else f"{self.name}-{lane}"
                thread = threading.Thread(target=self._serve, args=(lane,), name=name,
                                          daemon=True)
                self._threads[lane] = thread
                thread.start()
            self._wake.notify_all()
        return job

    def stop(self, key: str | None = None) -> None:
        """Stop the latest job of ``key`` (all keys when None)."""
        with self.lock:
            for k, job in self._latest.items():
                if key is None or k == key:
                    job.stop()

    def forget(self, key: str) -> None:
        """Stop the latest job of ``key`` and keep nothing of it (its result included): its
        owner is gone. Takes no lock (safe in a finalizer)."""
        job = self._latest.pop(key, None)
        if job is not None:
            job.stop()

    def latest(self, key: str) -> Job | None:
        return self._latest.get(key)

    @property
    def threads(self) -> list[threading.Thread]:
        """The lanes' worker threads that are alive."""
        return [t for t in list(self._threads.values()) if t.is_alive()]

    def _serve(self, lane: str) -> None:
        queue = self._queues[lane]
        while True:
            with self._wake:
                while not queue and not self.closed:
                    self._wake.wait(_IDLE_POLL_S)
                if not queue:
                    return
                job = queue.popleft()
            try:
                job._run()
            except BaseException:  # noqa: BLE001 - last guard: the lane keeps serving
                traceback.print_exc()
                job._finished.set()

    def close(self) -> None:
        """Stop every job and let the threads end, without waiting (safe in a finalizer:
        takes no lock it could wait on)."""
        self.closed = True
        for job in list(self._latest.values()):
            job.stop()
        if self.lock.acquire(blocking=False):
            try:
                self._wake.notify_all()
            finally:
                self.lock.release()

    def shutdown(self, timeout: float = 2.0) -> None:
        """:meth:`close`, then join the threads (up to ``timeout`` s in all)."""
        self.close()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUNNERS_LOCK = threading.Lock()
_ALIVE: weakref.WeakSet = weakref.WeakSet()


def runner_for(engine) -> JobRunner:
    """The job runner of ``engine``, shared by all its widgets; a fresh one once the engine
    was closed. It ends with the engine: ``engine.close()``, or the engine collected."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(engine)
        if runner is None or runner.closed:
            runner = _RUNNERS[engine] = JobRunner()
            weakref.finalize(engine, runner.close).atexit = False
            on_close = getattr(engine, "on_close", None)
            if on_close is not None:
                on_close(runner.shutdown)
        return runner


@atexit.register
def _shutdown_all() -> None:
    """Stop and join every runner before IPython's exit hook (registered earlier, so it runs
    later) empties the namespace under a daemon thread."""
    runners = list(_ALIVE)
    for runner in runners:
        runner.close()
    deadline = time.monotonic() + 2.0
    for runner in runners:
        for thread in runner.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

