"""The activation index: scan a dataset once (streamed, resumable, distributed) and answer
dataset-wide questions from memory-mapped arrays on disk."""
from .build import build, default_layers
from .source import engine_transform
from .store import ActivationIndex, LayerIndex

__all__ = ["build", "default_layers", "engine_transform", "ActivationIndex", "LayerIndex"]
