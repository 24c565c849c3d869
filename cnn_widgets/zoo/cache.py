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

from ..engine.core.errors import CacheCorrupt

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


def content_hash(recipe: dict, meta: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the recipe and metadata (canonical JSON) and of every tensor's name,
    dtype, shape and bytes, in key order: any flipped byte of a cache file changes it."""
    digest = hashlib.sha256(json.dumps([recipe, meta], sort_keys=True).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save(name: str, recipe: dict, state_dict: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write weights + metadata (plain JSON-like values) + their :func:`content_hash`
    atomically (a temp file in the same folder, then ``os.replace``); returns the file."""
    path = cache_path(name, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in state_dict.items()}
    payload = {"recipe": recipe, "meta": meta, "state_dict": state,
               "sha256": content_hash(recipe, meta, state)}
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
    """(state_dict on the CPU, metadata) for this recipe, or None if there is no file.

    Raises CacheCorrupt (naming the file and the fault) for a file that cannot be used:
    unreadable or truncated, written for another recipe, without a content hash, or whose
    content no longer matches its hash (flipped bytes).
    """
    path = cache_path(name, recipe)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CacheCorrupt(f"cache file {path} is unreadable: {err}") from err
    if not isinstance(payload, dict) or not {"recipe", "meta", "state_dict"} <= payload.keys():
        raise CacheCorrupt(f"cache file {path} does not hold recipe, meta and state_dict")
    if payload["recipe"] != recipe:
        raise CacheCorrupt(f"cache file {path} was written for another recipe: "
                           f"{payload['recipe']!r}, expected {recipe!r}")
    if "sha256" not in payload:
        raise CacheCorrupt(f"cache file {path} has no content hash (written by an older "
                           f"version)")
    state, meta = payload["state_dict"], payload["meta"]
    try:
        ok = payload["sha256"] == content_hash(recipe, meta, state)
    except Exception as err:   # a state dict of non-tensors, meta that is not JSON, ...
        raise CacheCorrupt(f"cache file {path} has malformed content: {err}") from err
    if not ok:
        raise CacheCorrupt(f"cache file {path} does not match its content hash "
                           f"(changed on disk since it was written)")
    return state, meta


def _cached(name: str, recipe: dict, build: Callable[[], torch.nn.Module]):
    """(model with the cached weights, metadata), or None (and a warning naming the file and
    the fault) when the file is missing, corrupt, or its state dict does not fit the model."""
    try:
        hit = load(name, recipe)
        if hit is None:
            return None
        model = build()
        try:
            model.load_state_dict(hit[0])   # missing/unexpected keys, wrong shapes
        except RuntimeError as err:
            raise CacheCorrupt(f"cache file {cache_path(name, recipe)} does not fit the "
                               f"model: {err}") from err
    except CacheCorrupt as err:
        warnings.warn(f"{err}; retraining", stacklevel=3)
        return None
    return model, hit[1]


def trained(name: str, recipe: dict, build: Callable[[], torch.nn.Module],
            train: Callable[[torch.nn.Module], object], *,
            measure: Callable[[torch.nn.Module], dict] | None = None, retrain: bool = False,
            verbose: bool = False, announce: str | None = None, device=None,
            what: str = "the trained weights") -> tuple[torch.nn.Module, dict, bool, Path]:
    """The model of ``recipe``: its cached weights, or trained now and cached.

    build(): a fresh model; the cached weights load into it, else ``train(model)`` trains it
    in place (on ``device`` if given, then back on the CPU), timed, and may return a dict of
    extra metadata (anything else is ignored); ``measure(model)`` then adds more (e.g. the
    test accuracy). A corrupt cache file, or one that does not fit the model, warns and is
    retrained over. The file is written with :func:`save`; an OSError only warns (a
    read-only home still gets a working model).
    retrain: ignore (and overwrite) the cache; announce: printed before training if verbose.
    Returns (model in eval mode without ``.grad``s, metadata, whether it came from the
    cache, the cache file).
    """
    path = cache_path(name, recipe)
    hit = None if retrain else _cached(name, recipe, build)
    if hit is not None:
        model, meta = hit
    else:
        model = build()   # fresh, even after a failed load: training starts from the seed
        if verbose and announce:
            print(announce, flush=True)
        if device is not None:
            model.to(device)
        start = time.perf_counter()
        extra = train(model)
        model.zero_grad(set_to_none=True)   # as a model loaded from the cache
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
