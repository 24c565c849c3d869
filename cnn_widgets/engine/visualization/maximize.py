"""Gradient ascent on the input: x* = argmax Φ(x) − Σ λ R(x) (visualization paper, eq. 1-2).

:func:`iterate_maximize` is the streaming core: it yields :class:`MaximizeStep` (step, the
objective's values, the images, the class scores) so a widget can draw it live and a script
can loop it; :func:`maximize` runs it to the end. Several starts run as one batch. Only the
input gets gradients (``torch.autograd.grad``): the model's parameters keep ``.grad = None``.
The forward pass stops at the deepest layer the objective reads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InvalidArgument, InvalidType, NonFiniteResult, UnitOutOfRange
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.noise import gaussian_noise
from ..core.types import Regularizers, Seed, Start, Target
from .objectives import Objective, as_objective
from .regularizers import split

# Layer outputs (floats, summed up to the objective's layer, times the starts) above which the
# starts are differentiated in chunks: 20M floats ~ 80 MB of activations kept for backward.
_GRAD_FLOATS = 20_000_000


@dataclass(frozen=True)
class MaximizeStep:
    """The state before update ``step`` (``step == total``: the final images).

    values: (N,) objective Φ (without penalties; with a Jitter regulariser, Φ of the jittered
    input except on the final step); images: (N, C, H, W) in the engine's input space, never
    jittered; logits: (N, classes) of ``images``, None when not asked for (the final step
    always has them);
    trace, penalty_trace: (step, N) Φ and Σ λ R before every update so far ((total, N) on the
    final step).
    """
    step: int
    total: int
    values: np.ndarray
    images: np.ndarray
    logits: np.ndarray | None
    trace: np.ndarray | None = None
    penalty_trace: np.ndarray | None = None

    @property
    def final(self) -> bool:
        return self.step == self.total

    @property
    def probabilities(self) -> np.ndarray | None:
        return None if self.logits is None else softmax(self.logits)


@dataclass(frozen=True)
class MaximizeResult:
    """images: (N, C, H, W) final images; start: (N, C, H, W) where they began; values: (N,)
    final Φ; logits: (N, classes) of the final images; trace: (steps, N) Φ before each
    update; penalty_trace: (steps, N) Σ λ R before each update; objective: its description."""
    images: np.ndarray
    start: np.ndarray
    values: np.ndarray
    logits: np.ndarray
    trace: np.ndarray
    penalty_trace: np.ndarray
    objective: str

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities (N, classes) from logits (N, classes)."""
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def start_images(engine: ModelHost, start: Start = "noise", n_starts: int = 1, seed: Seed = 0,
                 indices: Sequence[int] | None = None) -> torch.Tensor:
    """(N, C, H, W) starting images on the engine's device.

    start: "noise" (Gaussian with the dataset's channel mean and std; without a dataset the
    engine's mean/std), "dataset" (``indices``, default the first ``n_starts`` images), or
    images (C, H, W) / (N, C, H, W).
    """
    n_starts, seed = check.count("n_starts", n_starts), check.seed(seed)
    if isinstance(start, str):
        if start == "noise":
            return engine.prepare(gaussian_noise(engine, n_starts, seed))
        if start == "dataset":
            if engine.dataset is None:
                raise InvalidArgument("start='dataset' needs an engine with a dataset")
            idx = list(range(int(n_starts))) if indices is None else [int(i) for i in indices]
            n = len(engine.dataset)
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise UnitOutOfRange(f"dataset indices {bad} out of range: expected 0 <= i < {n}")
            return engine.prepare(engine.dataset.images[idx])
        raise InvalidArgument(f"start must be 'noise', 'dataset' or images; got {start!r}")
    return engine.prepare(start)


def _clamp(clamp) -> tuple[float, float] | None:
    """None, or (lo, hi) with finite lo < hi."""
    if clamp is None:
        return None
    try:
        lo, hi = (float(v) for v in clamp)
    except (TypeError, ValueError):
        raise InvalidType(f"clamp must be None or (lo, hi); got {clamp!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidArgument(f"clamp must be (lo, hi) with finite lo < hi; got {clamp!r}")
    return lo, hi


class _Stop(Exception):
    """Raised in a hook once the deepest layer the objective reads has run."""


@needs_grad
def iterate_maximize(engine: ModelHost, objective: Target, *, steps: int = 256,
                     start: Start = "noise", n_starts: int = 1, lr: float = 0.05,
                     optimizer: str = "adam", regularizers: Regularizers = None, seed: Seed = 0,
                     indices: Sequence[int] | None = None,
                     every: int | None | Callable[[int], bool] = 1, predict: bool = True,
                     clamp: tuple[float, float] | None = None,
                     control: Control = NO_CONTROL) -> Iterator[MaximizeStep]:
    """Yield a :class:`MaximizeStep` before every ``every``-th update and after the last one.

    every: an int k (steps 0, k, 2k, ...), None (only the final step) or a function
    step -> bool asked before each update (a widget passes a clock-based one).
    objective: an :mod:`objectives` objective or a (layer, unit) pair; optimizer: "adam" or
    "sgd"; regularizers: :mod:`regularizers` objects (penalties, gradient trick, jitter);
    seed: noise start and the random draws of the gradient trick and jitter; predict: give
    each yielded step the class scores (one extra forward pass when the objective stops
    before the logits or the input is jittered); clamp: (lo, hi) to keep pixels in.
    The model is borrowed for the run of steps between two yields, not across a yield.
    """
    obj: Objective = as_objective(objective).bind(engine)
    steps, lr = check.count("steps", steps), check.number("lr", lr, above=0)
    clamp = _clamp(clamp)
    if every is None:
        wanted = lambda t: False                      # noqa: E731
    elif callable(every):
        wanted = every
    else:
        k = check.count("every", every)
        wanted = lambda t: t % k == 0                 # noqa: E731
    x = start_images(engine, start, n_starts, seed, indices).requires_grad_(True)
    penalties, tricks, transforms = split(regularizers, engine)
    opt: torch.optim.Optimizer
    if optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([x], lr=lr)
    else:
        raise InvalidArgument(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    gen = torch.Generator().manual_seed(int(seed) + 1)
    names = engine.layer_names
    last = max(obj.layers, key=names.index)
    logits_layer = engine.default_layer
    reaches_logits = names.index(last) >= names.index(logits_layer)
    captured: dict = {}

    def capture(name):
        def hook(module, inputs, output):
            if name == last:          # nothing runs after it: no later in-place op can reach it
                captured[name] = output
                raise _Stop
            captured[name] = output.clone()
        return hook

    capture_hooks = {n: capture(n) for n in set(obj.layers) | ({logits_layer} if reaches_logits
                                                                else set())}
    # images per forward/backward pass: the starts go through in chunks when one image's
    # activations up to ``last`` are large (VGG-16 at 224 px: one at a time), to bound memory
    chunk = max(1, _GRAD_FLOATS // max(1, sum(i.n_units for i in engine.layers[:names.index(last) + 1])))

    def forward(inp):
        captured.clear()
        try:
            hooks.forward(engine.model, engine.normalize(inp))
        except _Stop:
            pass
        return dict(captured)

    trace, pen_trace = [], []
    t = 0

    def advance() -> MaximizeStep:
        """Take steps until one is to be shown (the model borrowed throughout)."""
        nonlocal t
        with engine.borrow():
            with hooks.hooked(engine.model, capture_hooks):
                while True:
                    shown_t = t
                    if t == steps:
                        break
                    show = wanted(t)
                    with torch.enable_grad():
                        inp = x
                        for tr in transforms:
                            inp = tr.transform(inp, gen)
                        penalty = torch.zeros(len(x), device=x.device)
                        for p in penalties:
                            penalty = penalty + p.weight * p.penalty(x)
                        if chunk >= len(x):
                            outs = forward(inp)
                            values = obj.evaluate(outs)
                            (g,) = torch.autograd.grad(-(values - penalty).sum(), [x])
                        else:
                            values, outs, g = _chunked_grad(forward, obj, inp, x, chunk)
                            if penalties:
                                g = g + torch.autograd.grad(penalty.sum(), [x])[0]
                    values = values.detach()
                    trace.append(values)
                    pen_trace.append(penalty.detach())
                    if show:
                        shown = x.detach().clone()
                        if transforms:
                            outs = None          # the scores of the jittered image: not shown
                    for trick in tricks:
                        g = trick.apply(g, gen)
                    x.grad = g
                    opt.step()
                    x.grad = None
                    if clamp is not None:
                        with torch.no_grad():
                            x.clamp_(*clamp)
                    t += 1
                    control.step(t, steps, "maximize")
                    engine.hand_over()          # a short request of another thread goes first
                    if show:
                        break
            final = shown_t == steps
            if final:   # the final images without jitter: objective and scores in one pass
                shown, deepest = x.detach().clone(), max(last, logits_layer, key=names.index)
                with torch.no_grad():
                    outs = hooks.run_capturing(engine.model, engine.normalize(shown),
                                               [*obj.layers, logits_layer], stop_after=deepest)
                values = obj.evaluate(outs)
            logits = None
            if predict or final:
                if outs is not None and logits_layer in outs:
                    logits = outs[logits_layer].detach()
                else:
                    with torch.no_grad():
                        logits = hooks.run_capturing(engine.model, engine.normalize(shown),
                                                     [logits_layer], stop_after=logits_layer,
                                                     clone=False)[logits_layer]
                logits = logits.cpu().numpy()
            _check_finite(values, shown, logits, trace, pen_trace)
            return MaximizeStep(shown_t, steps, values.cpu().numpy(), shown.cpu().numpy(), logits,
                                torch.stack(trace).cpu().numpy() if trace else np.zeros((0, len(x))),
                                torch.stack(pen_trace).cpu().numpy() if pen_trace
                                else np.zeros((0, len(x))))

    while True:
        item = advance()
        yield item
        if item.final:
            return


def _check_finite(values, images, logits, trace, pen_trace) -> None:
    """:class:`NonFiniteResult` naming the first step where the ascent left the finite
    numbers (a too large ``lr``, weight or exponent), rather than yield NaN images."""
    if bool(torch.isfinite(values).all()) and bool(torch.isfinite(images).all()) and (
            logits is None or np.isfinite(logits).all()):
        return
    steps = [t for t, (v, p) in enumerate(zip(trace, pen_trace))
             if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(p).all()))]
    if steps and steps[0] == 0:
        raise NonFiniteResult("the objective or a penalty is NaN or inf at the start images: "
                              "the model's output (or a regulariser) is not finite there")
    when = f"at step {steps[0]}" if steps else f"after step {len(trace)}"
    raise NonFiniteResult(f"the ascent left the finite numbers {when} (the objective, a penalty "
                          f"or the images became NaN or inf); lower lr, the regularisers' "
                          f"weights or the alpha-norm exponent, or set clamp=(lo, hi)")


def _chunked_grad(forward, obj, inp, x, chunk):
    """(values (N,), captured outputs (N, ...) detached, d(-sum values)/dx) from forward and
    backward passes over ``chunk`` images of ``inp`` at a time: one chunk's autograd graph is
    alive at once (the graph of ``inp`` from ``x``, pixel transforms only, is kept)."""
    def one(part):      # returns detached results: the chunk's graph is freed on return
        outs = forward(part)
        v = obj.evaluate(outs)
        (gc,) = torch.autograd.grad(-v.sum(), [x], retain_graph=True)
        return v.detach(), {k: o.detach() for k, o in outs.items()}, gc

    values, parts, g = [], [], torch.zeros_like(x)
    for s in range(0, len(inp), chunk):
        v, outs, gc = one(inp[s:s + chunk])
        values.append(v)
        parts.append(outs)
        g += gc
    return torch.cat(values), {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, g


@needs_grad
def maximize(engine: ModelHost, objective: Target, *, steps: int = 256, start: Start = "noise",
             n_starts: int = 1, lr: float = 0.05, optimizer: str = "adam",
             regularizers: Regularizers = None, seed: Seed = 0,
             indices: Sequence[int] | None = None, predict: bool = True,
             clamp: tuple[float, float] | None = None,
             control: Control = NO_CONTROL) -> MaximizeResult:
    """Run :func:`iterate_maximize` to the end (same arguments, no ``every``). With a
    ``control``, every step but the last goes to ``control.partial`` (a
    :class:`MaximizeStep`, logits only if ``predict``) and ``control.step`` follows every
    update."""
    x0 = start_images(engine, start, n_starts, seed, indices)    # built once, passed on
    live = control is not NO_CONTROL       # someone may watch: every step is a partial
    kw = dict(steps=steps, lr=lr, optimizer=optimizer, regularizers=regularizers, seed=seed,
              every=1 if live else None, predict=predict, clamp=clamp)
    last = None
    for last in iterate_maximize(engine, objective, start=x0, control=control, **kw):
        if live and not last.final:
            control.partial(last)
    assert last is not None                     # the final step is always yielded
    return MaximizeResult(images=last.images, start=x0.cpu().numpy(), values=last.values,
                          logits=last.logits, trace=last.trace, penalty_trace=last.penalty_trace,
                          objective=as_objective(objective).description)
