"""The index's file handling under faults: it reads only regular files inside the index
directory (never through a symbolic link, never a device or a FIFO, which would block or never
end), writes through unique temporaries that go away on any error, turns a write error (a
full disk above all) into :class:`StorageError`, and serialises the builds of one index with
a file lock beside its directory."""
from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from ..core.control import Control
from ..core.errors import CacheCorrupt, InvalidArgument, StorageError

LOCK_POLL_S = 0.2


def open_regular(path: Path, index: Path):
    """``path`` opened for binary reading when it is a regular file (no link, no device, no
    FIFO: O_NONBLOCK keeps a FIFO from blocking the open); :class:`CacheCorrupt` else.
    FileNotFoundError passes through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CacheCorrupt(f"activation index {index}: {path.name} is a symbolic link; an "
                               f"index holds only regular files: build the index again") from None
        raise StorageError(f"activation index {index}: cannot read {path.name} "
                           f"({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CacheCorrupt(f"activation index {index}: {path.name} is not a regular file (a "
                           f"directory, device or FIFO); an index holds only regular files: "
                           f"build the index again")
    return os.fdopen(fd, "rb")


def write_error(exc: OSError, path: Path) -> StorageError:
    """A clear :class:`StorageError` for an OSError raised while writing ``path``."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"could not write the activation index at {path}: {exc.strerror}; "
                            f"expected a directory this process can write (pass path=)")
    free = ""
    try:
        s = os.statvfs(next(p for p in (path, *path.parents) if p.exists()))
        free = f" ({s.f_bavail * s.f_frsize / 2**20:.1f} MiB free)"
    except (OSError, StopIteration):
        pass
    return StorageError(f"could not write the activation index at {path}: the disk is "
                        f"full{free}. Free some space, or pass path= on another disk, and build "
                        f"again: finished chunks are kept and the build resumes from them")


@contextmanager
def writing(path: Path):
    """OSError inside -> :func:`write_error` for ``path``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise write_error(exc, path) from None


def atomic_write(path: Path, write) -> None:
    """``write(file)`` into a new temporary beside ``path`` (O_EXCL: never through a link;
    the umask's permissions, as any file), then ``os.replace``; the temporary is removed on
    any error (a full disk: :class:`StorageError`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    with writing(path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def reserve(f, start: int, size: int) -> None:
    """Give the file ``f`` real blocks up to ``size`` bytes (its bytes from ``start`` are still
    zeros), so that writes through a memory map cannot meet a full disk (SIGBUS): a full disk
    is an OSError here instead."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
        return
    except (AttributeError, OSError) as exc:      # no fallocate (macOS, some file systems)
        if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL,
                                                          errno.ENOSYS):
            raise
    f.seek(start)
    while f.tell() < size:
        f.write(bytes(min(1 << 20, size - f.tell())))
    f.flush()


def index_root(path) -> Path:
    """The directory that holds indexes, ``~`` expanded; :class:`InvalidArgument` if it is a
    file. Created when missing."""
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise InvalidArgument(f"path={str(path)!r} is a file; expected a directory to hold "
                              f"activation indexes")
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
    return root


def work_dir(work: Path) -> Path:
    """The build's ``.partial`` directory, created; a symbolic link there is refused (the
    build would write wherever it points)."""
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise InvalidArgument(f"{work} is a symbolic link or a file; expected the build's own "
                              f"directory there: delete it and build again")
    with writing(work):
        work.mkdir(exist_ok=True)
    return work


def sweep(root: Path, key: str, work: Path) -> None:
    """Remove what a killed build of ``key`` left: its final-directory temporaries and the
    half-written chunk files (only under the build lock, before anyone writes)."""
    for p in root.glob(f"{key}.tmp-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    if work.is_dir() and not work.is_symlink():
        for p in work.glob(".*.tmp"):
            p.unlink(missing_ok=True)


@contextmanager
def build_lock(path: Path, control: Control, total: int, held: bool = True):
    """Hold an exclusive ``flock`` on the file ``path`` while the body runs: a second build of
    one index, in another thread or process, waits here (reporting it; Stop works) and then
    finds the first one's index. The holder deletes the file before it lets go, so nothing
    is left; a waiter that then holds a deleted file's lock opens the file again.
    ``held=False``: no lock (ranks > 0 of a torchrun job follow rank 0)."""
    if not held:
        yield
        return
    while True:
        fd = _lock(path, control, total)
        try:
            now = os.stat(path, follow_symlinks=False)
            same = (now.st_dev, now.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)                               # releases the lock


def _lock(path: Path, control: Control, total: int) -> int:
    """A descriptor of ``path`` (created) holding its exclusive flock, once it is free."""
    with writing(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{path} is not a regular file; expected the index's lock "
                                  f"file there: delete it and build again")
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                control.step(0, total, "index: waiting for another build of this index")
                time.sleep(LOCK_POLL_S)
    except BaseException:
        os.close(fd)
        raise
