"""Parse and format unit and index lists typed into text boxes (no numerics)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..engine import InvalidArgument

MAX_ITEMS = 100      # rows or units one text box may ask for (a grid of more is no help)
_TOP = re.compile(r"top\s*-?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class TopK:
    """Units chosen per row: each row's own ``k`` highest units (at the logits: its top-k
    predicted classes), written "top k"."""
    k: int

    def __str__(self) -> str:
        return f"top {self.k}"


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{text.strip()[:40]!r} is not a {what} (expected a whole "
                              "number)") from None


def _check_range(lo: int, hi: int, n: int | None, what: str) -> None:
    """lo..hi (inclusive) must lie in 0..n-1; checked before anything is expanded."""
    if hi < lo:
        raise InvalidArgument(f"{what}s {lo}-{hi}: a range must go up (a-b with a <= b)")
    if n is not None and (lo < 0 or hi >= n):
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        raise InvalidArgument(f"{what} {span} out of range: expected 0..{n - 1} ({n} in all)")


def parse_indices(text: str, n: int | None = None, what: str = "row",
                  limit: int = MAX_ITEMS) -> list[int]:
    """"0, 3, 10-12" -> [0, 3, 10, 11, 12]; each index in 0..n-1 when ``n`` is given, at most
    ``limit`` of them; both checked before a range is expanded."""
    spans: list[tuple[int, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
        lo_i = _int(lo, what)
        hi_i = _int(hi, what) if sep else lo_i
        _check_range(lo_i, hi_i, n, what)
        spans.append((lo_i, hi_i))
    count = sum(hi - lo + 1 for lo, hi in spans)
    if count > limit:
        raise InvalidArgument(f"{count} {what}s asked for; at most {limit} at once")
    return [i for lo, hi in spans for i in range(lo, hi + 1)]


def parse_units(text: str, n_units: int | None = None,
                limit: int = MAX_ITEMS) -> list | TopK | None:
    """"0-9" -> flat indices (each < ``n_units`` when given); "3:14:14, 5:7:7" -> (channel, y,
    x) tuples; "top 5" -> :class:`TopK`; "" -> None (all); at most ``limit`` units."""
    text = text.strip()
    if text in ("", "all"):
        return None
    if (top := _TOP.fullmatch(text)) is not None:
        return TopK(_int(top.group(1), "count of units"))
    units: list = []
    for part in (p.strip() for p in text.split(",")):
        if ":" in part:
            units.append(tuple(_int(v, "unit coordinate") for v in part.split(":")))
        elif part:
            units.extend(parse_indices(part, n_units, "unit", limit))
        if len(units) > limit:
            raise InvalidArgument(f"more than {limit} units asked for; at most {limit} at once")
    return units


def format_units(units: Sequence[tuple[int, ...]] | TopK) -> str:
    """Inverse of :func:`parse_units` for resolved unit tuples (or a :class:`TopK`)."""
    if isinstance(units, TopK):
        return str(units)
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
