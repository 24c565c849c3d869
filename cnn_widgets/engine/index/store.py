"""The index on disk: one directory per (weights, dataset, preprocessing, layers, settings)
fingerprint, holding ``meta.json`` and one ``.npy`` file per array, opened memory-mapped.

Writes are atomic (a temporary file or directory, then ``os.replace``); ``meta.json`` records
every file's size and blake2b content hash, checked on open: in full for files up to
``FULL_HASH_BYTES`` and on a fixed sample of blocks above (so a 50k-image index opens in
milliseconds); :meth:`ActivationIndex.verify` hashes everything. Only regular files inside the
directory named like the index's own are read (:mod:`.files`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np

from ..core.errors import CacheCorrupt, InvalidArgument, LayerNotFound
from .files import atomic_write, open_regular, reserve, writing

VERSION = 1
FULL_HASH_BYTES = 512 << 10
_BLOCK, _BLOCKS = 4096, 64
MAX_META_BYTES = 64 << 20
FILE_NAME = re.compile(r"[A-Za-z0-9_]+\.npy")          # an array file: no path, no dot file


def default_root() -> Path:
    """``$CNN_WIDGETS_CACHE/index`` (default ``~/.cache/cnn_widgets/index``)."""
    env = os.environ.get("CNN_WIDGETS_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "cnn_widgets") / "index"


def file_hash(file, full: bool = False) -> str:
    """blake2b of the file (a path, or a binary file it then closes): all of it, or (large
    files, ``full=False``) of its size and 64 blocks at fixed offsets."""
    f = file if hasattr(file, "read") else open(file, "rb")
    size = os.fstat(f.fileno()).st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with f:
        if full or size <= FULL_HASH_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            for off in np.linspace(0, size - _BLOCK, _BLOCKS).astype(np.int64):
                f.seek(int(off))
                h.update(f.read(_BLOCK))
    return h.hexdigest()


def atomic_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


def save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One finished chunk, atomically (the unit an interrupted build resumes from)."""
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # (no key is allow_pickle)


def load_chunk(path: Path) -> dict[str, np.ndarray]:
    """A saved chunk's arrays (a regular file only; any damage raises)."""
    with open_regular(path, path.parent) as f, np.load(f) as z:
        return {k: z[k] for k in z.files}


class Writer:
    """The final arrays of a build, written into a fresh ``<dir>.tmp-*`` directory and moved
    into place by :meth:`commit` (:meth:`discard` on failure). Per-image arrays are memmaps
    filled chunk by chunk, their blocks reserved first: a full disk is a
    :class:`StorageError`, never a SIGBUS."""

    def __init__(self, final: Path):
        self.final = final
        self.maps: dict[str, np.memmap] = {}
        self.tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        with writing(self.tmp):
            self.tmp.mkdir()

    def per_image(self, key: str, shape: tuple, dtype) -> np.memmap:
        if key not in self.maps:
            path = self._file(key)
            with writing(path):
                m = np.lib.format.open_memmap(path, "w+", dtype, shape)
                with open(path, "r+b") as f:
                    reserve(f, m.offset, m.offset + m.nbytes)
            self.maps[key] = m
        return self.maps[key]

    def save(self, key: str, array: np.ndarray) -> None:
        with writing(self._file(key)):
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
            self.discard()
        else:
            with writing(self.final):
                os.replace(self.tmp, self.final)
        return self.final

    def discard(self) -> None:
        """Remove the temporary directory (a failed or superseded build)."""
        self.maps.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _file(self, key: str) -> Path:
        return self.tmp / (key.replace("/", "__") + ".npy")


def read_meta(path: Path) -> dict:
    """``meta.json`` of the index directory ``path``, its layout checked
    (:class:`CacheCorrupt` saying what was expected)."""
    if not path.is_dir():
        raise InvalidArgument(f"{path} is {'a file' if path.exists() else 'missing'}; expected "
                              f"an activation index directory (holding meta.json)")
    try:
        with open_regular(path / "meta.json", path) as f:
            text = f.read(MAX_META_BYTES + 1)
        meta = json.loads(text)
    except FileNotFoundError:
        raise InvalidArgument(f"{path} is not an activation index (no meta.json); build one "
                              f"with engine.index(...) or python -m cnn_widgets.index") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheCorrupt(f"activation index {path}: meta.json is unreadable ({exc}); delete "
                           f"the directory and build the index again") from None
    if isinstance(meta, dict) and meta.get("version") != VERSION:
        raise CacheCorrupt(f"activation index {path} has format version {meta.get('version')}; "
                           f"this package reads version {VERSION}: build it again")
    problem = _layout_problem(meta)
    if problem:
        raise CacheCorrupt(f"activation index {path}: meta.json {problem}; expected a JSON "
                           f"object with n, fingerprint, layers and files (a non-empty object "
                           f"of .npy file names -> bytes, blake2b, sampled): delete the "
                           f"directory and build the index again")
    return meta


def _layout_problem(meta) -> str | None:
    """What is wrong with the layout of a parsed ``meta.json`` (None: nothing)."""
    if not isinstance(meta, dict):
        return f"holds a JSON {type(meta).__name__}"
    files, layers = meta.get("files"), meta.get("layers")
    if not isinstance(files, dict) or not files:
        return "names no files" if not files else "has files that is not an object"
    for name, want in files.items():
        if not FILE_NAME.fullmatch(name):
            return f"names the file {name!r} (outside the directory or not an array file)"
        if not (isinstance(want, dict) and isinstance(want.get("bytes"), int)
                and all(isinstance(want.get(h), str) for h in ("blake2b", "sampled"))):
            return f"has no size and hashes for {name}"
    n = meta.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return f"has n = {n!r} images"
    if not isinstance(meta.get("fingerprint"), dict) or not isinstance(meta.get("settings"), dict):
        return "has no fingerprint or settings object"
    if not isinstance(layers, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("key"), str) and isinstance(e.get("shape"), list)
            for e in layers.values()):
        return "has no layers object of {name: {key, shape}}"
    return None


def check_files(path: Path, meta: dict, full: bool = False) -> None:
    """Raise :class:`CacheCorrupt` naming the first missing, resized, changed or irregular
    file (a link, device or FIFO is refused before it is read)."""
    for name, want in meta["files"].items():
        try:
            f = open_regular(path / name, path)
        except FileNotFoundError:
            raise CacheCorrupt(f"activation index {path}: {name} is missing; delete the "
                               f"directory and build the index again") from None
        size = os.fstat(f.fileno()).st_size
        got = file_hash(f, full)
        if size != want["bytes"] or got != want["blake2b" if full or want["bytes"]
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

    def required(self, what: str) -> np.ndarray:
        return self.index.required(f"{self._key}/{what}")

    def values(self, channel: int, by: str = "mean") -> np.ndarray:
        """(N,) float32 value of ``channel`` on every image: its spatial mean or max."""
        return np.asarray(self.required(by)[channel])

    def top(self, channel: int, k: int, by: str = "mean") -> tuple[np.ndarray, np.ndarray] | None:
        """(indices, values) of the ``k`` best images of ``channel`` (None if k > stored k)."""
        v, i = self.required(f"top_{by}_values"), self.required(f"top_{by}_indices")
        if k > v.shape[1] and v.shape[1] < self.index.n:
            return None
        return np.array(i[channel, :k]), np.array(v[channel, :k])

    @property
    def mean(self) -> np.ndarray:
        """(C,) mean of every value of each channel over the dataset."""
        return self.required("moments")[1]

    @property
    def var(self) -> np.ndarray:
        """(C,) population variance of each channel's values."""
        m = self.required("moments")
        return m[2] / np.maximum(m[0], 1)

    @property
    def active_fraction(self) -> np.ndarray:
        """(C,) fraction of positive values per channel (the probing paper's activity)."""
        m = self.required("moments")
        return self.required("active") / np.maximum(m[0], 1)


class ActivationIndex:
    """An opened index: ``n`` images, ``layers`` name -> :class:`LayerIndex`, ``labels`` (N,),
    ``codes`` (N, 16) activation-pattern digests or None, ``fingerprint`` (its parts)."""

    def __init__(self, path, verify: bool = True, source=None):
        self.path = Path(path).expanduser()
        self.meta = read_meta(self.path)
        if verify:
            check_files(self.path, self.meta)
        self.n = int(self.meta["n"])
        self.fingerprint: dict = self.meta["fingerprint"]
        self.source = source              # the map-style dataset it was built from, if known
        self._arrays: dict[str, np.ndarray] = {}
        self.layers = {n: LayerIndex(self, n, e) for n, e in self.meta["layers"].items()}

    def array(self, key: str) -> np.ndarray | None:
        """The array ``key`` (memory-mapped), None if the index has none (class sums, codes)."""
        name = key.replace("/", "__") + ".npy"
        if name not in self.meta["files"]:
            return None
        if key not in self._arrays:
            open_regular(self.path / name, self.path).close()     # still a regular file
            self._arrays[key] = np.load(self.path / name, mmap_mode="r")
        return self._arrays[key]

    def layer(self, name: str) -> LayerIndex:
        if name not in self.layers:
            raise LayerNotFound(f"layer {name!r} is not in the index {self.path}; indexed "
                                f"layers: {', '.join(self.layers)}")
        return self.layers[name]

    def required(self, key: str) -> np.ndarray:
        """The array ``key`` that every index has; :class:`CacheCorrupt` if meta.json lists none."""
        a = self.array(key)
        if a is None:
            raise CacheCorrupt(f"activation index {self.path}: meta.json lists no "
                               f"{key.replace('/', '__')}.npy, which every index has; delete "
                               f"the directory and build the index again")
        return a

    @property
    def labels(self) -> np.ndarray:
        return self.required("labels")

    @property
    def codes(self) -> np.ndarray | None:
        return self.array("codes")

    def verify(self) -> None:
        """Hash every file in full; :class:`CacheCorrupt` on the first mismatch."""
        check_files(self.path, self.meta, full=True)

    def __repr__(self):
        return f"ActivationIndex({str(self.path)!r}, n={self.n}, layers={list(self.layers)})"
