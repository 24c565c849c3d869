"""The torch.distributed side of a build: which rank this is, and the exact merge.

Each rank scans the chunks ``j`` with ``j % world == rank`` and saves them; the merge then runs
in rounds: in round ``t`` every rank contributes its chunk ``t * world + rank`` with
``all_gather_object`` and rank 0 folds them in dataset order, so the result has the same bits
as a one-process build (top lists by merge, counts and sums by addition, moments by Chan's
formula, all in the same order). Backends: gloo on CPUs, NCCL on GPUs (objects then travel
through the current CUDA device, set from ``LOCAL_RANK``).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..core.errors import InvalidArgument


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(obj, world: int) -> list:
    """Every rank's ``obj``, in rank order (just ``[obj]`` for one process)."""
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def agree(plan: dict, world: int) -> None:
    """Check, before anything is scanned or merged, that every rank has rank 0's plan (the
    fingerprint of weights, architecture, data and preprocessing; data length, chunking,
    layers, settings); otherwise raise on every rank an error naming the ranks that differ
    and in what."""
    plans = gather(plan, world)
    differ = {r: _differences(plans[0], p) for r, p in enumerate(plans) if p != plans[0]}
    if differ:
        detail = "; ".join(f"rank {r}: {', '.join(d)}" for r, d in differ.items())
        raise InvalidArgument(f"ranks {sorted(differ)} of {world} differ from rank 0 ({detail}): "
                              "every rank must index the same model and data with the same "
                              "settings (engine factory, --data, --layers, --k, --chunk-size); "
                              "nothing was merged")


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The keys (dotted) whose values differ between two plans."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and key == "fingerprint":
            out += _differences(x, y, f"{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def init_from_env(backend: str | None = None) -> tuple[int, int, torch.device | None]:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...):
    NCCL when CUDA is available, else gloo. Returns (rank, world, this rank's CUDA device or
    None). Without those variables: (0, 1, None) and no group."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return 0, 1, None
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    device = None
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
