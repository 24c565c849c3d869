"""The activation index under faults: a full disk (a small tmpfs this test mounts) is a clear
StorageError with the temporaries gone, the earlier index intact and the build resumable; two
builds of one index at once serialise on a lock (the second reuses the first's result); a
damaged chunk is rescanned; an index directory someone else prepared is read only through its
own regular files; ``~`` is expanded; bad requests raise CnnWidgetsErrors saying what was
expected."""
import errno
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_index import build, file_digests, make_engine

from cnn_widgets import Engine
from cnn_widgets import objectives as O
from cnn_widgets.engine import CacheCorrupt, Cancelled, InvalidArgument, StorageError
from cnn_widgets.engine.core.control import Control
from cnn_widgets.testing import TINY_SHAPE, tiny_lenet

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted for this test (skipped where mounting is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                           capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)]).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the file system of ``disk`` up, then free about ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(bytes(1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def temporaries(root: Path) -> list[str]:
    """What a build leaves besides indexes and resumable chunks: temporary files and dirs."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".tmp" in p.name or p.name.endswith(".lock"))


def test_a_full_disk_during_the_scan_is_a_clear_error_and_the_build_resumes(small_disk,
                                                                            tmp_path):
    whole = build(make_engine(), tmp_path / "whole")
    earlier = build(make_engine(), small_disk, layers=["fc2"], patterns=False)
    reports = []

    def report(done, total, msg):                 # after the first batch, before any chunk
        reports.append(done)
        if len(reports) == 1:
            fill(small_disk)
    with pytest.raises(StorageError, match="disk is full.*build again"):
        build(make_engine(), small_disk, control=Control(report=report))
    assert temporaries(small_disk) == []
    make_engine().open_index(earlier.path).verify()           # the earlier index is intact
    (small_disk / "filler").unlink()
    resumed = build(make_engine(), small_disk)
    assert file_digests(resumed) == file_digests(whole)
    assert temporaries(small_disk) == []


MERGE_ON_A_FULL_DISK = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from test_index import build, file_digests, make_engine
from test_index_faults import fill, temporaries
from cnn_widgets.engine import CnnWidgetsError
from cnn_widgets.engine.core.control import Control
from pathlib import Path
disk, leave = Path(sys.argv[2]), int(sys.argv[3])
kw = dict(layers=["conv1", "relu1", "fc2"], class_sums=False, patterns=False, chunk_size=128,
          batch_size=64)

def report(done, total, msg):                  # every chunk saved: the merge comes next
    if done == total:
        fill(disk, leave)
try:
    build(make_engine(n=600), disk, control=Control(report=report), **kw)
    error = None
except CnnWidgetsError as exc:
    error = f"{type(exc).__name__}: {exc}"
left = temporaries(disk)
(disk / "filler").unlink()
steps = []
index = build(make_engine(n=600), disk, control=Control(report=lambda d, t, m: steps.append(d)),
              **kw)
print(json.dumps({"error": error, "left": left, "steps": steps,
                  "digests": file_digests(index)}))
"""


def test_a_full_disk_during_the_merge_is_a_clear_error_not_a_crash(small_disk, tmp_path):
    """In a process of its own: writes through a memory map of a sparse file meet a full
    tmpfs as SIGBUS, which kills the process (the Jupyter kernel)."""
    kw = dict(layers=["conv1", "relu1", "fc2"], class_sums=False, patterns=False,
              chunk_size=128, batch_size=64)
    whole = build(make_engine(n=600), tmp_path / "whole", **kw)
    leave = sum(p.stat().st_size for p in whole.path.iterdir()) // 2   # half the index fits
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", MERGE_ON_A_FULL_DISK, str(HERE), str(small_disk),
                          str(leave)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"exit status {out.returncode}: {out.stderr[-3000:]}"
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["error"] is not None and got["error"].startswith("StorageError: ")
    assert "disk is full" in got["error"] and got["left"] == []
    assert got["steps"] == []                       # every chunk was kept: no image scanned
    assert got["digests"] == file_digests(whole)


def test_two_builds_at_once_the_second_waits_and_reuses_the_first(tmp_path):
    a_started, b_reported = threading.Event(), threading.Event()
    steps, results = {"a": [], "b": []}, {}

    def report_a(done, total, msg):
        steps["a"].append(done)
        if not a_started.is_set():              # A is mid-scan: let B start, and wait for it
            a_started.set()
            b_reported.wait(60)

    def report_b(done, total, msg):
        steps["b"].append((done, msg))
        b_reported.set()

    def run(name, report, wait=None):
        if wait is not None:
            wait.wait(60)
        try:
            results[name] = build(make_engine(), tmp_path, control=Control(report=report))
        except BaseException as exc:            # noqa: BLE001 - reported below
            results[name] = exc

    threads = [threading.Thread(target=run, args=("a", report_a)),
               threading.Thread(target=run, args=("b", report_b, a_started))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a, b = results["a"], results["b"]
    assert not isinstance(a, BaseException) and not isinstance(b, BaseException), (a, b)
    assert a.path == b.path and steps["a"][-1] == 70
    assert steps["b"] and all(done == 0 and "waiting" in msg for done, msg in steps["b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [a.path.name]       # no leftovers
    assert file_digests(b) == file_digests(build(make_engine(), tmp_path / "alone"))


WAITING_BUILD = """
import sys
sys.path.insert(0, sys.argv[1])
from test_index import build, make_engine
from cnn_widgets.engine.core.control import Control

def report(done, total, msg):
    print(done, msg, flush=True)
index = build(make_engine(), sys.argv[2], control=Control(report=report))
print("path", index.path, flush=True)
"""


def test_a_build_in_another_process_waits_and_reuses_the_index(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    other, lines, first = None, [], threading.Event()

    def read(stream):
        for line in stream:
            lines.append(line.strip())
            first.set()

    def report(done, total, msg):
        nonlocal other
        if other is None:                        # mid-scan: start the other process's build
            other = subprocess.Popen([sys.executable, "-c", WAITING_BUILD, str(HERE),
                                      str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
            threading.Thread(target=read, args=(other.stdout,), daemon=True).start()
            first.wait(120)                     # it reports (waiting, or scanning without a lock)
    index = build(make_engine(), tmp_path, control=Control(report=report))
    assert other.wait(120) == 0
    assert lines[-1] == f"path {index.path}"
    assert lines[:-1] and all(line.startswith("0 index: waiting") for line in lines[:-1]), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == [index.path.name]


def damage(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_a_damaged_chunk_is_discarded_and_scanned_again(tmp_path):
    whole = build(make_engine(), tmp_path / "whole")
    seen = []
    with pytest.raises(Cancelled):
        build(make_engine(), tmp_path / "part",
              control=Control(should_stop=lambda: len(seen) >= 3,
                              report=lambda d, t, m: seen.append(d)))
    (partial,) = (tmp_path / "part").glob("*.partial")
    damage(partial / "chunk-000000.npz")
    steps = []
    index = build(make_engine(), tmp_path / "part",
                  control=Control(report=lambda d, t, m: steps.append(d)))
    assert steps[0] == 16                       # chunk 0 was scanned again from its first batch
    assert file_digests(index) == file_digests(whole)
    assert sorted(p.name for p in (tmp_path / "part").iterdir()) == [index.path.name]


def test_a_chunk_damaged_before_the_merge_is_refused_and_rescanned_on_retry(tmp_path):
    whole = build(make_engine(), tmp_path / "whole")
    root = tmp_path / "part"

    def report(done, total, msg):
        if done == total:
            damage(next(root.glob("*.partial")) / "chunk-000001.npz")
    for _ in range(2):                         # a retry that fails again leaks nothing either
        with pytest.raises(CacheCorrupt, match="chunk 1 .* damaged.*scans it again"):
            build(make_engine(), root, control=Control(report=report))
        assert temporaries(root) == []
    steps = []
    index = build(make_engine(), root, control=Control(report=lambda d, t, m: steps.append(d)))
    assert steps == [70 - 32 + 16, 70]          # only chunk 1 (rows 32..63) was scanned again
    assert file_digests(index) == file_digests(whole)


def test_what_a_killed_build_left_is_removed_by_the_next(tmp_path):
    key = build(make_engine(), tmp_path / "probe", layers=["fc2"]).path.name
    root = tmp_path / "root"
    (root / f"{key}.tmp-999999-0a0b0c0d").mkdir(parents=True)       # a killed merge's
    (root / f"{key}.partial").mkdir()
    (root / f"{key}.partial" / ".chunk-000000.npz.999999-0a0b0c0d.tmp").write_bytes(b"half")
    index = build(make_engine(), root, layers=["fc2"])
    assert sorted(p.name for p in root.iterdir()) == [index.path.name]


def returns_within(fn, seconds: float = 60):
    """``fn()``, failing the test if it has not returned after ``seconds`` (a hang)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:            # noqa: BLE001 - re-raised below
            out["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} still runs after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def index_dir(tmp_path):
    """(a built index's directory, its meta.json as a dict, a function writing meta.json)."""
    path = build(make_engine(), tmp_path / "root").path
    meta = json.loads((path / "meta.json").read_text())
    return path, meta, lambda m: (path / "meta.json").write_text(json.dumps(m))


def test_meta_naming_a_device_or_a_file_outside_is_refused(index_dir, tmp_path):
    path, meta, write = index_dir
    outside = tmp_path / "outside.npy"
    outside.write_bytes((path / "labels.npy").read_bytes())       # the same content and hash
    files = dict(meta["files"])
    want = files.pop("labels.npy")
    for name in ("/dev/zero", str(outside), "../outside.npy"):
        write(dict(meta, files={**files, name: want}))
        with pytest.raises(CacheCorrupt, match="names the file .*outside the directory"):
            returns_within(lambda: make_engine().open_index(path))


@pytest.mark.parametrize("kind", ["fifo", "symlink", "device"])
def test_an_array_file_that_is_not_a_regular_file_is_refused(index_dir, tmp_path, kind):
    path, meta, write = index_dir
    target = path / "labels.npy"
    copy = tmp_path / "copy.npy"
    copy.write_bytes(target.read_bytes())
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":                     # to a file outside with the right content
        target.symlink_to(copy)
    else:                                       # /dev/zero's own node: a read never ends
        try:
            os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("cannot make a device node here (not root)")
    with pytest.raises(CacheCorrupt, match="labels.npy is (not a regular file|a symbolic link)"):
        returns_within(lambda: make_engine().open_index(path))


@pytest.mark.parametrize("array,read", [
    ("L3__top_mean_values", lambda e: e.top_images(O.channel("conv2", 3), k=3)),
    ("L3__active_map", lambda e: e.activation_stats(e.dataset.images[:4], layers=["conv2"])),
    ("labels", lambda e: e.count_regions())])
def test_an_array_meta_json_does_not_list_is_a_clear_error(index_dir, array, read):
    """Found by the type checker: the reads took a missing array for granted (a raw
    AttributeError or TypeError); the arrays every index has are required."""
    path, meta, write = index_dir
    assert meta["layers"]["conv2"]["key"] == "L3"
    write(dict(meta, files={k: v for k, v in meta["files"].items() if k != f"{array}.npy"}))
    (path / f"{array}.npy").unlink()
    engine = make_engine()
    engine.open_index(path)
    with pytest.raises(CacheCorrupt, match=f"{array}.npy.*build the index again"):
        read(engine)


@pytest.mark.parametrize("bad", ["list", "no files", "files empty", "directory", "n missing"])
def test_a_malformed_meta_json_says_what_was_expected(index_dir, bad):
    path, meta, write = index_dir
    if bad == "directory":
        (path / "meta.json").unlink()
        (path / "meta.json").mkdir()
    else:
        write({"list": [meta], "no files": {k: v for k, v in meta.items() if k != "files"},
               "files empty": dict(meta, files={}),
               "n missing": {k: v for k, v in meta.items() if k != "n"}}[bad])
    with pytest.raises(CacheCorrupt, match="meta.json .*(expected a JSON object|regular file)"):
        make_engine().open_index(path)


def test_a_symlinked_partial_directory_is_not_written_through(tmp_path):
    engine = make_engine()
    key = build(engine, tmp_path / "probe").path.name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / f"{key}.partial").symlink_to(elsewhere)
    with pytest.raises(InvalidArgument, match="symbolic link"):
        build(engine, tmp_path / "root")
    assert list(elsewhere.iterdir()) == []


def test_the_index_has_the_umasks_permissions(tmp_path):
    """Temporaries are private names, not private modes: a cluster's index stays readable."""
    old = os.umask(0o022)
    try:
        index = build(make_engine(), tmp_path, layers=["fc2"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(index.path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in index.path.iterdir()} == {0o644}


def test_tilde_is_the_home_directory(tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CNN_WIDGETS_CACHE", "~/cache")
    engine = make_engine()
    index = engine.index(layers=["fc2"], progress=False)
    assert index.path.parent == home / "cache" / "index"
    other = engine.index(layers=["fc1"], path="~/i", progress=False)
    assert other.path.parent == home / "i"
    assert make_engine().open_index(f"~/i/{other.path.name}").path == other.path
    from cnn_widgets.zoo.cache import cache_dir
    assert cache_dir() == home / "cache"
    assert list(cwd.iterdir()) == []


def test_bad_paths_and_arguments_say_what_was_expected(tmp_path):
    engine = make_engine()
    f = tmp_path / "a-file"
    f.write_text("not an index")
    with pytest.raises(InvalidArgument, match="is a file; expected a directory"):
        build(engine, f)
    with pytest.raises(InvalidArgument, match="is a file; expected an activation index"):
        engine.open_index(f)
    with pytest.raises(InvalidArgument, match="num_workers must be an integer >= 0; got -1"):
        build(engine, tmp_path / "ix", num_workers=-1)


def image_folder(root: Path, per_class: int = 3) -> Path:
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_in_a_folder_is_named(tmp_path, workers):
    folder = image_folder(tmp_path / "imgs", per_class=20)
    # a/1.png: row 1, not among the rows the data fingerprint reads (a worker loads it)
    (folder / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    engine = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=4)
    with pytest.raises(InvalidArgument, match=r"a/1.png cannot be read.*expected an image file"):
        engine.index(str(folder), ["fc2"], path=tmp_path / "ix", num_workers=workers,
                     progress=False)


def test_an_image_changed_anywhere_in_a_folder_is_other_data(tmp_path):
    """The data fingerprint read 16 evenly spaced images of a folder: an image rewritten
    between them (a/1.png of 40) left the index answering for the old picture."""
    from PIL import Image
    folder = image_folder(tmp_path / "imgs", per_class=20)
    engine = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=4)
    index = engine.index(str(folder), ["fc2"], path=tmp_path / "ix", progress=False)
    other = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu")
    assert other.open_index(index.path, data=str(folder)).path == index.path   # unchanged: fine
    Image.fromarray(np.full((12, 10), 255, np.uint8)).save(folder / "a" / "1.png")
    again = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu")
    with pytest.raises(InvalidArgument, match="other data"):
        again.open_index(index.path, data=str(folder))


@pytest.mark.parametrize("layout", ["empty", "empty class folder"])
def test_a_folder_without_images_says_what_was_expected(tmp_path, layout):
    folder = tmp_path / "imgs"
    (folder / "a" if layout == "empty class folder" else folder).mkdir(parents=True)
    engine = Engine(tiny_lenet(1), TINY_SHAPE, device="cpu", batch_size=4)
    with pytest.raises(InvalidArgument, match="holds no images.*expected one folder per class"):
        engine.index(str(folder), ["fc2"], path=tmp_path / "ix", progress=False)


@pytest.mark.parametrize("spec, message", [
    ("os:getcwd", "returned a str; expected module:function"),
    ("os:remove", "needs the arguments"),
    ("no_such_module_xyz:engine", "there is no module 'no_such_module_xyz'"),
    ("no_such_pkg_xyz.models:engine", "there is no module"),
    ("os:no_such_function", "has no function"),
    ("/no/such/file.py:engine", "there is no file"),
    ("nocolon", "expected module:function"),
])
def test_the_cli_refuses_a_bad_engine_with_a_message_and_status_1(tmp_path, capsys, spec,
                                                                  message):
    from cnn_widgets.index import main
    assert main(["--engine", spec, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: --engine" in err and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
