"""Capabilities that differentiate (maximize, Grad-CAM, fooling, etalons, the inverse set) work
whatever autograd mode the caller is in, ``torch.inference_mode()`` included."""
from __future__ import annotations

import functools
import inspect
from contextlib import nullcontext

import torch


def outside_inference_mode():
    """``torch.inference_mode(False)`` where inference mode is on, else nothing. (Its guard
    saves the whole autograd state; if an interrupt skipped its exit, the guard would put back
    a stale grad mode whenever it is collected, long after the borrow restored it.)"""
    return torch.inference_mode(False) if torch.is_inference_mode_enabled() else nullcontext()


def needs_grad(fn):
    """Decorator: run ``fn`` outside inference mode, so the tensors it makes can take part in
    autograd (inputs made under inference mode are copied by ``prepare``); a generator
    function runs each of its steps so. Grad mode itself is left to ``fn``."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            with outside_inference_mode():
                gen = fn(*args, **kwargs)
            while True:
                with outside_inference_mode():
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                yield item
        return steps

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with outside_inference_mode():
            return fn(*args, **kwargs)
    return run
