"""torchvision costs ~180 MB of resident memory in a kernel: the notebooks' imports, and asking
whether the ImageNet VGG-16 weights are there, must not load it (classroom memory bar)."""
import os
import subprocess
import sys

from cnn_widgets.zoo.vgg import VGG16_FILE


def test_vgg16_file_is_torchvisions():
    from torchvision.models import VGG16_Weights

    assert VGG16_FILE == os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)


def test_notebook_imports_leave_torchvision_unloaded():
    code = ("import sys\n"
            "import cnn_widgets, cnn_widgets.widgets\n"
            "from cnn_widgets import zoo\n"
            "from cnn_widgets.zoo.two_class import CIFAR_CLASSES, cifar_two_class, other_digits\n"
            "from cnn_widgets.zoo.vgg import vgg16_checkpoint\n"
            "vgg16_checkpoint().exists()\n"
            "print(sorted(m for m in sys.modules if m.startswith('torchvision')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "[]", out.stdout
