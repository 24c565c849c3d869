"""Thread helpers for tests of the lock discipline."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_elsewhere(engine, timeout: float = 30.0) -> Iterator[None]:
    """Another thread borrows ``engine``'s model (as a long job would) for the with-block."""
    entered, release = threading.Event(), threading.Event()

    def hold():
        with engine.borrow():
            entered.set()
            release.wait(timeout)
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert entered.wait(10), "the other thread could not borrow the model"
    try:
        yield
    finally:
        release.set()
        t.join(10)
