"""The visualization paper's explanation of "random noise -> one class" (Sec. 2.5, Table 1),
checked with the etalons: on a noise image x, logits y = <W, x> + b ≈ b, so the winner should
be the class with the largest bias. With the etalons the bias is exact per image: the
effective bias b_p(x) of the affine map the network is at x (it folds in every earlier
layer's bias and the input normalisation), next to the last layer's own bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import memory
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.model import ModelHost
from ..core.noise import gaussian_noise
from ..core.types import Seed
from .affine_map import etalons


@dataclass(frozen=True)
class NoiseExplanation:
    """n noise images (:func:`~..core.noise.gaussian_noise` with ``seed``, Table 1's noise) and
    the model's P classes.

    logits, bias, linear: (n, P) float64: y, the effective bias b_p(x) and <W_p(x), x> of each
    image's exact affine map (y = linear + bias); last_bias: (P,) the logits layer's own bias
    (None when it has none); classes: P names.
    """
    logits: np.ndarray
    bias: np.ndarray
    linear: np.ndarray
    last_bias: np.ndarray | None
    classes: tuple[str, ...]
    seed: int

    @property
    def winners(self) -> np.ndarray:
        """(n,) the predicted class of each noise image."""
        return self.logits.argmax(1)

    @property
    def share(self) -> np.ndarray:
        """(P,) percent of the noise predicted as each class (Table 1's noise row)."""
        return 100.0 * np.bincount(self.winners, minlength=len(self.classes)) / len(self.logits)

    @property
    def bias_wins(self) -> np.ndarray:
        """(n,) bool: the class with the largest effective bias is the winner."""
        return self.bias.argmax(1) == self.winners

    @property
    def last_bias_wins(self) -> np.ndarray | None:
        """(n,) bool: the class with the largest last-layer bias is the winner."""
        return None if self.last_bias is None else self.winners == int(self.last_bias.argmax())

    def table(self) -> str:
        """Per class: share won, mean logit, mean effective bias, mean <W, x>, last-layer bias."""
        lines = [f"{'class':>10}{'won %':>8}{'logit':>9}{'b_p(x)':>9}{'<W,x>':>9}{'bias':>9}"]
        for p, name in enumerate(self.classes):
            last = "" if self.last_bias is None else f"{self.last_bias[p]:9.3f}"
            lines.append(f"{name:>10}{self.share[p]:8.1f}{self.logits[:, p].mean():9.3f}"
                         f"{self.bias[:, p].mean():9.3f}{self.linear[:, p].mean():9.3f}{last}")
        last_wins = self.last_bias_wins
        lines.append(f"largest effective bias = winner on {100 * self.bias_wins.mean():.1f}% "
                     "of the noise" + ("" if last_wins is None else
                                       f"; largest last-layer bias on "
                                       f"{100 * last_wins.mean():.1f}%"))
        return "\n".join(lines)


def last_layer_bias(engine) -> np.ndarray | None:
    """(P,) bias of the module that outputs the logits, or None."""
    module = dict(engine.model.named_modules()).get(engine.default_layer)
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach().cpu().double().numpy().reshape(-1)


def noise_explanation(engine: ModelHost, n: int = 200, seed: Seed = 0,
                      control: Control = NO_CONTROL) -> NoiseExplanation:
    """Etalons of every logit at ``n`` noise images, in chunks of the engine's batch size,
    fewer when their maps W would take more than a quarter of the host's budget."""
    n, seed = check.count("n", n), check.seed(seed)
    x = gaussian_noise(engine, n, seed)
    w = 4 * engine.n_classes * int(np.prod(engine.input_shape))       # W of one image
    step = max(1, min(engine.batch_size, memory.host_budget(engine) // (4 * w)))
    parts = []
    for s in range(0, n, step):
        e = etalons(engine, x[s:s + step])
        parts.append((e.out.astype(np.float64), e.b.astype(np.float64),
                      e.linear_part.astype(np.float64)))
        control.step(min(s + step, n), n, "noise etalons")
    logits, bias, linear = (np.concatenate(p) for p in zip(*parts))
    return NoiseExplanation(logits=logits, bias=bias, linear=linear,
                            last_bias=last_layer_bias(engine),
                            classes=tuple(engine.class_names), seed=seed)
