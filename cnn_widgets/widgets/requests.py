"""Requests: what a widget's job answers (its key and the state it read), as a frozen value,
so a result is shown only while the widget's state is still the one asked about
(:meth:`~._base.JobWidget.answers`)."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    """What a job answers: its key and the values of the state it reads (the attributes
    :attr:`JobWidget.REQUESTS` names for that key), taken when it was asked."""
    key: str
    state: tuple


class _Same:
    """A request part without a value equality (an array, a result object): equal only to
    itself."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self):
        return id(self.value)


def frozen(value) -> Hashable:
    """``value`` as a request part: lists and tuples as tuples, anything unhashable (an array,
    a result holding arrays) by identity."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return _Same(value)
    return value
