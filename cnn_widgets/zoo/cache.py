"""On-disk cache of trained weights, one file per training recipe."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

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


def save(name: str, recipe: dict, state_dict: Dict[str, torch.Tensor], meta: dict) -> Path:
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


def load(name: str, recipe: dict) -> Optional[Tuple[Dict[str, torch.Tensor], dict]]:
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
