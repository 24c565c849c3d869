"""Sampling the inverse set of units (Hada & Carreira-Perpiñán, Sec. 3-4): n diverse inputs
x = G(c) with z1 <= f(x) <= z2 for every unit f, diversity measured in an encoder E's space.

Seeds (eq. 8): K codes by the augmented Lagrangian with slacks, lam = 0, mu0 = 10 times 10 per
outer iteration, ~100 Adam steps per iteration on -sum ||E(G(c_i)) - E(G(c_j))||^2 + penalty,
stopping as soon as all K are inside their ranges. Sampling (eq. 10): from the seeds, single
gradient steps with lam*, mu* fixed, pushing the K codes apart from each other and from the
last accepted ones; every code that lands inside the ranges is a new sample, until n.

Without a generator the same runs in pixel space: x itself, kept in the box [0, 1] (projected
steps) with a total-variation term (eq. 3). Several units (in one layer or several) give the
intersection of their inverse sets (Sec. 3.5). The ablations: ``diversity="code"`` is eq. 13
(distances on codes), ``diversity="none"`` eq. 14 (no diversity term).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import InfeasibleRange, InvalidArgument
from ..core.grad import needs_grad
from .objective import _Objective, _start, mean_distance
from .problem import (
    Problem,
    build_problem,
    check_settings,
    in_ranges,
    optimising,
    pair_sum,
    penalty,
    step_direction,
    update_multipliers,
)

FULL_MAX_STEPS = 15_000     # "all the way" cap: the paper's eq. 15 took about 13,000 steps

__all__ = ["inverse_set", "seeds", "InverseSet", "Seeds", "InfeasibleRange", "mean_distance"]


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
    pairwise Euclidean distance of ``features``; complete: n reached (else ``report`` says why).
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
    diversity_space: str    # "encoder", "code" (eq. 13) or "none" (eq. 14)
    complete: bool
    report: str
    seconds: float
    dropped_on_recheck: int

    def __post_init__(self):
        inside = in_ranges(self.activations, self.ranges)
        if not inside.all():
            raise AssertionError(f"{int((~inside).sum())} returned sample(s) outside "
                                 f"their ranges")

    @property
    def n(self) -> int:
        return int(self.images.shape[0])


def _seeds(prob: Problem, obj: _Objective, z: torch.Tensor, *, mu0: float, mu_factor: float,
           inner_steps: int, max_outer: int | None, lr: float, stop_when_feasible: bool,
           control: Control, total: int, tol: float = 1e-3, max_steps: int | None = None,
           mu_max: float | None = None) -> Seeds:
    """eq. 8 by coordinate descent in the slacks (closed form) and the codes (Adam).

    stop_when_feasible: the paper's seeds (stop at the first step where all are inside).
    Otherwise "all the way" (eq. 15 / Fig. 9): whole outer iterations until all are inside and
    the eq. 15 objective changed by at most ``tol`` (relative) over the last one, or
    ``max_outer`` iterations / ``max_steps`` steps; mu capped at ``mu_max`` (the paper's
    mu <- 10 mu every 100 steps would overflow within 13,000 steps)."""
    K, P = z.shape[0], len(prob.units)
    if max_outer is None and max_steps is None:
        max_steps = FULL_MAX_STEPS
    lam = torch.zeros(K, P, 2, device=z.device)
    mu, steps, outer = float(mu0), 0, 0
    z = z.clone().requires_grad_(True)
    best, most_inside, trace = None, 0, []      # progress only moves forward
    while (max_outer is None or outer < max_outer) and (max_steps is None or steps < max_steps):
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(inner_steps if max_steps is None else min(inner_steps, max_steps - steps)):
            x, f, feats = prob.forward(z)
            inside = prob.inside(f)
            if stop_when_feasible and bool(inside.all()):
                return _make_seeds(z, x, f, feats, lam, mu, steps, outer)
            loss = obj.loss(z, x, feats) + penalty(prob.constraints(f), lam, mu)
            (grad,) = torch.autograd.grad(loss, [z])
            z.grad = grad
            opt.step()
            with torch.no_grad():
                z.copy_(prob.project(z))
            steps += 1
            most_inside = max(most_inside, int(inside.sum()) if stop_when_feasible else 0)
            control.step(most_inside if stop_when_feasible else steps,
                         total if stop_when_feasible else max_steps or steps, "seeds")
            prob.engine.hand_over()
        with torch.no_grad():
            x, f, feats = prob.forward(z)
            lam = update_multipliers(prob.constraints(f), lam, mu)
        best, mu_used, outer = (x, f, feats), mu, outer + 1
        trace.append((pair_total(feats), violation(prob, f)))
        if not stop_when_feasible and trace[-1][1] == 0 and len(trace) >= 2 and \
                abs(trace[-1][0] - trace[-2][0]) <= tol * abs(trace[-2][0]):
            return _make_seeds(z, x, f, feats, lam, mu, steps, outer, trace, True)
        mu = mu * mu_factor if mu_max is None else min(mu * mu_factor, mu_max)
    if best is None:
        raise InvalidArgument("max_steps and max_outer leave no step to take")
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
                              "another seed, a smaller K, a wider range or a larger max_outer."))


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
def seeds(engine, units, ranges, generator=None, encoder=None, K: int = 10, *,
          start="random", seed: int = 0, diversity: str = "encoder", diversity_weight=1.0,
          tv: float = 0.05, mu0: float = 10.0, mu_factor: float = 10.0, inner_steps: int = 100,
          max_outer: int | None = 6, lr: float = 0.05, margin: float = 0.25,
          code_norm: float | None = None, stop_when_feasible: bool = True,
          tol: float = 1e-3, max_steps: int | None = None, mu_max: float | None = None,
          diversity_form: str = "scaled_mean", control: Control = NO_CONTROL) -> Seeds:
    """Only the seed phase (eq. 8). With K = n and ``stop_when_feasible=False`` this is the
    full optimisation of eq. 15: all codes together, run "all the way" (see :func:`_seeds`).
    Raises :class:`InfeasibleRange` when the budget ends with seeds outside their ranges."""
    check_settings(K=K, seed=seed, mu0=mu0, mu_factor=mu_factor, inner_steps=inner_steps,
                   max_outer=max_outer, lr=lr, margin=margin, tv=tv,
                   diversity_weight=diversity_weight, code_norm=code_norm)
    check.number("tol", tol, at_least=0)
    check.optional_count("max_steps", max_steps)
    if mu_max is not None:
        check.number("mu_max", mu_max, at_least=mu0)
    prob, _ = build_problem(engine, units, ranges, generator, encoder, margin, code_norm)
    with optimising(prob):
        z0, obj = _start(prob, K, start, seed, diversity, diversity_weight, tv, diversity_form)
        return _seeds(prob, obj, z0, mu0=mu0, mu_factor=mu_factor, inner_steps=inner_steps,
                      max_outer=max_outer, lr=lr, stop_when_feasible=stop_when_feasible,
                      control=control, total=K, tol=tol, max_steps=max_steps, mu_max=mu_max)


@needs_grad
def inverse_set(engine, units, ranges, generator=None, encoder=None, K: int = 10, n: int = 500,
                control: Control = NO_CONTROL, *, start="random", seed: int = 0,
                diversity: str = "encoder", diversity_weight: float = 1.0, tv: float = 0.05,
                mu0: float = 10.0, mu_factor: float = 10.0, inner_steps: int = 100,
                max_outer: int | None = 6, lr: float = 0.05, beta: float | None = None,
                margin: float = 0.25, code_norm: float | None = None, full_seeds: bool = False,
                max_sampling_steps: int | None = None,
                on_samples: Callable[[np.ndarray, np.ndarray], None] | None = None,
                step: str = "rms", diversity_form: str = "scaled_mean", tol: float = 1e-3,
                ) -> InverseSet:
    """Sample n inputs whose units all lie in their ranges.

    units: (layer, unit) or a list of them (layer names from ``engine.layers``, unit as in
    ``engine.resolve_units``); ranges: one (z1, z2) per unit. generator: G, an ``nn.Module``
    from (N, code_dim) codes to images in the engine's input space with an int attribute
    ``code_dim`` (None: pixel space, box [0, 1] + ``tv`` times total variation). encoder: E,
    a layer name of the engine or an ``nn.Module`` on images (default: the last (C, H, W)
    layer before the first flat one, e.g. LeNet's pool2). K: seeds and codes per step.
    beta: sampling step length per code coordinate (each step's gradient scaled to unit RMS);
    default 0.5 for codes (N(0, 1) coordinates), 0.05 for pixels (in [0, 1]).
    code_norm: keep codes within code_norm * sqrt(code_dim) of the origin (projected steps;
    the N(0, I) prior puts its mass near sqrt(code_dim)); None (default) leaves them free as
    eq. 8 does — bounding them can leave a seed stuck short of a high range.
    full_seeds: do not stop the seeds once feasible: optimise eq. 5 "all the way" (the paper's
    Fig. 9, second block): whole outer iterations until all are inside and the objective
    changed by at most ``tol`` over the last one (``max_outer=None``: no cap but 15,000 steps).
    on_samples(images, activations): called from this thread with each batch of new samples.

    Where this differs from the paper (each with the paper's variant as an option):
    - start: "random" draws N(0, I) codes; the paper passes K random images through E (its E
      is also G's code space). Pass a code encoder (an ``nn.Module`` or callable images ->
      codes, e.g. a VAE's encoder; a tuple output's first item is used) to start from
      E(noise images), the noise of :func:`~..core.noise.gaussian_noise` (seed).
    - diversity_form: "scaled_mean" divides the mean over pairs by a typical squared
      distance of the dataset (:func:`~.problem.feature_scale`) so one weight suits every E;
      "sum" is the paper's sum over pairs, unscaled.
    - step: "rms" scales each code's gradient to unit RMS before the step beta (so beta means
      the same whatever the loss's scale); "plain" is the paper's c <- c - beta * g.
    - the constraint is two-sided with a margin (:mod:`.problem`); the paper bounds one side.
    Raises :class:`InfeasibleRange` if the seeds cannot reach the ranges within the budget;
    if sampling stalls, returns the samples found with ``complete=False`` and a report.
    """
    start_time = time.perf_counter()
    K, n = check.integer("K", K), check.integer("n", n)
    if int(K) < 1 or int(n) < int(K):
        raise InvalidArgument(f"need 1 <= K <= n; got K={K}, n={n}")
    K, n = int(K), int(n)
    check_settings(K=K, seed=seed, mu0=mu0, mu_factor=mu_factor, inner_steps=inner_steps,
                   max_outer=max_outer, lr=lr, margin=margin, tv=tv,
                   diversity_weight=diversity_weight, code_norm=code_norm)
    if beta is not None:
        check.number("beta", beta, above=0)
    if step not in ("rms", "plain"):
        raise InvalidArgument(f"step must be 'rms' or 'plain'; got {step!r}")
    check.number("tol", tol, at_least=0)
    check.optional_count("max_sampling_steps", max_sampling_steps, 0)
    prob, ranges_np = build_problem(engine, units, ranges, generator, encoder, margin, code_norm)
    if beta is None:
        beta = 0.5 if generator is not None else 0.05
    budget = max_sampling_steps if max_sampling_steps is not None else 10 * -(-(n - K) // K) + 50
    with optimising(prob):
        z0, obj = _start(prob, K, start, seed, diversity, diversity_weight, tv, diversity_form)
        sd = _seeds(prob, obj, z0, mu0=mu0, mu_factor=mu_factor, inner_steps=inner_steps,
                    max_outer=max_outer, lr=lr, stop_when_feasible=not full_seeds,
                    control=control, total=n, tol=tol)
        codes, images, acts, feats = ([sd.codes.cpu().numpy()], [sd.images], [sd.activations],
                                      [sd.features])
        if on_samples is not None:
            on_samples(sd.images, sd.activations)
        count = K
        control.step(count, n, "sampling")
        prob.engine.hand_over()
        z = sd.codes.clone().requires_grad_(True)
        x, f, fe = prob.forward(z)
        previous = obj.vectors(z, fe).detach()
        steps = 0
        while count < n and steps < budget:
            loss = obj.loss(z, x, fe, previous) + penalty(prob.constraints(f), sd.lam, sd.mu)
            (grad,) = torch.autograd.grad(loss, [z])
            with torch.no_grad():
                z = prob.project(z - beta * (step_direction(grad) if step == "rms" else grad))
            z.requires_grad_(True)
            steps += 1
            x, f, fe = prob.forward(z)
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
                if on_samples is not None:
                    on_samples(images[-1], acts[-1])
            control.step(count, n, "sampling")
            prob.engine.hand_over()

    images_np = np.concatenate(images)
    recheck = _recheck(prob, images_np)
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
    return InverseSet(
        images=images_np[keep],
        codes=np.concatenate(codes)[keep].reshape(int(keep.sum()), -1)
        if prob.generator is not None else None,
        activations=recheck[keep], features=feats_np,
        units=tuple(prob.units), ranges=ranges_np, K=K, steps_seeds=sd.steps,
        steps_sampling=steps, diversity=mean_distance(feats_np),
        mode="generator" if prob.generator is not None else "pixel",
        diversity_space=diversity, complete=complete, report=report.strip(),
        seconds=time.perf_counter() - start_time, dropped_on_recheck=int((~keep).sum()))


def _recheck(prob: Problem, images: np.ndarray) -> np.ndarray:
    """The units' activations of the returned images, in one fresh pass (float64 out)."""
    engine, out = prob.engine, []
    with engine.borrow(), torch.no_grad():
        for s in range(0, len(images), engine.batch_size):
            x = torch.as_tensor(images[s:s + engine.batch_size], device=engine.device)
            out.append(prob.forward(x, from_images=True)[1].cpu().numpy())
    return np.concatenate(out).astype(np.float64)
