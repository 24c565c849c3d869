"""Checks that engine work leaves the user's model exactly as it found it."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..engine.core.hooks import hook_count


def _digest(t: torch.Tensor) -> str:
    t = t.detach()
    data = t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() \
        if t.numel() else b""
    return hashlib.sha256(data).hexdigest()


def model_fingerprint(model: nn.Module) -> dict[str, object]:
    """Everything about ``model`` that engine work must not change.

    Per parameter: a hash of its bytes, dtype, shape, device, storage address, ``requires_grad``,
    whether ``.grad`` is None and, if not, a hash of the gradient. Per buffer: the same minus
    the grad fields (None buffers included). Per module: its ``training`` flag. Plus the total
    number of hooks.
    The result is a plain dict; compare two with :func:`assert_model_untouched`.
    """
    fp: dict[str, object] = {}
    for name, p in model.named_parameters():
        fp[f"param {name}"] = (_digest(p), str(p.dtype), tuple(p.shape), str(p.device),
                               p.data_ptr(), p.requires_grad, p.grad is None)
        if p.grad is not None:
            fp[f"grad {name}"] = _digest(p.grad)
    for name, b in model.named_buffers():
        fp[f"buffer {name}"] = None if b is None else (_digest(b), str(b.dtype), tuple(b.shape),
                                                      str(b.device), b.data_ptr())
    for name, m in model.named_modules():
        fp[f"training {name or '<root>'}"] = m.training
    fp["hooks"] = hook_count(model)
    return fp


def assert_model_untouched(model: nn.Module, before: dict[str, object]) -> None:
    """Raise AssertionError listing every difference between ``model`` now and ``before``
    (a :func:`model_fingerprint` taken earlier)."""
    after = model_fingerprint(model)
    problems = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            problems.append(f"{key}: disappeared")
        elif key not in before:
            problems.append(f"{key}: appeared")
        elif before[key] != after[key]:
            problems.append(f"{key}: {before[key]!r} -> {after[key]!r}")
    if problems:
        raise AssertionError("the model was changed:\n  " + "\n  ".join(problems))


def no_leftover_hooks(model: nn.Module, expected: int = 0) -> None:
    """Assert that ``model`` carries exactly ``expected`` hooks."""
    n = hook_count(model)
    assert n == expected, f"{n} hook(s) on the model, expected {expected}"


@contextmanager
def untouched(model: nn.Module) -> Iterator[dict[str, object]]:
    """``with untouched(model): ...`` asserts on exit (also after an exception) that the body
    left ``model`` unchanged. The exception, if any, propagates."""
    before = model_fingerprint(model)
    try:
        yield before
    finally:
        assert_model_untouched(model, before)


def as_user_model(model: nn.Module, frozen: Iterable[str] = ()) -> nn.Module:
    """Put ``model`` in the state a user's model is often in: train mode, with the parameters
    whose names start with one of ``frozen`` set to ``requires_grad=False`` (the rest True)."""
    model.train()
    frozen = tuple(frozen)
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen) if frozen else True)
    return model
