"""How long engine work reports progress and learns that it should stop.

The engine never imports a widget library: a job runner (``cnn_widgets.jobs``) or a script
passes a :class:`Control`; capabilities call :meth:`Control.step` between chunks.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import Cancelled


class Control:
    """Progress sink and stop flag for one piece of engine work.

    ``should_stop()`` -> bool is polled between chunks; ``report(done, total, message)`` gets
    progress (``done`` and ``total`` in the capability's own units, e.g. images);
    ``partial(value)`` gets intermediate results (a maximiser step, a batch of inverse-set
    samples) that a view may show before the work ends; ``partial_due()`` -> bool says whether
    one handed now would be taken (a throttled watcher: its interval is over).
    """

    def __init__(self, should_stop: Callable[[], bool] | None = None,
                 report: Callable[[int, int, str], None] | None = None,
                 partial: Callable[[Any], None] | None = None,
                 partial_due: Callable[[], bool] | None = None):
        self._should_stop = should_stop
        self._report = report
        self._partial = partial
        self._partial_due = partial_due

    def check(self) -> None:
        """Raise :class:`Cancelled` when the work should stop."""
        if self._should_stop is not None and self._should_stop():
            raise Cancelled("stopped")

    def partial(self, value: Any) -> None:
        """Hand an intermediate result to whoever watches the work (nothing by default)."""
        if self._partial is not None:
            self._partial(value)

    def partial_due(self) -> bool:
        """Whether an intermediate result handed over now would be used: someone watches and
        wants one now. A capability asks before it builds a costly one (an extra forward pass
        for a live picture's class scores)."""
        return self._partial is not None and (self._partial_due is None or self._partial_due())

    def step(self, done: int, total: int, message: str = "") -> None:
        """Report progress, then stop if asked to."""
        if self._report is not None:
            self._report(done, total, message)
        self.check()


NO_CONTROL = Control()
