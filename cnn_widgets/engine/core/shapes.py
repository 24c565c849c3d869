"""Small shape helpers shared by the geometry of convs and pools."""
from __future__ import annotations


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    """``3`` -> (3, 3); ``(3, 1)`` -> (3, 1): a conv/pool size argument per spatial axis."""
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)
