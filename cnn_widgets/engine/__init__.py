"""Pure PyTorch + NumPy analysis engine. Never imports a widget library."""
from .control import Control
from .errors import (Cancelled, CnnWidgetsError, InputShapeError, LayerNotFound,
                     ModelOutputError, NotPiecewiseLinear, UnitOutOfRange)
from .results import Etalons, LayerInfo, RegionCount
from .session import Engine

__all__ = ["Engine", "Control", "Etalons", "LayerInfo", "RegionCount", "CnnWidgetsError",
           "InputShapeError", "LayerNotFound", "ModelOutputError", "NotPiecewiseLinear",
           "UnitOutOfRange", "Cancelled"]
