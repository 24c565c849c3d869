"""Errors raised by the engine. Each message says what was expected."""


class CnnWidgetsError(Exception):
    """Base class of every error this package raises on purpose."""


class InputShapeError(CnnWidgetsError, ValueError):
    """An input tensor does not have the shape, channels or values the model expects."""


class LayerNotFound(CnnWidgetsError, KeyError):
    """A layer name that is not in the engine's layer registry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class UnitOutOfRange(CnnWidgetsError, IndexError):
    """A unit index outside a layer's output shape."""


class ModelOutputError(CnnWidgetsError, ValueError):
    """The model's output is not a 2-D (batch, classes) tensor."""


class NotPiecewiseLinear(CnnWidgetsError, ValueError):
    """An algorithm that needs a ReLU/max-pool network got something else."""


class Cancelled(CnnWidgetsError):
    """A job was stopped or superseded before it finished."""


class InvalidArgument(CnnWidgetsError, ValueError):
    """An argument outside what the call accepts (a count below 1, an unknown method name,
    empty data, a label out of range); the message names the accepted values."""


class InvalidType(CnnWidgetsError, TypeError):
    """An argument of the wrong type (a bare string where a list of layers is expected)."""


class NoSuitableLayer(InvalidArgument):
    """The model has no layer of the kind a capability needs (e.g. a (C, H, W) output)."""


class NotAChain(InvalidArgument):
    """Receptive fields and reconstructions need leaf modules that run once each, in a chain."""


class InfeasibleRange(CnnWidgetsError):
    """The optimiser could not bring the units into their ranges within its step budget."""


class CacheCorrupt(CnnWidgetsError):
    """A cached file whose content hash or shapes do not match what was stored."""


class StorageError(CnnWidgetsError, OSError):
    """A file the package keeps could not be written or read: a full disk, no permission, a
    read-only file system, or a path it will not write through (a symbolic link)."""


class NonFiniteResult(CnnWidgetsError, ArithmeticError):
    """A computation gave NaN or inf (the model's output, a diverging ascent): nothing is
    reported as a result; the message says where and what to change."""


class MemoryBudgetExceeded(CnnWidgetsError, MemoryError):
    """Even the smallest piece of a computation (one unit at one image) needs more memory than
    the engine's ``memory_budget``; the message gives both sizes."""
