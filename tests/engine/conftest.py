"""Engine tests run on the CPU unless a test asks for CUDA; the reference computations they
compare against live in cnn_widgets.testing.reference."""
import pytest
import torch
from torch import nn

from cnn_widgets import Engine
from cnn_widgets.testing.generators import TinyGenerator


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


def small_lenet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(200, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def inverse_set_setup():
    """(engine of small_lenet on 40 random images, a TinyGenerator, activations of layers
    '9' and '3' at 200 generated images): the inverse-set tests' problem."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 28, 28, generator=g)
    engine = Engine(small_lenet(), (1, 28, 28), dataset=(x, torch.arange(40) % 10), device="cpu")
    G = TinyGenerator()
    with torch.no_grad():
        acts = engine.activations(G(torch.randn(200, 8, generator=g)), ["9", "3"])
    return engine, G, acts
