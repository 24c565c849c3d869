"""Input gradients of stride-1 2-D convolutions with ONE input channel (a grayscale model's
first layer), as a depthwise convolution with the flipped kernels summed over the outputs.

On the CPU, oneDNN computes such a conv's input gradient (a convolution with one output
channel) 3-8x slower than the depthwise route (measured for LeNet's first layer at batch 100:
transposed 12.9 ms, forward with the flipped kernel 4-7.8 ms, depthwise-and-sum 1.6-4 ms). With
more input channels autograd's own backward is as fast or faster (and a ResNet-50 etalon ran
2x slower when every conv was rerouted: the flipped weight copies), so only this case is
rerouted. The etalon fast path computes nothing but input gradients: inside
:func:`flipped_conv_grads` every eligible ``F.conv2d`` goes through a Function whose backward
is that route. Same numbers up to float rounding; its vmap rule lets ``torch.func.vmap`` batch
the backward over many units at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..core.borrow import deliver_held_interrupt, hold_interrupts
from ..core.shapes import pair


class _Conv2dFlippedGrad(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, padding):
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])
        ctx.padding = inputs[3]

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        pad = tuple(k - 1 - p for k, p in zip(weight.shape[-2:], ctx.padding))
        return _one_channel_grad(grad, weight, pad), None, None, None


def _one_channel_grad(grad, weight, pad):
    """The input gradient (B, 1, H, W) of a conv with one input channel, from ``grad``
    (B, O, h, w): each of the B*O planes correlated with its flipped kernel (a depthwise conv)
    and summed over O."""
    b, o = grad.shape[:2]
    kernels = weight.flip(-2, -1).repeat(b, 1, 1, 1)                  # (B*O, 1, kh, kw)
    planes = F.conv2d(grad.reshape(1, b * o, *grad.shape[2:]), kernels, None, 1, pad, 1, b * o)
    return planes.view(b, o, *planes.shape[2:]).sum(1, keepdim=True)


class flipped_conv_grads(TorchFunctionMode):
    """Context: route stride-1, dilation-1, ungrouped, zero-padded ``F.conv2d`` calls with one
    input channel and frozen weights through :class:`_Conv2dFlippedGrad`; every other call is
    left alone."""

    def __enter__(self):
        super().__enter__()
        try:
            deliver_held_interrupt()
        except BaseException:
            super().__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        super().__exit__(*exc)
        deliver_held_interrupt()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
            a = dict(zip(names, args), **kwargs)
            w, b, padding = a["weight"], a.get("bias"), a.get("padding", 0)
            if (w.shape[1] == 1 and a.get("groups", 1) == 1
                    and pair(a.get("stride", 1)) == (1, 1) and pair(a.get("dilation", 1)) == (1, 1)
                    and not isinstance(padding, str)
                    and not w.requires_grad and (b is None or not b.requires_grad)
                    and all(p <= k - 1 for p, k in zip(pair(padding), w.shape[-2:]))):
                return _Conv2dFlippedGrad.apply(a["input"], w, b, pair(padding))
        return func(*args, **kwargs)


hold_interrupts(flipped_conv_grads.__enter__, flipped_conv_grads.__exit__)
