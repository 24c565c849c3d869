"""The index on disk: one directory per (weights, dataset, preprocessing, layers, settings)
fingerprint, holding ``meta.json`` and one ``.npy`` file per array, opened memory-mapped.

Writes are atomic (a temporary file or directory, then ``os.replace``); ``meta.json`` records
every file's size and blake2b content hash, checked on open: in full for files up to
``FULL_HASH_BYTES`` and on a fixed sample of blocks above (so a 50k-image index opens in
milliseconds); :meth:`ActivationIndex.verify` hashes everything.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..core.errors import CacheCorrupt, InvalidArgument, LayerNotFound

VERSION = 1
FULL_HASH_BYTES = 512 << 10
_BLOCK, _BLOCKS = 4096, 64


def default_root() -> Path:
    """``$CNN_WIDGETS_CACHE/index`` (default ``~/.cache/cnn_widgets/index``)."""
    return Path(os.environ.get("CNN_WIDGETS_CACHE", Path.home() / ".cache" / "cnn_widgets")) / "index"


def file_hash(path: Path, full: bool = False) -> str:
    """blake2b of the file: all of it, or (large files, ``full=False``) of its size and 64
    blocks at fixed offsets."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        if full or size <= FULL_HASH_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            for off in np.linspace(0, size - _BLOCK, _BLOCKS).astype(np.int64):
                f.seek(int(off))
                h.update(f.read(_BLOCK))
    return h.hexdigest()


def atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One finished chunk, atomically (the unit an interrupted build resumes from)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_chunk(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class Writer:
    """The final arrays of a build, written into ``<dir>.tmp-<pid>`` and moved into place by
    :meth:`commit`. Per-image arrays are preallocated memmaps filled chunk by chunk."""

    def __init__(self, final: Path):
        self.final, self.tmp = final, final.with_name(f"{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.maps: dict[str, np.memmap] = {}

    def per_image(self, key: str, shape: tuple, dtype) -> np.memmap:
        if key not in self.maps:
            self.maps[key] = np.lib.format.open_memmap(self._file(key), "w+", dtype, shape)
        return self.maps[key]

    def save(self, key: str, array: np.ndarray) -> None:
        np.save(self._file(key), np.ascontiguousarray(array))

    def commit(self, meta: dict) -> Path:
        self.maps.clear()        # unmapped: the page cache has the bytes (no msync: slow)
        files = {}
        for p in sorted(self.tmp.glob("*.npy")):
            size, full = p.stat().st_size, file_hash(p, True)
            files[p.name] = {"bytes": size, "blake2b": full,
                             "sampled": full if size <= FULL_HASH_BYTES else file_hash(p)}
        meta = dict(meta, version=VERSION, files=files)
        atomic_json(self.tmp / "meta.json", meta)
        if self.final.exists():                      # a concurrent build finished first
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            os.replace(self.tmp, self.final)
        return self.final

    def _file(self, key: str) -> Path:
        return self.tmp / (key.replace("/", "__") + ".npy")


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"{path} is not an activation index (no meta.json); build one "
                              f"with engine.index(...) or python -m cnn_widgets.index") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheCorrupt(f"activation index {path}: meta.json is unreadable ({exc}); delete "
                           f"the directory and build the index again") from None
    if meta.get("version") != VERSION:
        raise CacheCorrupt(f"activation index {path} has format version {meta.get('version')}; "
                           f"this package reads version {VERSION}: build it again")
    return meta


def check_files(path: Path, meta: dict, full: bool = False) -> None:
    """Raise :class:`CacheCorrupt` naming the first missing, resized or changed file."""
    for name, want in meta["files"].items():
        p = path / name
        if not p.exists():
            raise CacheCorrupt(f"activation index {path}: {name} is missing; delete the "
                               f"directory and build the index again")
        got = file_hash(p, full)
        if p.stat().st_size != want["bytes"] or got != want["blake2b" if full or want["bytes"]
                                                             <= FULL_HASH_BYTES else "sampled"]:
            raise CacheCorrupt(f"activation index {path}: {name} does not match its content "
                               f"hash (the file changed or was cut short after the build); "
                               f"delete the directory and build the index again")


class LayerIndex:
    """One layer of an index. ``mean``/``max``: (C, N) per-image channel values (memmaps);
    top lists (C, k); ``moments`` (3, C); ``active`` (C,); ``active_map`` (N, P);
    ``class_sums`` (classes, C * P) or None."""

    def __init__(self, index: ActivationIndex, name: str, entry: dict):
        self.index, self.name, self.shape = index, name, tuple(entry["shape"])
        self._key = entry["key"]

    def array(self, what: str) -> np.ndarray | None:
        return self.index.array(f"{self._key}/{what}")

    def values(self, channel: int, by: str = "mean") -> np.ndarray:
        """(N,) float32 value of ``channel`` on every image: its spatial mean or max."""
        return np.asarray(self.array(by)[channel])

    def top(self, channel: int, k: int, by: str = "mean") -> tuple[np.ndarray, np.ndarray] | None:
        """(indices, values) of the ``k`` best images of ``channel`` (None if k > stored k)."""
        v, i = self.array(f"top_{by}_values"), self.array(f"top_{by}_indices")
        if k > v.shape[1] and v.shape[1] < self.index.n:
            return None
        return np.array(i[channel, :k]), np.array(v[channel, :k])

    @property
    def mean(self) -> np.ndarray:
        """(C,) mean of every value of each channel over the dataset."""
        return self.array("moments")[1]

    @property
    def var(self) -> np.ndarray:
        """(C,) population variance of each channel's values."""
        m = self.array("moments")
        return m[2] / np.maximum(m[0], 1)

    @property
    def active_fraction(self) -> np.ndarray:
        """(C,) fraction of positive values per channel (the probing paper's activity)."""
        m = self.array("moments")
        return self.array("active") / np.maximum(m[0], 1)


class ActivationIndex:
    """An opened index: ``n`` images, ``layers`` name -> :class:`LayerIndex`, ``labels`` (N,),
    ``codes`` (N, 16) activation-pattern digests or None, ``fingerprint`` (its parts)."""

    def __init__(self, path, verify: bool = True, source=None):
        self.path = Path(path)
        self.meta = read_meta(self.path)
        if verify:
            check_files(self.path, self.meta)
        self.n = int(self.meta["n"])
        self.fingerprint: dict = self.meta["fingerprint"]
        self.source = source              # the map-style dataset it was built from, if known
        self._arrays: dict[str, np.ndarray] = {}
        self.layers = {n: LayerIndex(self, n, e) for n, e in self.meta["layers"].items()}

    def array(self, key: str) -> np.ndarray | None:
        name = key.replace("/", "__") + ".npy"
        if name not in self.meta["files"]:
            return None
        if key not in self._arrays:
            self._arrays[key] = np.load(self.path / name, mmap_mode="r")
        return self._arrays[key]

    def layer(self, name: str) -> LayerIndex:
        if name not in self.layers:
            raise LayerNotFound(f"layer {name!r} is not in the index {self.path}; indexed "
                                f"layers: {', '.join(self.layers)}")
        return self.layers[name]

    @property
    def labels(self) -> np.ndarray:
        return self.array("labels")

    @property
    def codes(self) -> np.ndarray | None:
        return self.array("codes")

    def verify(self) -> None:
        """Hash every file in full; :class:`CacheCorrupt` on the first mismatch."""
        check_files(self.path, self.meta, full=True)

    def __repr__(self):
        return f"ActivationIndex({str(self.path)!r}, n={self.n}, layers={list(self.layers)})"
