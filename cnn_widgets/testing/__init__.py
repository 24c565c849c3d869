"""Test helpers: tiny closed-form models, reference computations and model-hygiene checks.

Used by the package's own tests; also handy for anyone extending the engine or the widgets.
``cnn_widgets.testing.reference`` holds forward passes and Jacobians computed without the
engine (on a deep copy), to compare the engine against.
"""
from ..engine.core.hooks import hook_count
from .hygiene import as_user_model, assert_model_untouched, model_fingerprint, no_leftover_hooks, untouched
from .models import (
                      TINY_CLASSES,
                      TINY_LENET_LAYERS,
                      TINY_SHAPE,
                      Boom,
                      FunctionalReLUNet,
                      ImageOutputNet,
                      ReorderedNet,
                      ReusedReLUNet,
                      TupleOutputNet,
                      UntraceableNet,
                      fig2_mlp,
                      gated_conv_net,
                      raising_lenet,
                      random_images,
                      smooth_conv_net,
                      tiny_lenet,
                      tiny_mlp,
)

__all__ = [
    "hook_count", "model_fingerprint", "assert_model_untouched", "no_leftover_hooks",
    "untouched", "as_user_model",
    "TINY_SHAPE", "TINY_CLASSES", "TINY_LENET_LAYERS", "tiny_lenet", "tiny_mlp",
    "smooth_conv_net", "gated_conv_net", "fig2_mlp", "FunctionalReLUNet", "UntraceableNet",
    "Boom", "raising_lenet", "ReorderedNet", "ReusedReLUNet", "ImageOutputNet",
    "TupleOutputNet", "random_images",
]
