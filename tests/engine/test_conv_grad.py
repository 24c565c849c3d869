"""flipped_conv_grads: input gradients of convolutions equal plain autograd's, under vmap too,
and calls it does not handle pass through untouched."""
import pytest
import torch
import torch.nn.functional as F

from cnn_widgets.engine.etalons.conv_grad import _Conv2dFlippedGrad, flipped_conv_grads

CASES = [dict(padding=0), dict(padding=1), dict(padding=2), dict(padding=(2, 1)),
         dict(padding=1, stride=2), dict(padding=1, dilation=2), dict(padding=1, groups=2),
         dict(padding="same")]


@pytest.mark.parametrize("kw", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("c_in", [4, 1])       # 1: the depthwise route (a grayscale first layer)
def test_input_gradient_matches_autograd(kw, bias, c_in):
    if c_in % kw.get("groups", 1):
        pytest.skip("groups must divide the input channels")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, c_in, 9, 11, generator=g)
    w = torch.randn(6, c_in // kw.get("groups", 1), 5, 3, generator=g)
    b = torch.randn(6, generator=g) if bias else None
    cot = torch.randn(2, *F.conv2d(x, w, b, **kw).shape, generator=g)

    def grads(mode):
        def vjp_rows():
            out, back = torch.func.vjp(lambda v: F.conv2d(v, w, b, **kw), x)
            return out, torch.func.vmap(back)(cot)[0]
        if mode:
            with flipped_conv_grads():
                return vjp_rows()
        return vjp_rows()
    (out_ref, ref), (out, got) = grads(False), grads(True)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_only_eligible_calls_are_rerouted(monkeypatch):
    calls = []
    original = _Conv2dFlippedGrad.apply
    monkeypatch.setattr(_Conv2dFlippedGrad, "apply",
                        staticmethod(lambda *a: calls.append(a[3]) or original(*a)))
    x, w = torch.randn(1, 1, 8, 8), torch.randn(3, 1, 3, 3)
    with flipped_conv_grads():
        F.conv2d(x, w, padding=1)
        F.conv2d(torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3), padding=1)  # 2 channels
        F.conv2d(x, w, stride=2)
        F.conv2d(x, w.clone().requires_grad_(True))      # a trainable weight: autograd's own way
        F.conv2d(x, w, padding="same")
    assert calls == [(1, 1)]
