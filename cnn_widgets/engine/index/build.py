"""One streamed pass over a dataset that writes an activation index (see :mod:`.stats` for
what is kept). A torch DataLoader feeds batches; one forward pass per batch with one set of
hooks feeds every statistic of every layer and the activation-pattern digests. Work is cut
into chunks of images; each finished chunk is saved atomically, so Stop or Ctrl-C loses at
most the chunk in progress and the next call resumes. Under torch.distributed each rank scans
its share of the chunks and rank 0 folds them (:mod:`.distributed`). A file lock serialises
builds of one index (a second one waits, then opens the first one's result); a damaged chunk
is discarded and scanned again; a full disk is a :class:`StorageError` (:mod:`.files`)."""
from __future__ import annotations

import hashlib
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ..core import hooks
from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.errors import CacheCorrupt, InvalidArgument, NoSuitableLayer, NotAChain, NotPiecewiseLinear
from ..core.gates import Gate, gates_of
from ..core.model import ModelHost
from ..core.types import IndexData, Layers, PathLike
from ..etalons import regions
from . import distributed as D
from . import files
from .source import (
    architecture_hash,
    as_source,
    data_hash,
    engine_weights_hash,
    key_of,
    preprocessing,
)
from .stats import LayerStats, fold
from .store import ActivationIndex, Writer, atomic_json, default_root, load_chunk, save_chunk

CHUNK_BATCHES = 8          # default chunk: this many batches


def recordable(engine) -> bool:
    """Whether ``count_regions`` can record this model's activation patterns (its graph, gate
    calls, no unrecorded piecewise-linear layer): then the index stores their digests."""
    try:
        regions._check(engine)
        regions.gate_names(engine)
    except (NotAChain, NotPiecewiseLinear):
        return False
    return True


def _gate_bytes(gate: Gate, inputs, output) -> np.ndarray:
    """(n, bytes) of one gate call's state as ``count_regions`` reads it: packed on/off bits
    of a ReLU, int16/int32 max-pool choices (the same pattern, a shorter code)."""
    s = gate.state(inputs, output).flatten(1)
    if s.dtype == torch.bool:
        return np.packbits(s.cpu().numpy(), axis=1)
    plane = inputs[0][0, 0].numel()           # choices index one channel's input plane
    return s.to(torch.int16 if plane < 2 ** 15 else torch.int32).cpu().numpy().view(np.uint8)


def _all(fns):
    """One hook calling ``fns`` in turn on the layer's output, which it keeps."""
    def hook(module, inputs, output):
        for fn in fns:
            fn(module, inputs, output)
        return output
    return hook


class Chunk:
    """The statistics of one chunk of consecutive dataset rows, fed batch by batch."""

    def __init__(self, engine, plan: dict):
        self.engine, self.plan = engine, plan
        classes = engine.n_classes if plan["class_sums"] else 0
        self.layers = {n: LayerStats(s[0], int(np.prod(s[1:], dtype=np.int64)), plan["k"], classes)
                       for n, s in plan["layers"].items()}
        self.labels: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.gates = gates_of(engine, plan.get("gates", ()))
        order = engine.layer_names
        self.last = max([*plan["layers"], *(g.name for g in self.gates)], key=order.index)

    def add(self, x, labels: torch.Tensor, start: int) -> None:
        """One batch: images ``x`` (n, C, H, W) at dataset rows ``start ...``."""
        engine, seen, parts = self.engine, set(), {}
        labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)

        def stats_of(name):
            def hook(module, inputs, output):
                seen.add(name)
                self.layers[name].add(output, labels, start)
            return hook

        def gate_of(gate):
            def hook(module, inputs, output):
                parts[gate.name] = _gate_bytes(gate, inputs, output)
            return hook

        taps = {n: [stats_of(n)] for n in self.layers}
        for g in self.gates:
            taps.setdefault(g.name, []).append(gate_of(g))
        with engine.borrow(), torch.no_grad():
            x = engine.normalize(engine.prepare(x))
            hooks.run_capturing(engine.model, x, [], stop_after=self.last,
                                replace={n: _all(fs) for n, fs in taps.items()})
        missing = [n for n in self.layers if n not in seen]
        if missing:
            raise InvalidArgument(f"layers {missing} did not run in the forward pass")
        self.labels.append(labels.numpy())
        if self.gates:
            rows = np.concatenate([parts[g.name] for g in self.gates], 1)
            self.codes.append(np.frombuffer(b"".join(
                hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows),
                np.uint8).reshape(-1, 16))

    def result(self) -> dict[str, np.ndarray]:
        out = {"labels": np.concatenate(self.labels)}
        if self.codes:
            out["codes"] = np.concatenate(self.codes)
        for i, stats in enumerate(self.layers.values()):
            out.update(stats.result(f"L{i}/"))
        return out


def plan_for(engine, ds, description: str, layers, k: int, chunk: int, patterns: bool,
             class_sums: bool) -> dict:
    names = [engine.layer(n).name for n in layers]
    gates = regions.gate_names(engine) if patterns and recordable(engine) else []
    return {"n": len(ds), "k": k, "chunk": chunk, "patterns": bool(gates), "gates": gates,
            "class_sums": bool(class_sums),
            "layers": {n: list(engine.layer(n).output_shape) for n in names},
            "fingerprint": {"weights": engine_weights_hash(engine), "data": data_hash(ds),
                            "architecture": architecture_hash(engine), "n": len(ds),
                            "preprocessing": preprocessing(engine, description)}}


def build(engine: ModelHost, data: IndexData = None, layers: Layers = None, *,
          path: PathLike | None = None, k: int = 64,
          batch_size: int | None = None, chunk_size: int | None = None, num_workers: int = 0,
          patterns: bool = False, class_sums: bool = True, control: Control = NO_CONTROL,
          progress: bool | None = None) -> ActivationIndex | None:
    """Build (or resume, or just open) the index of ``layers`` over ``data`` under ``path``
    (default :func:`~.store.default_root`). Returns the opened index (None on ranks > 0)."""
    ds, description = as_source(engine, data)
    names = list(check.layer_list(engine, layers) or ()) or default_layers(engine)
    bs = check.optional_count("batch_size", batch_size) or engine.batch_size
    chunk = max(1, (check.optional_count("chunk_size", chunk_size) or CHUNK_BATCHES * bs) // bs) * bs
    num_workers = check.count("num_workers", num_workers, minimum=0)
    plan = plan_for(engine, ds, description, names, check.count("k", k), chunk, patterns,
                    class_sums)
    key = key_of(plan)
    rank, world = D.rank_and_world()
    D.agree(plan, world)              # every rank the same model, data and plan, or none builds
    root = files.index_root(path if path is not None else default_root())
    final, work = root / key, root / f"{key}.partial"
    with files.build_lock(root / f"{key}.lock", control, plan["n"], held=rank == 0):
        if rank == 0:
            files.sweep(root, key, work)                  # before any rank writes
        if D.gather(not final.exists(), world)[0]:        # rank 0 decides, under the lock
            files.work_dir(work)
            atomic_json(work / f"plan-{rank}.json", plan)
            _scan(engine, ds, plan, work, rank, world, bs, num_workers, control,
                  sys.stderr.isatty() if progress is None else progress)
            D.barrier(world)
            _merge(plan, work, final, rank, world)
            D.barrier(world)
            shutil.rmtree(work, ignore_errors=True)
    return ActivationIndex(final, source=ds) if rank == 0 or final.exists() else None


def _chunk_file(work: Path, j: int) -> Path:
    return work / f"chunk-{j:06d}.npz"


def _rows(plan, j: int) -> int:
    return min(plan["chunk"], plan["n"] - j * plan["chunk"])


def _load(plan, work: Path, j: int) -> dict[str, np.ndarray] | None:
    """Chunk ``j`` (None when missing); a damaged one (unreadable, or other than its rows) is
    deleted and raises :class:`CacheCorrupt`."""
    path = _chunk_file(work, j)
    try:
        part = load_chunk(path)
        if len(part.get("labels", ())) == _rows(plan, j):
            return part
        why = "it holds other rows"
    except FileNotFoundError:
        return None
    except Exception as exc:                  # BadZipFile, a truncated member, not a file...
        why = f"{type(exc).__name__}: {exc}"
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    raise CacheCorrupt(f"chunk {j} of the build in {work} was damaged ({why}); it was deleted "
                       f"and the next build scans it again")


def _saved(plan, work: Path, j: int) -> bool:
    """Whether chunk ``j`` is saved and readable (a damaged one is deleted, to be rescanned)."""
    try:
        return _load(plan, work, j) is not None
    except CacheCorrupt:
        return False


def _scan(engine, ds, plan, work, rank, world, bs, num_workers, control, progress) -> None:
    n, chunk = plan["n"], plan["chunk"]
    mine = range(rank, math.ceil(n / chunk), world)
    total = sum(min(chunk, n - j * chunk) for j in mine)
    pending = [j for j in mine if not _saved(plan, work, j)]
    done = total - sum(min(chunk, n - j * chunk) for j in pending)
    batches = [list(range(s, min(s + bs, (j + 1) * chunk, n)))
               for j in pending for s in range(j * chunk, min((j + 1) * chunk, n), bs)]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=num_workers,
                                         pin_memory=engine.device.type == "cuda")
    bar = _tqdm(total, done, progress)
    current: Chunk | None = None
    j = -1
    try:
        for rows, (x, y) in zip(batches, loader):
            if current is None or rows[0] // chunk != j:
                current, j = Chunk(engine, plan), rows[0] // chunk
            current.add(x, y, rows[0])
            done += len(rows)
            if rows[-1] + 1 == min((j + 1) * chunk, n):
                save_chunk(_chunk_file(work, j), current.result())
            if bar is not None:
                bar.update(len(rows))
            control.step(done, total, f"index: {done}/{total} images")
            engine.hand_over()
    finally:
        if bar is not None:
            bar.close()


def _tqdm(total, done, on):
    if not on:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, unit="img", desc="index", file=sys.stderr)


def _merge(plan, work, final, rank, world) -> None:
    """Fold the chunks in dataset order into the final arrays (rank 0 writes them; its
    temporary directory goes away on any error)."""
    writer = Writer(final) if rank == 0 else None
    try:
        _fold(plan, work, writer, rank, world)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def _fold(plan, work, writer, rank, world) -> None:
    n, chunk, m = plan["n"], plan["chunk"], math.ceil(plan["n"] / plan["chunk"])
    acc: dict[str, np.ndarray] | None = None
    for t in range(0, m, world):
        j = t + rank
        part = _load(plan, work, j) if j < m else None
        if j < m and part is None:
            raise CacheCorrupt(f"chunk {j} of the build in {work} vanished before the merge; "
                               f"build again to scan it")
        got = D.gather(part, world)
        if writer is None:
            continue
        for jj, part in enumerate(got, start=t):
            if part is None:
                continue
            s = jj * chunk
            for key, v in part.items():
                tail = key.rpartition("/")[2]
                if tail in ("mean", "max"):
                    writer.per_image(key, (v.shape[0], n), v.dtype)[:, s:s + v.shape[1]] = v
                elif tail in ("active_map", "labels", "codes"):
                    writer.per_image(key, (n, *v.shape[1:]), v.dtype)[s:s + len(v)] = v
            acc = fold(acc, part, plan["k"])
    if writer is None:
        return
    assert acc is not None                  # n >= 1: chunk 0 was folded
    for key, v in acc.items():
        writer.save(key, v)
    layers = {name: {"key": f"L{i}", "shape": s} for i, (name, s) in enumerate(plan["layers"].items())}
    writer.commit({"n": n, "fingerprint": plan["fingerprint"], "layers": layers,
                   "settings": {k: plan[k] for k in ("k", "chunk", "patterns", "gates",
                                                      "class_sums")}})


def default_layers(engine) -> list[str]:
    """Every ReLU and max-pool call (the probing paper's statistics; a ResNet block's output
    is its ReLU's second call, ``layer1.0.relu:1``), the trees' feature layer and the logits."""
    from ..core.selection import default_layer_for
    names = [i.name for i in engine.layers if i.kind in ("ReLU", "MaxPool2d")]
    try:
        names.append(default_layer_for(engine, "features"))
    except NoSuitableLayer:                   # no (C, H, W) layer: no trees to feed
        pass
    return list(dict.fromkeys(names + [engine.default_layer]))
