"""How much memory one engine call may use, and result arrays that live on disk when they are
larger than that.

The budget (``ModelHost.memory_budget``, bytes) is set by the user or, by default, half of the
memory available when the call starts: on CUDA the device's free memory; on the CPU the
smaller of the system's available memory (``/proc/meminfo``) and what the process's cgroup
still allows (a container such as a 2 GB Binder reports the host's memory in
``/proc/meminfo``). A call estimates its allocations, works in chunks that fit the budget and
refuses (:class:`MemoryBudgetExceeded`) only when one unit at one image does not fit.

A result larger than what the host may hold goes to :class:`ResultArray`'s disk file: an
unlinked temporary file (``tempfile``'s directory: set ``TMPDIR`` to a disk, not a RAM
file system), written with file writes, so its pages are the kernel's reclaimable page cache,
not the process's memory; the result is a copy-on-write ``numpy.memmap`` of it, exact and
complete, and the file disappears with the last reference to the array.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import MemoryBudgetExceeded

SHARE = 0.5              # of the memory available, the default budget
GB = 1024 ** 3


def available(device: torch.device) -> int:
    """Bytes that can still be allocated on ``device`` now."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return min(v for v in (_meminfo_available(), _cgroup_available()) if v is not None)


def default_budget(device: torch.device) -> int:
    return int(SHARE * available(device))


def host_budget(engine, budget: int | None = None) -> int:
    """Bytes a call may keep in the host's RAM: the engine's budget (``budget`` if already
    read) on the CPU, else half of the host memory available."""
    if engine.device.type == "cpu":
        return engine.memory_budget if budget is None else budget
    return default_budget(torch.device("cpu"))


def layer_bytes(engine, layer: str) -> tuple[list[int], int]:
    """(bytes of every layer output up to ``layer`` for one image, bytes of one input),
    float32."""
    names = engine.layer_names
    return ([4 * i.n_units for i in engine.layers[:names.index(layer) + 1]],
            4 * int(np.prod(engine.input_shape)))


def grad_costs(engine, layer: str) -> tuple[int, int]:
    """(bytes per image of a forward pass to ``layer`` kept for backward, bytes per image and
    output gradient of a backward pass to the input): estimates from the layer registry's
    output sizes, checked against measured peaks in benchmarks/memory.py."""
    sizes, m = layer_bytes(engine, layer)
    # kept for backward: the inputs convs and batch norms save, ReLU masks, pool indices
    forward = 3 * sum(sizes) // 2 + 3 * m
    # per output gradient (a vmapped backward batches them): the layers' gradients (residual
    # branches keep several alive; the depthwise route of a one-channel conv makes one plane
    # per output channel) and the input's
    backward = max(sum(sizes), 4 * max(sizes)) + m
    # the allocator's share: what a pass frees, the heap keeps for a while (see release())
    return forward * 5 // 4, backward * 5 // 4


def release() -> None:
    """Give the heap's free pages back to the system between two chunks of a call (glibc's
    ``malloc_trim``; elsewhere nothing). Tensors below glibc's mmap threshold (up to 32 MB)
    come from the heap, which otherwise keeps what each pass freed: measured, 1.15x the
    budget instead of 0.94x over many passes in a process that holds other arrays."""
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):         # musl and others: no malloc_trim
        return None


_TRIM = _malloc_trim()


def size(nbytes: float) -> str:
    return f"{nbytes / GB:.2f} GB" if nbytes >= GB / 10 else f"{nbytes / 2**20:.1f} MB"


def refuse(what: str, need: float, left: int, budget: int) -> MemoryBudgetExceeded:
    """The error for a call whose smallest piece needs ``need`` bytes where ``left`` of the
    engine's ``budget`` remain (the rest holds the inputs and results)."""
    held = "" if left >= budget else f", of which {size(budget - left)} hold its inputs and result"
    return MemoryBudgetExceeded(
        f"{what} needs about {size(need)} of working memory, more than the engine's memory "
        f"budget of {size(budget)} allows{held}; free memory, raise engine.memory_budget "
        f"(bytes) or use smaller images")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 4 * GB                   # no way to ask: a small machine's share


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """limit - (usage - inactive file cache) of this process's memory cgroup (v2, else v1),
    or None without a limit."""
    for limit, usage, stat in (("memory.max", "memory.current", "memory.stat"),
                               ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
                                "memory/memory.stat")):
        try:
            cap = (root / limit).read_text().strip()
            if cap == "max" or int(cap) >= 2 ** 60:
                return None
            used = int((root / usage).read_text())
            fields = dict(line.split() for line in (root / stat).read_text().splitlines())
            cache = int(fields.get("inactive_file", fields.get("total_inactive_file", 0)))
            return max(0, int(cap) - used + cache)
        except (OSError, ValueError):
            continue
    return None


class ResultArray:
    """A result of ``shape`` filled by rows of its first two axes ((image, unit) blocks):
    in RAM, or (``on_disk``) in an unlinked temporary file written with file writes."""

    def __init__(self, shape: tuple[int, ...], dtype, on_disk: bool):
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.row = int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize
        self.file = None
        if not on_disk:
            self.data = np.empty(self.shape, self.dtype)
            return
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        folder = tempfile.gettempdir()
        free = shutil.disk_usage(folder).free
        if free < nbytes:
            raise MemoryBudgetExceeded(
                f"the result ({size(nbytes)}) is larger than the memory budget allows, and "
                f"{folder} (the temporary folder, set by TMPDIR) has only {size(free)} free to "
                f"hold it; free disk space or memory, or ask for fewer units or images")
        self.file = tempfile.TemporaryFile(prefix="cnn_widgets-", dir=folder, buffering=0)
        self.file.truncate(nbytes)

    def write(self, i: int, p0: int, block: np.ndarray) -> None:
        """result[i, p0:p0 + len(block)] = block."""
        if self.file is None:
            self.data[i, p0:p0 + len(block)] = block
            return
        block = np.ascontiguousarray(block, dtype=self.dtype)
        self.file.seek((i * self.shape[1] + p0) * self.row)
        view = memoryview(block).cast("B")  # type: ignore[arg-type]  # a buffer (stubs: 3.12+)
        while view:                             # a raw write may take fewer bytes
            view = view[self.file.write(view):]

    def array(self) -> np.ndarray:
        if self.file is None:
            return self.data
        out = np.memmap(self.file, self.dtype, mode="c", shape=self.shape)
        self.file.close()           # the map holds its own handle; the unlinked file goes with it
        return out
