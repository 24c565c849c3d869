"""Capabilities that differentiate (maximize, Grad-CAM, fooling, etalons, the inverse set) work
whatever autograd mode the caller is in, ``torch.inference_mode()`` included."""
from __future__ import annotations

import functools
import inspect

import torch


def needs_grad(fn):
    """Decorator: run ``fn`` outside inference mode, so the tensors it makes can take part in
    autograd (inputs made under inference mode are copied by ``prepare``); a generator
    function runs each of its steps so. Grad mode itself is left to ``fn``."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            with torch.inference_mode(False):
                gen = fn(*args, **kwargs)
            while True:
                with torch.inference_mode(False):
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                yield item
        return steps

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.inference_mode(False):
            return fn(*args, **kwargs)
    return run
