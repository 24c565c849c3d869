"""The model's lock: re-entrant, knows its owner's depth on every supported Python (RLock's
own _recursion_count is 3.11+), refuses a release from another thread."""
import threading

import pytest
from torch import nn

from cnn_widgets.engine.core.borrow import ModelLock, model_lock


def test_one_lock_per_model_and_reentrant_depth():
    model = nn.Linear(2, 2)
    lock = model_lock(model)
    assert model_lock(model) is lock and model_lock(nn.Linear(2, 2)) is not lock
    assert lock._recursion_count() == 0 and not lock._is_owned()
    with lock:
        with lock:
            assert lock._recursion_count() == 2
        assert lock._recursion_count() == 1 and lock._is_owned()
    assert lock._recursion_count() == 0


def test_other_threads_wait_and_cannot_release():
    lock, seen = ModelLock(), {}
    lock.acquire()

    def other():
        seen["got"] = lock.acquire(timeout=0.05)
        seen["depth"] = lock._recursion_count()
        with pytest.raises(RuntimeError, match="does not hold"):
            lock.release()
        seen["checked"] = True

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == {"got": False, "depth": 0, "checked": True}
    lock.release()
    t = threading.Thread(target=lambda: seen.update(later=lock.acquire(timeout=1)))
    t.start()
    t.join()
    assert seen["later"] and not lock._is_owned()          # held by the (ended) other thread
