"""Sampling the inverse set of units (Hada & Carreira-Perpiñán, Sec. 3-4): n diverse inputs
x = G(c) with z1 <= f(x) <= z2 for every unit f, diversity measured in an encoder E's space.

Seeds (eq. 8): K codes by the augmented Lagrangian with slacks, lam = 0, mu0 = 10 times 10 per
outer iteration, ~100 Adam steps per iteration on -sum ||E(G(c_i)) - E(G(c_j))||^2 + the
prior + penalty, stopping as soon as all K are inside their ranges. Sampling (eq. 10): from the
seeds, single gradient steps with lam*, mu* fixed, pushing the K codes apart from each other
and from the last accepted ones; every code that lands inside the ranges is a new sample,
until n. How it is solved is one :class:`~.settings.InverseSetSettings`.

Without a generator the same runs in pixel space: x itself, kept in the box [0, 1] (projected
steps) with a total-variation term (eq. 3). Several units (in one layer or several) give the
intersection of their inverse sets (Sec. 3.5). The ablations: ``diversity="code"`` is eq. 13
(distances on codes), ``diversity="none"`` eq. 14 (no diversity term).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InfeasibleRange, InvalidArgument
from ..core.grad import needs_grad
from ..core.model import ModelHost
from ..core.types import Encoder, Generator, LayerUnits, Ranges, Seed
from .naturalness import Naturalness, check_judge, naturalness
from .objective import _Objective, _start, initial_codes, mean_distance
from .passes import Passes, default_range, fill_default_ranges
from .problem import (
    Problem,
    build_problem,
    feature_scale,
    in_ranges,
    optimising,
    pair_sum,
    penalty,
    step_direction,
    update_multipliers,
)
from .settings import InverseSetSettings, settings_or_default

__all__ = ["inverse_set", "seeds", "InverseSet", "Seeds", "SampleBatch", "SeedBatch",
           "InfeasibleRange", "mean_distance", "default_range"]


@dataclass(frozen=True)
class SampleBatch:
    """Every sample so far, handed to ``control.partial`` each time new ones are accepted
    (the seeds first): ``images`` (m, C, H, W), ``activations`` (m, P), joined when read (a
    watcher that sees only the latest, as a job's throttle delivers, misses none)."""
    image_parts: tuple[np.ndarray, ...]
    activation_parts: tuple[np.ndarray, ...]

    @property
    def images(self) -> np.ndarray:
        return np.concatenate(self.image_parts)

    @property
    def activations(self) -> np.ndarray:
        return np.concatenate(self.activation_parts)


@dataclass(frozen=True)
class SeedBatch:
    """The K seeds while eq. 8 moves them into the ranges, handed to ``control.partial``
    before the first step and after each one (no sample is accepted before the seeds are):
    ``images`` (K, C, H, W), ``activations`` (K, P), ``inside`` (K,) bool (None while a
    default range is still being found), ``step``: gradient steps so far."""
    images: np.ndarray
    activations: np.ndarray
    inside: np.ndarray | None
    step: int


def _seed_batch(x: torch.Tensor, f: torch.Tensor, inside: torch.Tensor | None,
                step: int) -> SeedBatch:
    return SeedBatch(x.detach().cpu().numpy(), f.detach().cpu().numpy(),
                     None if inside is None else inside.cpu().numpy(), step)


@dataclass(frozen=True)
class Seeds:
    """K feasible codes (eq. 8) and the multipliers they ended with.

    codes: (K, *code_shape) tensor on the engine's device; images (K, C, H, W), activations
    (K, P), features (K, D) numpy; lam: (K, P, 2) tensor; mu: float; steps: gradient steps;
    objective_trace, violation_trace: (outer,) after each whole outer iteration, the eq. 15
    objective sum_{i,j} ||E_i - E_j||^2 and the largest range violation (in range widths);
    converged: run "all the way", True if ``tol`` was met (None: stopped at feasibility).
    """
    codes: torch.Tensor
    images: np.ndarray
    activations: np.ndarray
    features: np.ndarray
    lam: torch.Tensor
    mu: float
    steps: int
    outer: int
    objective_trace: np.ndarray | None = None
    violation_trace: np.ndarray | None = None
    converged: bool | None = None


@dataclass(frozen=True)
class InverseSet:
    """n samples of the inverse set; the first K are the seeds.

    images: (n, C, H, W) in the engine's input space; codes: (n, code_dim) (None in pixel mode);
    activations: (n, P) recomputed from ``images`` in one fresh pass — every row lies in
    ``ranges`` (asserted on construction); features: (n, D) in E's space; units: P (layer, unit);
    ranges: (P, 2); steps_seeds / steps_sampling: gradient steps of each phase; diversity: mean
    pairwise Euclidean distance of ``features``; complete: n reached (else ``report`` says why);
    settings: how it was solved; naturalness: code norm against the prior's, share the judge
    calls the units' class, share inside the ranges (:mod:`.naturalness`).
    """
    images: np.ndarray
    codes: np.ndarray | None
    activations: np.ndarray
    features: np.ndarray
    units: tuple[tuple[str, tuple[int, ...]], ...]
    ranges: np.ndarray
    K: int
    steps_seeds: int
    steps_sampling: int
    diversity: float
    mode: str               # "generator" or "pixel"
    complete: bool
    report: str
    seconds: float
    dropped_on_recheck: int
    settings: InverseSetSettings
    naturalness: Naturalness

    def __post_init__(self):
        inside = in_ranges(self.activations, self.ranges)
        if not inside.all():
            raise AssertionError(f"{int((~inside).sum())} returned sample(s) outside "
                                 f"their ranges")

    @property
    def n(self) -> int:
        return int(self.images.shape[0])


def _seeds(prob: Problem, obj: _Objective, z: torch.Tensor, settings: InverseSetSettings, *,
           control: Control, total: int, passes: Passes) -> Seeds:
    """eq. 8 by coordinate descent in the slacks (closed form) and the codes (Adam).

    Without ``settings.full_seeds`` the paper's seeds: stop at the first step where all are
    inside. With it "all the way" (eq. 15 / Fig. 9): whole outer iterations until all are
    inside and the eq. 15 objective :func:`settled`, or ``max_outer`` iterations /
    ``max_steps`` steps; mu capped at ``mu_max``. Every pass goes in ``passes``' chunks; the
    seeds so far go to ``control.partial`` (:class:`SeedBatch`) after each step."""
    s, stop_when_feasible = settings, not settings.full_seeds
    K, P = z.shape[0], len(prob.units)
    max_steps = s.step_cap()
    lam = torch.zeros(K, P, 2, device=z.device)
    mu, steps, outer = float(s.mu0), 0, 0
    z = z.clone().requires_grad_(True)
    best, most_inside, trace = None, 0, []      # progress only moves forward
    while (s.max_outer is None or outer < s.max_outer) and (max_steps is None or steps < max_steps):
        opt = torch.optim.Adam([z], lr=s.lr)
        for _ in range(s.inner_steps if max_steps is None else min(s.inner_steps, max_steps - steps)):
            step = passes.with_graph(z)
            x, f, feats = step.x, step.f, step.feats
            inside = prob.inside(f)
            control.partial(_seed_batch(x, f, inside, steps))
            if stop_when_feasible and bool(inside.all()):
                return _make_seeds(z, x, f, feats, lam, mu, steps, outer)
            z.grad = step.gradient(obj.loss(z, x, feats) + penalty(prob.constraints(f), lam, mu))
            opt.step()
            with torch.no_grad():
                z.copy_(prob.project(z))
            steps += 1
            most_inside = max(most_inside, int(inside.sum()) if stop_when_feasible else 0)
            control.step(most_inside if stop_when_feasible else steps,
                         total if stop_when_feasible else max_steps or steps, "seeds")
            prob.engine.hand_over()
        x, f, feats = passes.forward(z.detach())
        lam = update_multipliers(prob.constraints(f), lam, mu)
        best, mu_used, outer = (x, f, feats), mu, outer + 1
        trace.append((pair_total(feats), violation(prob, f)))
        if not stop_when_feasible and trace[-1][1] == 0 and settled(trace, s.tol):
            return _make_seeds(z, x, f, feats, lam, mu, steps, outer, trace, True)
        mu = mu * s.mu_factor if s.mu_max is None else min(mu * s.mu_factor, s.mu_max)
    assert best is not None             # max_outer, max_steps >= 1: an outer iteration ran
    x, f, feats = best
    inside = prob.inside(f)
    if bool(inside.all()):      # mu was already raised for an outer iteration that never ran
        return _make_seeds(z, x, f, feats, lam, mu_used, steps, outer, trace,
                           None if stop_when_feasible else False)
    worst = f.detach().cpu().numpy()
    lines = [f"{name} {':'.join(map(str, u))} in [{lo:.4g}, {hi:.4g}]: reached "
             f"{worst[:, p].min():.4g} .. {worst[:, p].max():.4g}"
             for p, ((name, u), lo, hi) in enumerate(zip(prob.units, prob.lo.tolist(),
                                                        prob.hi.tolist()))]
    raise InfeasibleRange(f"only {int(inside.sum())} of {K} seeds reached the range(s) after "
                          f"{steps} gradient steps ({outer} outer iterations, mu up to "
                          f"{mu_used:.3g}); the activations the seeds reached: "
                          + "; ".join(lines) + ". " + (
                              "The range may be empty for this generator; widen it or move it "
                              "towards values the dataset reaches." if not bool(inside.any()) else
                              "The range is reachable but some seeds are stuck outside it; try "
                              "another seed, a smaller K, a wider range, a larger max_outer or "
                              "a smaller prior_weight."))


def settled(trace, tol: float, window: int = 3) -> bool:
    """The eq. 15 objective (first item of each trace entry) stayed within ``tol`` (relative)
    over the last ``window`` outer iterations: max - min <= tol * |last|."""
    if len(trace) < window:
        return False
    last = [t[0] for t in trace[-window:]]
    return max(last) - min(last) <= tol * abs(last[-1])


def pair_total(feats: torch.Tensor) -> float:
    """The paper's diversity sum over all ordered pairs, sum_{i,j} ||E_i - E_j||^2 (eq. 5/15)."""
    return float(pair_sum(feats.double())) * len(feats) ** 2


def violation(prob: Problem, f: torch.Tensor) -> float:
    """Largest distance outside the true ranges, in range widths (0: all inside)."""
    out = torch.maximum(prob.lo - f, f - prob.hi) / prob.eps
    return float(out.clamp(min=0).max())


def _make_seeds(z, x, f, feats, lam, mu, steps, outer, trace=(), converged=None) -> Seeds:
    t = np.asarray(trace, dtype=np.float64).reshape(-1, 2)
    return Seeds(z.detach().clone(), x.detach().cpu().numpy(), f.detach().cpu().numpy(),
                 feats.detach().cpu().numpy(), lam.detach(), float(mu), steps, outer,
                 t[:, 0], t[:, 1], converged)


@needs_grad
def seeds(engine, units, ranges, generator=None, encoder=None, K: int = 10, *, seed: int = 0,
          settings: InverseSetSettings | None = None, control: Control = NO_CONTROL) -> Seeds:
    """Only the seed phase (eq. 8). With K = n and ``settings.full_seeds`` this is the full
    optimisation of eq. 15: all codes together, run "all the way" (see :func:`_seeds`).
    Raises :class:`InfeasibleRange` when the budget ends with seeds outside their ranges."""
    settings = settings_or_default(settings)
    K, seed = check.count("K", K), check.seed(seed)
    prob, _ = build_problem(engine, units, ranges, generator, encoder, settings.margin,
                            settings.code_norm, settings.min_norm_quantile)
    with optimising(prob):
        passes = Passes(prob, control)
        z0, obj = _start(prob, K, seed, settings, lambda z, images: passes.forward(z, images))
        return _seeds(prob, obj, z0, settings, control=control, total=K, passes=passes)


@needs_grad
def inverse_set(engine: ModelHost, units: LayerUnits, ranges: Ranges, generator: Generator = None,
                encoder: Encoder = None, K: int = 10, n: int = 500, *, seed: Seed = 0,
                settings: InverseSetSettings | None = None, judge: ModelHost | None = None,
                control: Control = NO_CONTROL) -> InverseSet:
    """Sample n inputs whose units all lie in their ranges.

    units: (layer, unit) or a list of them (layer names from ``engine.layers``, unit as in
    ``engine.resolve_units``); ranges: one (z1, z2) per unit, None for the unit's
    :func:`~.passes.default_range` on the engine's dataset (None alone: for every unit).
    generator: G, an ``nn.Module`` from (N, code_dim) codes to images in the engine's input
    space with an int attribute ``code_dim``, whose codes follow N(0, I) (None: pixel space,
    box [0, 1] + TV). encoder: E, a layer name of the engine or an ``nn.Module`` on images
    (default: the last (C, H, W) layer before the first flat one, e.g. LeNet's pool2). K:
    seeds and codes per step.
    settings: how it is solved (:class:`~.settings.InverseSetSettings`; default: its
    defaults). judge: another network's Engine on the same inputs for
    ``InverseSet.naturalness`` (None: that share is not computed). The seeds go to
    ``control.partial`` as a :class:`SeedBatch` at their start (first, before any pass over
    the dataset) and after each step; then, each time new samples are accepted, every sample
    so far as a :class:`SampleBatch`. Every pass goes in chunks with a Stop check after each
    (:mod:`.passes`).

    Where this differs from the paper (each with the paper's variant as a setting):
    - start: "random" draws N(0, I) codes; the paper passes K random images through E (its E
      is also G's code space): ``start=code_encoder`` (a module or callable images -> codes;
      a tuple output's first item is used) on the noise of :func:`~..core.noise.gaussian_noise`.
    - diversity_form: "scaled_mean" divides the mean over pairs by a typical squared distance
      of the dataset (:func:`~.problem.feature_scale`) so one weight suits every E; "sum" is
      the paper's sum over pairs, unscaled.
    - prior_weight: the codes pay ||c||^2 / (2 d) (the paper: nothing, so eq. 8's Adam steps
      and the sampling steps carry them far outside G's prior; 0 restores that).
    - step: "rms" scales each code's gradient to unit RMS before the step beta (so beta means
      the same whatever the loss's scale); "plain" is the paper's c <- c - beta * g.
    - the constraint is two-sided with a margin (:mod:`.problem`); the paper bounds one side.
    Raises :class:`InfeasibleRange` if the seeds cannot reach the ranges within the budget;
    if sampling stalls, returns the samples found with ``complete=False`` and a report.
    """
    start_time = time.perf_counter()
    settings = settings_or_default(settings)
    K, n = check.integer("K", K), check.integer("n", n)
    if int(K) < 1 or int(n) < int(K):
        raise InvalidArgument(f"need 1 <= K <= n; got K={K}, n={n}")
    K, n, seed = int(K), int(n), check.seed(seed)
    judge = check_judge(engine, judge)
    prob, ranges_np = build_problem(engine, units, ranges, generator, encoder, settings.margin,
                                    settings.code_norm, settings.min_norm_quantile,
                                    allow_default=True)
    beta = settings.beta if settings.beta is not None else (0.2 if generator is not None else 0.05)
    budget = settings.max_sampling_steps if settings.max_sampling_steps is not None else \
        10 * -(-(n - K) // K) + 50
    with optimising(prob):
        passes = Passes(prob, control)
        z0 = initial_codes(prob, K, settings.start, seed)
        if np.isnan(ranges_np).any():    # the seeds' start shows before the dataset's pass
            x0, f0, _ = passes.start(z0)
            control.partial(_seed_batch(x0, f0, None, 0))
        ranges_np, dataset_feats = fill_default_ranges(passes, ranges_np)
        obj = _Objective(prob, settings, lambda: feature_scale(     # after the first picture
            prob, settings.diversity, z0, passes.forward, dataset_feats))
        sd = _seeds(prob, obj, z0, settings, control=control, total=n, passes=passes)
        codes, images, acts, feats = ([sd.codes.cpu().numpy()], [sd.images], [sd.activations],
                                      [sd.features])
        control.partial(SampleBatch(tuple(images), tuple(acts)))
        count = K
        control.step(count, n, "sampling")
        prob.engine.hand_over()
        z = sd.codes.clone().requires_grad_(True)
        step = passes.with_graph(z)
        previous = obj.vectors(z, step.feats).detach()
        steps = 0
        while count < n and steps < budget:
            loss = obj.loss(z, step.x, step.feats, previous) + penalty(
                prob.constraints(step.f), sd.lam, sd.mu)
            grad = step.gradient(loss)
            with torch.no_grad():
                z = prob.project(z - beta * (step_direction(grad) if settings.step == "rms"
                                             else grad))
            z.requires_grad_(True)
            steps += 1
            step = passes.with_graph(z)
            x, f, fe = step.x, step.f, step.feats
            ok = prob.inside(f).detach()
            take = torch.nonzero(ok).flatten()[:n - count]
            if len(take):
                codes.append(z[take].detach().cpu().numpy())
                images.append(x[take].detach().cpu().numpy())
                acts.append(f[take].detach().cpu().numpy())
                feats.append(fe[take].detach().cpu().numpy())
                previous = previous.clone()
                previous[take] = obj.vectors(z, fe)[take].detach()
                count += len(take)
                control.partial(SampleBatch(tuple(images), tuple(acts)))
            control.step(count, n, "sampling")
            prob.engine.hand_over()
        del step                    # the last pass's graph
        images_np = np.concatenate(images)
        recheck = _recheck(passes, images_np)

    keep = in_ranges(recheck, ranges_np)
    complete = count >= n and bool(keep.all())
    report = ""
    if count < n:
        report = (f"sampling stopped after {steps} steps (budget {budget}) with {count} of {n} "
                  f"samples: the codes left the range(s) and the penalty did not bring them "
                  f"back; try a smaller beta or a wider range.")
    if not keep.all():
        report += f" {int((~keep).sum())} sample(s) fell outside on the recheck and were dropped."
    feats_np = np.concatenate(feats)[keep]
    codes_np = np.concatenate(codes)[keep].reshape(int(keep.sum()), -1) \
        if prob.generator is not None else None
    return InverseSet(
        images=images_np[keep], codes=codes_np, activations=recheck[keep], features=feats_np,
        units=tuple(prob.units), ranges=ranges_np, K=K, steps_seeds=sd.steps,
        steps_sampling=steps, diversity=mean_distance(feats_np),
        mode="generator" if prob.generator is not None else "pixel",
        complete=complete, report=report.strip(),
        seconds=time.perf_counter() - start_time, dropped_on_recheck=int((~keep).sum()),
        settings=settings, naturalness=naturalness(engine, images_np[keep], codes_np,
                                                   prob.units, ranges_np, judge,
                                                   activations=recheck[keep]))


def _recheck(passes: Passes, images: np.ndarray) -> np.ndarray:
    """The units' activations of the returned images, in one fresh pass (float64 out)."""
    x = torch.as_tensor(images, device=passes.prob.engine.device)
    return passes.forward(x, from_images=True)[1].cpu().numpy().astype(np.float64)
