"""Small shape helpers shared by the geometry of convs and pools."""
from __future__ import annotations


def pair(v: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    """``3`` -> (3, 3); ``(3, 1)`` -> (3, 1); ``[3]`` -> (3, 3), as torch reads a one-element
    size: a conv/pool size argument per spatial axis."""
    if isinstance(v, int):
        return int(v), int(v)
    a, b = (v[0], v[0]) if len(v) == 1 else v
    return int(a), int(b)
