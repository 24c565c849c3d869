"""Pure PyTorch + NumPy analysis engine. Never imports a widget library.

``core/`` holds what every paper uses; one package per paper holds its algorithms
(``etalons/``, ``probing/``, ``visualization/``, ``clustering/``, ``inverse_set/``,
``sanity/``); the :class:`Engine` facade (``engine.py``) binds them.
"""
from .core.control import Control
from .core.errors import (
                          CacheCorrupt,
                          Cancelled,
                          CnnWidgetsError,
                          InfeasibleRange,
                          InputShapeError,
                          InvalidArgument,
                          InvalidType,
                          LayerNotFound,
                          MemoryBudgetExceeded,
                          ModelOutputError,
                          NonFiniteResult,
                          NoSuitableLayer,
                          NotAChain,
                          NotPiecewiseLinear,
                          StorageError,
                          UnitOutOfRange,
)
from .core.results import Etalons, LayerInfo, RegionCount
from .engine import Engine
from .inverse_set.settings import FULL_OPTIMISATION, InverseSetSettings

__all__ = ["Engine", "Control", "Etalons", "LayerInfo", "RegionCount", "InverseSetSettings",
           "FULL_OPTIMISATION", "CnnWidgetsError",
           "InputShapeError", "InvalidArgument", "InvalidType", "LayerNotFound",
           "ModelOutputError", "NoSuitableLayer", "NotAChain", "NotPiecewiseLinear",
           "UnitOutOfRange", "InfeasibleRange", "CacheCorrupt", "StorageError",
           "Cancelled", "NonFiniteResult", "MemoryBudgetExceeded"]
