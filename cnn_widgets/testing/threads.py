"""Thread helpers for tests of the lock discipline."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def held_elsewhere(engine, timeout: float = 30.0) -> Iterator[Callable[[], bool]]:
    """Another thread borrows ``engine``'s model (as a long job would) for the with-block,
    and gives it back only at the block's end or after ``timeout`` seconds. Yields
    ``still_held()``: True while it has not given the model back, so code that ran before
    ``still_held()`` did not wait for the model (on any machine: no time is measured)."""
    entered, release, given_back = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with engine.borrow():
            entered.set()
            release.wait(timeout)
            given_back.set()
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert entered.wait(10), "the other thread could not borrow the model"
    try:
        yield lambda: not given_back.is_set()
    finally:
        release.set()
        t.join(10)
