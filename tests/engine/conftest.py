"""Engine tests run on the CPU unless a test asks for CUDA; the reference computations they
compare against live in cnn_widgets.testing.reference."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_grad_mode_check():
    """The models here are tiny: intra-op threads only add contention (on a loaded 2-core box a
    small conv2d takes 100x longer with 2 threads than with 1). Also every engine call must
    leave autograd's global mode as it found it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
    assert torch.is_grad_enabled(), "grad mode was left disabled"
