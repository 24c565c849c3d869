"""The class picker the widgets share: a combobox of the classes, searched by name as one types."""
from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as W

from .validate import InvalidTrait


def class_options(class_names) -> list[str]:
    """The picker's options, "index: name" (names may repeat; the index keeps them apart and
    is what a pick is read by)."""
    return [f"{i}: {name}" for i, name in enumerate(class_names)]


def class_picker(class_names, description: str, width_px: int, pick: int | None = None,
                 placeholder: str = "type to search by name") -> W.Combobox:
    """A combobox of :func:`class_options` that takes only an offered option; ``pick``: the
    index of the class shown at first (None: none)."""
    options = class_options(class_names)
    value = "" if pick is None else options[pick]
    return W.Combobox(options=options, value=value, ensure_option=True, description=description,
                      placeholder=placeholder, layout=W.Layout(width=f"{width_px}px"))


def picked(options: Sequence[str], text: str, noun: str = "class") -> int:
    """The index of the picker option ``text`` ("index: name"); any other text raises
    :class:`~.validate.InvalidTrait` ("no class 'text': pick one of the names offered")."""
    if text not in options:
        raise InvalidTrait(f"no {noun} {text!r}: pick one of the names offered")
    return list(options).index(text)
