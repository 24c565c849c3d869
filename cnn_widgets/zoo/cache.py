"""On-disk cache of trained weights, one file per training recipe."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ENV_VAR = "CNN_WIDGETS_CACHE"


def cache_dir() -> Path:
    """``$CNN_WIDGETS_CACHE`` if set, else ``~/.cache/cnn_widgets`` (not created here)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnn_widgets"


def recipe_key(recipe: dict) -> str:
    """12 hex digits of the SHA-256 of the recipe's canonical JSON; any change -> new key."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(name: str, recipe: dict) -> Path:
    return cache_dir() / f"{name}-{recipe_key(recipe)}.pt"


def save(name: str, recipe: dict, state_dict: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write weights + metadata (plain JSON-like values) atomically; returns the file."""
    path = cache_path(name, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"recipe": recipe, "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)   # readers see the old file or the whole new one, never half
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(name: str, recipe: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(state_dict on the CPU, metadata) for this recipe, or None if there is no usable file
    (missing, unreadable, or written for another recipe)."""
    path = cache_path(name, recipe)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:   # a truncated or foreign file is a cache miss: the caller retrains
        return None
    if not isinstance(payload, dict) or payload.get("recipe") != recipe:
        return None
    return payload["state_dict"], payload["meta"]


def trained(name: str, recipe: dict, build: Callable[[], torch.nn.Module],
            train: Callable[[torch.nn.Module], object], *,
            measure: Callable[[torch.nn.Module], dict] | None = None, retrain: bool = False,
            verbose: bool = False, announce: str | None = None, device=None,
            what: str = "the trained weights") -> tuple[torch.nn.Module, dict, bool, Path]:
    """The model of ``recipe``: its cached weights, or trained now and cached.

    build(): a fresh model; the cached weights load into it, else ``train(model)`` trains it
    in place (on ``device`` if given, then back on the CPU), timed, and may return a dict of
    extra metadata (anything else is ignored); ``measure(model)`` then adds more (e.g. the
    test accuracy). The file is written with :func:`save`; an OSError only warns (a
    read-only home still gets a working model).
    retrain: ignore (and overwrite) the cache; announce: printed before training if verbose.
    Returns (model in eval mode, metadata, whether it came from the cache, the cache file).
    """
    path = cache_path(name, recipe)
    hit = None if retrain else load(name, recipe)
    model = build()
    if hit is not None:
        state, meta = hit
        model.load_state_dict(state)
    else:
        if verbose and announce:
            print(announce, flush=True)
        if device is not None:
            model.to(device)
        start = time.perf_counter()
        extra = train(model)
        meta = {"trained_seconds": time.perf_counter() - start,
                **(extra if isinstance(extra, dict) else {}),
                **(measure(model) if measure is not None else {})}
        if device is not None:
            model.cpu()
        try:
            save(name, recipe, model.state_dict(), meta)
        except OSError as err:
            warnings.warn(f"could not cache {what} at {path}: {err}", stacklevel=2)
    model.eval()
    return model, meta, hit is not None, path


def model_card(title: str, meta: dict, recipe: dict, from_cache: bool, path: Path,
               **extra) -> dict:
    """``engine.model_card`` of a model from :func:`trained`: name, ``extra``, test accuracy,
    training time, recipe and cache file."""
    return {"name": title, **extra, "test_accuracy": meta["test_accuracy"],
            "trained_seconds": meta["trained_seconds"], "recipe": recipe,
            "from_cache": from_cache, "cache_file": str(path)}
