"""Gradient ascent on the input: x* = argmax Φ(x) − Σ λ R(x) (visualization paper, eq. 1-2).

:class:`Ascent` is one run (its images, optimiser, random draws and traces); :func:`maximize`
runs it to the end and hands live :class:`MaximizeStep` pictures (step, the objective's values,
the images, the class scores) to ``control.partial`` when a watcher wants one;
:func:`iterate_maximize` yields them to a script's loop. Several starts run as one batch. Only
the input gets gradients (``torch.autograd.grad``): the model's parameters keep
``.grad = None``. The forward pass stops at the deepest layer the objective reads
(``hooks.run_capturing``).
"""
from __future__ import annotations

import time
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
# the live pictures of maximize (their class scores, and whoever draws them) take at most this
# share of a run's time: on a slow model an extra forward pass per step would be a third of it
LIVE_SHARE = 0.04


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


class Ascent:
    """One gradient ascent (eq. 1-2) of a batch of starts: the images ``x`` (N, C, H, W), their
    optimiser, the random draws of the gradient trick and jitter, and the traces so far.

    :meth:`update` takes update ``t`` (one forward and backward pass of the starts, in chunks
    when their activations are large); :meth:`record` and :meth:`final` make the
    :class:`MaximizeStep` a caller shows. The caller borrows the model around them.
    """

    def __init__(self, engine, objective, *, steps: int, start, n_starts: int, lr: float,
                 optimizer: str, regularizers, seed: int, indices: Sequence[int] | None,
                 clamp: tuple[float, float] | None):
        self.engine = engine
        self.obj: Objective = as_objective(objective).bind(engine)
        self.steps, lr = check.count("steps", steps), check.number("lr", lr, above=0)
        self.clamp = _clamp(clamp)
        self.x = start_images(engine, start, n_starts, seed, indices).requires_grad_(True)
        self.penalties, self.tricks, self.transforms = split(regularizers, engine)
        if optimizer not in _OPTIMIZERS:
            raise InvalidArgument(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
        self.opt = _OPTIMIZERS[optimizer]([self.x], lr=lr)
        self.gen = torch.Generator().manual_seed(int(seed) + 1)
        names = engine.layer_names
        self.last = max(self.obj.layers, key=names.index)       # the forward pass stops there
        self.logits = engine.default_layer
        self.deepest = max(self.last, self.logits, key=names.index)
        reaches_logits = names.index(self.last) >= names.index(self.logits)
        self.read = sorted(set(self.obj.layers) | ({self.logits} if reaches_logits else set()))
        # images per forward/backward pass: the starts go through in chunks when one image's
        # activations up to ``last`` are large (VGG-16 at 224 px: one at a time), to bound memory
        self.chunk = max(1, _GRAD_FLOATS // max(1, sum(
            i.n_units for i in engine.layers[:names.index(self.last) + 1])))
        self.trace: list[torch.Tensor] = []
        self.penalty_trace: list[torch.Tensor] = []
        self.t = 0

    def _forward(self, inp: torch.Tensor) -> dict:
        """The layers the objective reads (and the logits when it reaches them) for ``inp``."""
        return hooks.run_capturing(self.engine.model, self.engine.normalize(inp), self.read,
                                   stop_after=self.last)

    def update(self, show: bool, control: Control = NO_CONTROL
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """Update ``t``: Φ and the penalties of x, the gradient, the optimiser's step.
        ``show``: return (images, values, logits or None) of x before the update (the logits of
        this pass when it computed them for the unjittered images), else None."""
        x = self.x
        with torch.enable_grad():
            inp = x
            for tr in self.transforms:
                inp = tr.transform(inp, self.gen)
            penalty = torch.zeros(len(x), device=x.device)
            for p in self.penalties:
                penalty = penalty + p.weight * p.penalty(x)
            if self.chunk >= len(x):
                outs = self._forward(inp)
                values = self.obj.evaluate(outs)
                (g,) = torch.autograd.grad(-(values - penalty).sum(), [x])
            else:
                values, outs, g = _chunked_grad(self._forward, self.obj, inp, x, self.chunk,
                                                control)
                if self.penalties:
                    g = g + torch.autograd.grad(penalty.sum(), [x])[0]
        values = values.detach()
        self.trace.append(values)
        self.penalty_trace.append(penalty.detach())
        shown = None
        if show:      # the scores of a jittered image are not those of the image shown
            logits = None if self.transforms or self.logits not in outs else outs[self.logits]
            shown = (x.detach().clone(), values, None if logits is None else logits.detach())
        for trick in self.tricks:
            g = trick.apply(g, self.gen)
        x.grad = g
        self.opt.step()
        x.grad = None
        if self.clamp is not None:
            with torch.no_grad():
                x.clamp_(*self.clamp)
        self.t += 1
        return shown

    def record(self, step: int, images: torch.Tensor, values: torch.Tensor,
               logits: torch.Tensor | None, predict: bool) -> MaximizeStep:
        """The :class:`MaximizeStep` of ``images`` before update ``step``; ``predict``: compute
        their class scores when ``logits`` is None (one forward pass up to the logits)."""
        if logits is None and predict:
            with torch.no_grad():
                logits = hooks.run_capturing(self.engine.model, self.engine.normalize(images),
                                             [self.logits], stop_after=self.logits,
                                             clone=False)[self.logits]
        scores = None if logits is None else logits.cpu().numpy()
        _check_finite(values, images, scores, self.trace, self.penalty_trace)
        return MaximizeStep(step, self.steps, values.cpu().numpy(), images.cpu().numpy(), scores,
                            _stacked(self.trace, len(images)),
                            _stacked(self.penalty_trace, len(images)))

    def final(self) -> MaximizeStep:
        """The final images without jitter: objective and class scores in one forward pass."""
        shown = self.x.detach().clone()
        with torch.no_grad():
            outs = hooks.run_capturing(self.engine.model, self.engine.normalize(shown),
                                       [*self.obj.layers, self.logits], stop_after=self.deepest)
        return self.record(self.steps, shown, self.obj.evaluate(outs),
                           outs[self.logits].detach(), True)

    def advance(self, wanted: Callable[[int], bool], predict: bool,
                control: Control = NO_CONTROL) -> MaximizeStep:
        """Update until a step is ``wanted`` (its state before that update) or the last update
        is done (the final images); the other thread's short requests go in between."""
        while self.t < self.steps:
            t = self.t
            shown = self.update(wanted(t), control)
            control.step(self.t, self.steps, "maximize")
            self.engine.hand_over()          # a short request of another thread goes first
            if shown is not None:
                return self.record(t, *shown, predict)
        return self.final()


_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def _stacked(trace: list[torch.Tensor], n: int) -> np.ndarray:
    """(steps so far, N) of a trace."""
    return torch.stack(trace).cpu().numpy() if trace else np.zeros((0, n))


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
    step -> bool asked before each update.
    objective: an :mod:`objectives` objective or a (layer, unit) pair; optimizer: "adam" or
    "sgd"; regularizers: :mod:`regularizers` objects (penalties, gradient trick, jitter);
    seed: noise start and the random draws of the gradient trick and jitter; predict: give
    each yielded step the class scores (one extra forward pass when the objective stops
    before the logits or the input is jittered); clamp: (lo, hi) to keep pixels in.
    The model is borrowed for the run of steps between two yields, not across a yield.
    """
    if every is None:
        wanted = lambda t: False                      # noqa: E731
    elif callable(every):
        wanted = every
    else:
        k = check.count("every", every)
        wanted = lambda t: t % k == 0                 # noqa: E731
    ascent = Ascent(engine, objective, steps=steps, start=start, n_starts=n_starts, lr=lr,
                    optimizer=optimizer, regularizers=regularizers, seed=seed, indices=indices,
                    clamp=clamp)
    while True:
        with engine.borrow():
            item = ascent.advance(wanted, predict, control)
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


def _chunked_grad(forward, obj, inp, x, chunk, control: Control = NO_CONTROL):
    """(values (N,), captured outputs (N, ...) detached, d(-sum values)/dx) from forward and
    backward passes over ``chunk`` images of ``inp`` at a time: one chunk's autograd graph is
    alive at once (the graph of ``inp`` from ``x``, pixel transforms only, is kept). Stop is
    checked between chunks."""
    def one(part):      # returns detached results: the chunk's graph is freed on return
        outs = forward(part)
        v = obj.evaluate(outs)
        (gc,) = torch.autograd.grad(-v.sum(), [x], retain_graph=True)
        return v.detach(), {k: o.detach() for k, o in outs.items()}, gc

    values, parts, g = [], [], torch.zeros_like(x)
    for s in range(0, len(inp), chunk):
        if s:
            control.check()
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
    """The ascent of :func:`iterate_maximize` run to the end (same arguments, no ``every``).

    Live: whenever the watcher of ``control`` wants one (``control.partial_due()``),
    ``control.partial`` gets the :class:`MaximizeStep` of now (the images, their class scores
    when ``predict``, the traces so far); those pictures, with whatever draws them, take at
    most :data:`LIVE_SHARE` of the run's time. ``control.step`` after every update.
    """
    x0 = start_images(engine, start, n_starts, seed, indices)    # built once, kept for the result
    ascent = Ascent(engine, objective, steps=steps, start=x0, n_starts=n_starts, lr=lr,
                    optimizer=optimizer, regularizers=regularizers, seed=seed, indices=indices,
                    clamp=clamp)
    live_after = 0.0          # monotonic time before which no live picture is made
    with engine.borrow():
        while ascent.t < ascent.steps:
            t = ascent.t
            shown = ascent.update(control.partial_due() and time.monotonic() >= live_after,
                                  control)
            if shown is not None:
                began = time.monotonic()
                control.partial(ascent.record(t, *shown, predict))
                live_after = began + (time.monotonic() - began) / LIVE_SHARE
            control.step(ascent.t, ascent.steps, "maximize")
            engine.hand_over()              # a short request of another thread goes first
        last = ascent.final()
    assert last.logits is not None and last.trace is not None and last.penalty_trace is not None
    return MaximizeResult(images=last.images, start=x0.cpu().numpy(), values=last.values,
                          logits=last.logits, trace=last.trace, penalty_trace=last.penalty_trace,
                          objective=ascent.obj.description)
