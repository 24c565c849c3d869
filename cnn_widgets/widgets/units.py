"""Parse and format unit and index lists typed into text boxes (no numerics)."""
from __future__ import annotations

from collections.abc import Sequence


def parse_indices(text: str) -> list[int]:
    """"0, 3, 10-12" -> [0, 3, 10, 11, 12]."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def parse_units(text: str) -> list:
    """"0-9" -> flat indices; "3:14:14, 5:7:7" -> (channel, y, x) tuples; "" -> None (all)."""
    text = text.strip()
    if text in ("", "all"):
        return None
    units: list = []
    for part in (p.strip() for p in text.split(",")):
        if ":" in part:
            units.append(tuple(int(v) for v in part.split(":")))
        elif part:
            units.extend(parse_indices(part))
    return units


def format_units(units: Sequence[tuple[int, ...]]) -> str:
    """Inverse of :func:`parse_units` for resolved unit tuples."""
    if all(len(u) == 1 for u in units):
        flat = [u[0] for u in units]
        if flat == list(range(flat[0], flat[0] + len(flat))) and len(flat) > 2:
            return f"{flat[0]}-{flat[-1]}"
        return ", ".join(str(i) for i in flat)
    return ", ".join(":".join(str(i) for i in u) for u in units)


def default_units(shape: tuple[int, ...], limit: int = 16) -> list[tuple[int, ...]]:
    """What a grid shows for a layer by default: every unit of a small 1-D layer, else the
    first ``limit`` units (1-D) or channels at the centre position (C, H, W)."""
    if len(shape) == 1:
        return [(i,) for i in range(min(shape[0], limit))]
    centre = tuple(s // 2 for s in shape[1:])
    return [(c, *centre) for c in range(min(shape[0], limit))]
