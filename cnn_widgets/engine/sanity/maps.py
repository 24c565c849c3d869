"""The maps a sanity check compares, each of one class logit per image, computed through an
engine's public methods (so this package imports no other paper package):

- ``etalon``: the etalon W of the class logit (etalons paper, eq. 1-3), ``engine.etalons``;
- ``deconvnet``, ``deconvnet_masks``, ``random_masks``, ``filter``: the probing paper's four
  backward reconstructions (eq. 4-9) of the class logit, ``engine.reconstruct``;
  ``deconvnet_masks`` is guided backpropagation (:data:`GUIDED_BACKPROP`);
- ``gradient``: the input gradient of the class logit by plain autograd (the paper's Gradient);
- ``gradcam``: Grad-CAM at the engine's default Grad-CAM layer, (1, H, W).

Every map is (C', H, W) per image in the engine's input space (C' = C, or 1 for Grad-CAM). On a
ReLU/max-pool network ``etalon``, ``filter`` and ``gradient`` are the same map.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..core import validate as check
from ..core.chunks import spans
from ..core.control import Control
from ..core.errors import Cancelled, InvalidArgument
from ..core.grad import needs_grad

RECONSTRUCTIONS = ("deconvnet", "deconvnet_masks", "random_masks", "filter")
METHODS = ("etalon", *RECONSTRUCTIONS, "gradient", "gradcam")
GUIDED_BACKPROP = "deconvnet_masks"


def method_list(methods) -> tuple[str, ...]:
    """``"all"``, one name or a list of names of :data:`METHODS` -> the names, in order."""
    if isinstance(methods, str):
        names = METHODS if methods == "all" else (methods,)
    else:
        names = tuple(check.name_list("methods", methods, "'gradient'"))
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise InvalidArgument(f"methods must be 'all' or names from {', '.join(METHODS)}; got "
                              f"{', '.join(map(repr, bad))}")
    return tuple(dict.fromkeys(names))


def n_groups(methods: tuple[str, ...]) -> int:
    """How many groups :func:`explain` yields for ``methods``."""
    return sum(m not in RECONSTRUCTIONS for m in methods) + any(m in RECONSTRUCTIONS for m in methods)


def predicted(engine, x: torch.Tensor, check_stop: Callable[[], None] = lambda: None
              ) -> np.ndarray:
    """(N,) int64: each image's predicted class, ``check_stop()`` after each chunk
    (:func:`~..core.chunks.spans`)."""
    out = []
    for s, e in spans(len(x), engine.batch_size):
        out.append(engine.predict(x[s:e]).argmax(1).astype(np.int64))
        check_stop()
    return np.concatenate(out)


def explain(engine, x: torch.Tensor, classes: np.ndarray, methods: tuple[str, ...],
            check_stop: Callable[[], None]) -> Iterator[dict[str, np.ndarray]]:
    """Per group of methods computed together (the reconstructions share one forward pass per
    image; every other method is its own group): method -> (N, C', H, W) float32 maps of class
    ``classes[i]`` at image ``x[i]``. ``check_stop()`` raises :class:`Cancelled` to stop; it is
    asked between any two forward+backward passes."""
    recon = [m for m in methods if m in RECONSTRUCTIONS]
    control = _quiet(check_stop)
    for m in methods:
        if m not in RECONSTRUCTIONS:
            yield {m: _ONE[m](engine, x, classes, control)}
        elif m == recon[0]:
            yield _reconstructions(engine, x, classes, recon, control)


def _quiet(check_stop: Callable[[], None]) -> Control:
    """A control for the engine calls inside one group: it stops when ``check_stop`` raises
    and reports nothing (their own progress would mix with the check's)."""
    def stopped() -> bool:
        try:
            check_stop()
        except Cancelled:
            return True
        return False
    return Control(should_stop=stopped)


def _by_class(x, classes, fn) -> np.ndarray:
    """``fn(images, c)`` -> (n, ...) called once per class present; stitched back in order."""
    out = None
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        got = np.asarray(fn(x[torch.as_tensor(idx, device=x.device)], int(c)), dtype=np.float32)
        if out is None:
            out = np.empty((len(x), *got.shape[1:]), dtype=np.float32)
        out[idx] = got
    assert out is not None            # classes: one per image of a non-empty batch
    return out


def _etalon(engine, x, classes, control):
    return _by_class(x, classes, lambda xs, c: engine.etalons(xs, units=[c],
                                                              control=control).W[:, 0])


def _gradcam(engine, x, classes, control):
    return _by_class(x, classes, lambda xs, c: engine.gradcam(xs, classes=[c],
                                                              control=control).maps)


@needs_grad
def _gradient(engine, x, classes, control):
    # batch statistics (eval_mode=False) would mix the images' gradients: one at a time
    most = engine.batch_size if engine.eval_mode else 1
    target = torch.as_tensor(classes, device=x.device)[:, None]
    out = []
    for s, e in spans(len(x), most):
        with engine.borrow(), torch.enable_grad():
            xs = x[s:e].detach().clone().requires_grad_(True)
            score = engine.layer_output(xs, engine.default_layer).gather(1, target[s:e])
            (g,) = torch.autograd.grad(score.sum(), xs)
            out.append(g.cpu())
        control.check()
    return torch.cat(out).numpy()


def _reconstructions(engine, x, classes, methods, control):
    out = {m: np.empty((len(x), *engine.input_shape), dtype=np.float32) for m in methods}
    for i in range(len(x)):
        r = engine.reconstruct(x[i], (engine.default_layer, int(classes[i])), method=methods,
                               control=control)
        for m in methods:
            out[m][i] = r.images[m]
        control.check()
    return out


_ONE = {"etalon": _etalon, "gradient": _gradient, "gradcam": _gradcam}
