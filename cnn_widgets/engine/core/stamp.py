"""The content identity of a model's weights (and of any tensors), cheap enough to take at
every index read, and at every call of an engine that works on a copy of the user's model.

An edit through ``.data`` (``p.data.mul_(-1)``) bumps no version counter, so only the bytes
tell. CPU tensors: CRC-32 of each tensor's bytes (zlib, no copy; a changed tensor goes unseen
with probability about 2**-32). Tensors on a GPU stay there: their bytes, in chunks of
``CHUNK``, are summed with two fixed vectors of random 23-bit weights in exact integer
arithmetic (one byte changed always changes both sums; any other change keeps both with
probability about 2**-46), a few kernels and one transfer of the sums.
"""
from __future__ import annotations

import zlib

import torch

CHUNK = 1 << 22              # bytes per weighted sum on a GPU
_WEIGHTS: dict = {}          # device -> (2, CHUNK) int32 weights


def weights_stamp(model: torch.nn.Module) -> tuple:
    """Equal stamps: the same tensors (names, identities, dtypes, shapes, storage) with the
    same bytes as when the other stamp was taken."""
    tensors = model.state_dict(keep_vars=True)
    layout = tuple((n, id(t), t.dtype, t.shape, t.device, t.data_ptr()) for n, t in tensors.items())
    # (type: ignore below: an ndarray is a buffer; numpy's stubs say so from Python 3.12 on only)
    on_cpu = tuple(zlib.crc32(tensor_bytes(t).numpy()) for t in tensors.values()  # type: ignore[arg-type]
                   if t.device.type == "cpu")
    by_device: dict = {}
    for t in tensors.values():
        if t.device.type != "cpu":
            by_device.setdefault(t.device, []).append(t)
    return layout, on_cpu, tuple(device_sums(ts) for ts in by_device.values())


def tensors_stamp(*tensors: torch.Tensor) -> tuple:
    """Equal stamps: the same tensors with the same bytes (a dataset's images and labels)."""
    # (type: ignore: an ndarray is a buffer; numpy's stubs say so from Python 3.12 on only)
    return tuple((id(t), t.dtype, t.shape, zlib.crc32(tensor_bytes(t.cpu()).numpy()))  # type: ignore[arg-type]
                 for t in tensors)


def tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    """The bytes of ``t`` as a flat uint8 tensor (a view where ``t`` is contiguous)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def device_sums(tensors: list[torch.Tensor]) -> bytes:
    """Two weighted sums of every ``CHUNK`` bytes of ``tensors`` (one device), computed there."""
    device = tensors[0].device
    w = _WEIGHTS.get(device)
    if w is None:
        g = torch.Generator().manual_seed(20240917)
        w = _WEIGHTS[device] = torch.randint(1, 1 << 23, (2, CHUNK), generator=g,
                                             dtype=torch.int32).to(device)
    sums = [(chunk * w[:, :len(chunk)]).sum(1, dtype=torch.int64)     # < 2**31 per product
            for chunk in _chunks([tensor_bytes(t) for t in tensors])]
    return torch.stack(sums).cpu().numpy().tobytes() if sums else b""


def _chunks(views: list[torch.Tensor]):
    """The concatenated bytes of ``views`` in pieces of ``CHUNK`` (the last one shorter)."""
    pending, n = [], 0
    for v in views:
        while v.numel():
            take = v[:CHUNK - n]
            pending.append(take)
            n += take.numel()
            v = v[take.numel():]
            if n == CHUNK:
                yield torch.cat(pending)
                pending, n = [], 0
    if pending:
        yield torch.cat(pending)
