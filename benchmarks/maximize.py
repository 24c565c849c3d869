"""Activation maximisation speed, side by side in one run on this machine.

- torchvision VGG-16 (random init, seeded), 128x128, the mean of channel 5 of conv4_3
  (``features.21``), Adam lr 0.05, jitter(8): optimisation steps per second of
  ``engine.maximize`` against a bare loop that runs only the layers the objective needs
  (``features[:22]``) with the same start, optimiser and jitter: the most any implementation
  can do. (A peer that runs the full forward pass, as Lucent does, can be beaten by at most
  ~1.28x here: the layers after conv4_3.) With Lucent installed, its rate is printed too.
- LeNet (the digits default), 28x28, channel 3 of ``conv2``, jitter(2): ours against Lucent's
  ``render_vis`` on the same model, size, transforms and step count; also without any
  transform.
- MaximizerPanel: a run with the live view (canvas, objective curve, class probabilities)
  against the same ascent headless (``engine.maximize``).

Lucent at its fastest honest setting: pixel parameterisation (``param.image(w, fft=False,
decorrelate=False)``, which still passes the pixels through a sigmoid), model weights frozen
(``requires_grad=False``), ``fixed_image_size`` at the same size so it does not upsample,
``preprocess`` only where the model expects ImageNet normalisation (VGG; ours normalises the
same way), no progress bar or image display, and the forward hooks it leaves on every module
removed after each call. Its ``jitter`` shifts with kornia's ``translate`` (an affine warp);
ours pads and crops by whole pixels, the same shift.

Lucent is a benchmark-only dependency, not in any extra: its pins (kornia<=0.4.1)
clash with new torch releases, so on torch 2.14 install it beside the package without its
dependencies and put it on the path:

    pip install --target /tmp/lucent_pkgs --no-deps torch-lucent "kornia<=0.4.1" decorator
    PYTHONPATH=/tmp/lucent_pkgs python benchmarks/maximize.py

Without Lucent the script says so, prints both Lucent bars as ``short`` naming the missing
package, and measures the bar it can (the live view).
Usage: python benchmarks/maximize.py [--quick]   (--quick: small sizes, for the smoke test)
"""
from __future__ import annotations

import argparse
import copy
import sys
import warnings

import torch
from _timing import bar, interleaved, missing

from cnn_widgets import Engine, MaximizerPanel
from cnn_widgets import objectives as O
from cnn_widgets.engine.visualization.regularizers import Jitter
from cnn_widgets.zoo import IMAGENET_MEAN, IMAGENET_STD, lenet_digits


def lucent():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lucent.optvis import param, render, transform
        return param, render, transform
    except ImportError as err:
        print(f"lucent not installed ({err}): the Lucent bars are not measured (short); see the "
              f"docstring for how to install it beside torch {torch.__version__}")
        return None


def versus_lucent(lu, name, model, engine, layer, channel, size, jitter, steps, repeat,
                  normalize):
    """steps/s of ours and Lucent's, with and without jitter; returns ours/Lucent (jitter)."""
    param, render, transform = lu
    c = engine.input_shape[0]
    ours_obj = O.channel(layer, channel)
    lucent_obj = f"{layer.replace('.', '_')}:{channel}"

    def ours(d):
        regs = [Jitter(d)] if d else []
        return lambda: engine.maximize(ours_obj, steps=steps, lr=0.05, regularizers=regs)

    def theirs(d):
        def run():
            render.render_vis(
                model, lucent_obj,
                param_f=lambda: param.image(size, fft=False, decorrelate=False,
                                            channels=None if c == 3 else c),
                optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
                transforms=[transform.jitter(d)] if d else [], thresholds=(steps,),
                preprocess=normalize, progress=False, show_image=False,
                fixed_image_size=size)
            for m in model.modules():                   # Lucent leaves its hooks behind
                m._forward_hooks.clear()
        return run

    t = interleaved({"ours": ours(jitter), "lucent": theirs(jitter),
                   "ours plain": ours(0), "lucent plain": theirs(0)}, repeat)
    rate = {k: steps / v for k, v in t.items()}
    print(f"{name} {size}x{size}, channel {channel} of {layer}, {steps} steps: "
          f"jitter({jitter}) ours {rate['ours']:.2f} steps/s, Lucent {rate['lucent']:.2f} "
          f"steps/s ({rate['ours'] / rate['lucent']:.2f}x); no transform ours "
          f"{rate['ours plain']:.2f}, Lucent {rate['lucent plain']:.2f} steps/s "
          f"({rate['ours plain'] / rate['lucent plain']:.2f}x)")
    return rate["ours"] / rate["lucent"]


def versus_bare(engine, model, layer_index, channel, size, jitter, steps, repeat):
    """steps/s of ``engine.maximize`` over steps/s of the bare truncated loop."""
    layer = f"features.{layer_index}"
    head = model.features[:layer_index + 1]
    x0 = torch.as_tensor(engine.start_images("noise", 1, seed=0))

    def ours():
        engine.maximize(O.channel(layer, channel), steps=steps, lr=0.05, start=x0,
                        regularizers=[Jitter(jitter)])

    def bare():
        x = x0.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.05)
        gen = torch.Generator().manual_seed(1)
        for _ in range(steps):
            dy, dx = torch.randint(0, jitter, (2,), generator=gen).tolist()
            shifted = torch.nn.functional.pad(x, (dx, 0, dy, 0))[:, :, :size, :size]
            value = head(engine.normalize(shifted))[:, channel].mean()
            (x.grad,) = torch.autograd.grad(-value, [x])
            opt.step()
        return x

    t = interleaved({"ours": ours, "bare": bare}, repeat)
    print(f"VGG-16 {size}x{size}, channel {channel} of {layer}, jitter({jitter}), {steps} steps: "
          f"ours {steps / t['ours']:.2f} steps/s, the bare truncated loop "
          f"{steps / t['bare']:.2f} steps/s")
    return t["bare"] / t["ours"]


def vgg(size):
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.vgg16().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    engine = Engine(model, (3, size, size), mean=IMAGENET_MEAN, std=IMAGENET_STD, device="cpu")
    return model, engine


def live_view(steps, repeat):
    """Seconds of the same ascent headless and in the widget (live drawing), LeNet."""
    engine = lenet_digits(device="cpu")
    panel = MaximizerPanel(engine, objective=O.logit(3), steps=steps, lr=0.05)

    def widget():
        panel.run()
        assert panel.wait(600) and panel.job("run").state == "done", panel.status.value

    def headless():
        engine.maximize(O.logit(3), steps=steps, lr=0.05)

    t = interleaved({"headless": headless, "live": widget}, repeat)
    slowdown = 100.0 * (t["live"] / t["headless"] - 1.0)
    print(f"MaximizerPanel, LeNet, {steps} steps: headless {t['headless'] * 1e3:.0f} ms, with "
          f"the live view {t['live'] * 1e3:.0f} ms ({steps / t['headless']:.0f} vs "
          f"{steps / t['live']:.0f} steps/s; slowdown {slowdown:.1f}%)")
    return slowdown


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    opts = args.parse_args(argv)
    torch.set_num_threads(1)        # a shared 2-core machine: one thread keeps ratios stable
    print(f"torch {torch.__version__}, 1 thread, CPU")
    lines = []
    lu = lucent()
    size = 64 if opts.quick else 128
    model, engine = vgg(size)
    vgg_steps, vgg_repeat = (3, 1) if opts.quick else (10, 3)
    r = versus_bare(engine, model, 21, 5, size, 8, vgg_steps, vgg_repeat)
    lines.append(bar(f"vgg16 {size}px maximize / bare truncated loop", r, ">=", 0.9))
    if lu is None:
        lines.append(missing("lenet 28px channel steps per s vs lucent", "torch-lucent", ">=",
                             1.2, "x"))
    else:
        versus_lucent(lu, "VGG-16", model, engine, "features.21", 5, size, 8, vgg_steps,
                      vgg_repeat, True)
        lenet = lenet_digits(device="cpu")
        frozen = copy.deepcopy(lenet.model).eval().requires_grad_(False)
        r = versus_lucent(lu, "LeNet", frozen, lenet, "conv2", 3, 28, 2,
                          30 if opts.quick else 200, 1 if opts.quick else 5, False)
        lines.append(bar("lenet 28px channel steps per s vs lucent", r, ">=", 1.2, "x"))
    slowdown = live_view(100 if opts.quick else 500, 2 if opts.quick else 7)
    lines.append(bar("live view slowdown vs headless", slowdown, "<=", 10, "%"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
