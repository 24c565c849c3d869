"""The weights shipped in the package: the offline defaults, as their own recipes train them.

``python -m cnn_widgets.zoo.ship`` retrains every model of :data:`SHIPPED` from an empty
cache (the package's shipped weights ignored) and writes its file and ``manifest.json`` into
``cnn_widgets/zoo/weights/``; ``--check`` retrains and compares with the shipped bits without
writing; ``--only NAME`` limits either to some models.

The recipes are bitwise deterministic for one kernel family: they seed every draw and train
on one CPU thread (``training.deterministic``), so ``torch.set_num_threads`` does not change
the bits. The math libraries pick their kernels by CPU model and instruction set, so another
CPU model may round differently even with the same torch capability (AVX512): the manifest
records the :func:`kernel_family` the files were made with. The guarantee: a rebuild gives the
shipped bytes where the kernel family matches, and elsewhere the same tensors to
:data:`REBUILD_RTOL` of each tensor's scale with the same test accuracy (:func:`compare`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from . import cache

#: name -> a call that builds the model through ``cache.trained`` and returns an object with
#: ``.model_card["cache_file"]`` (an Engine or the generator). A new default: one line here.
SHIPPED: dict[str, Callable[[], Any]] = {      # an Engine or a module, with its model_card
    "two-digits-38": lambda: _zoo().two_digits((3, 8)),
    "two-digits-18": lambda: _zoo().two_digits((1, 8)),
    "lenet-digits": lambda: _zoo().lenet_digits(device="cpu"),
    "vgg-digits": lambda: _zoo().vgg_digits(),
    "digits-vae": lambda: _zoo().digits_generator(),
    "resnet-digits": lambda: _zoo().resnet_digits(device="cpu"),
    "lenet-digits-seed1": lambda: _experiments().lenet_digits_seed(1, device="cpu"),
    "lenet-digits-shuffled": lambda: _shuffled().lenet_digits_shuffled(device="cpu"),
}


#: a rebuild on another kernel family: each tensor within this share of its largest magnitude
#: (AVX2 kernels forced on an AVX512 machine differ by 4e-5 on two-digits-18)
REBUILD_RTOL = 2e-3
_ISA = ("avx", "amx", "fma", "f16c", "vnni")      # feature flags the math libraries dispatch on
_KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
               "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")     # settings that override that choice


def kernel_family() -> dict:
    """What decides the float rounding of a training run on this machine: torch's version and
    CPU capability, the CPU's vendor, family and model, the instruction-set features that
    oneDNN and MKL pick kernels by, and the environment settings that override their pick."""
    cpu: dict[str, str | list[str]] = {"processor": platform.processor() or platform.machine()}
    try:
        fields = dict(line.split(":", 1) for line in
                      Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu = {"vendor": fields.get("vendor_id", ""), "family": fields.get("cpu family", ""),
               "model": fields.get("model", ""),
               "isa": sorted(f for f in fields.get("flags", "").split() if f.startswith(_ISA))}
    except OSError:                         # not Linux: the processor string stands in
        pass
    overrides = {k: os.environ[k] for k in _KERNEL_ENV if k in os.environ}
    return {"torch": torch.__version__.split("+")[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), **cpu,
            **({"overrides": overrides} if overrides else {})}


def compare(name: str, path: Path) -> dict:
    """A rebuilt file ``path`` of model ``name`` against the shipped one: ``same_bits``, the
    largest tensor difference as a share of that tensor's largest magnitude (``max_rel``), and
    both test accuracies."""
    shipped_entry = next(v | {"file": k} for k, v in cache.shipped_manifest().items()
                         if v["model"] == name)
    new = torch.load(path, map_location="cpu", weights_only=True)
    old = torch.load(cache.shipped_dir() / shipped_entry["file"], map_location="cpu",
                     weights_only=True)
    rel = 0.0
    for key, t in old["state_dict"].items():
        if t.is_floating_point() and t.numel():
            diff = (new["state_dict"][key] - t).abs().max().item()
            rel = max(rel, diff / max(t.abs().max().item(), 1e-12))
    return {"same_bits": entry(name, path)["weights_sha256"] == shipped_entry["weights_sha256"],
            "max_rel": rel, "accuracy": new["meta"].get("test_accuracy"),
            "shipped_accuracy": old["meta"].get("test_accuracy")}


def _experiments():
    from . import experiments
    return experiments


def _shuffled():
    from . import shuffled_labels
    return shuffled_labels


def _zoo():
    from .. import zoo
    return zoo


@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(name: str, folder: Path) -> Path:
    """Train model ``name`` of :data:`SHIPPED` with its recipe into an empty cache at
    ``folder`` (shipped weights ignored); returns the file it wrote."""
    with _env(**{cache.ENV_VAR: str(folder), cache.SHIPPED_ENV: "0"}):
        card = SHIPPED[name]().model_card
    if card["from_cache"]:
        raise RuntimeError(f"{name} was loaded, not trained: {card['cache_file']}")
    return Path(card["cache_file"])


def entry(name: str, path: Path) -> dict:
    """The manifest's record of one shipped file: model name, SHA-256 of the file's bytes and
    of its tensors alone (:func:`cache.weights_hash`), size."""
    data = path.read_bytes()
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {"model": name, "sha256": hashlib.sha256(data).hexdigest(),
            "weights_sha256": cache.weights_hash(state), "bytes": len(data)}


def write(names: list[str]) -> dict:
    """Retrain ``names`` and store their files and manifest entries in ``cache.shipped_dir()``
    (the entries of other models are kept; files no entry names are removed)."""
    out = cache.shipped_dir()
    out.mkdir(exist_ok=True)
    files = {k: v for k, v in cache.shipped_manifest().items() if v["model"] not in names}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = build(name, Path(tmp))
            shutil.copyfile(path, out / path.name)
            files[path.name] = entry(name, out / path.name)
            print(f"{name}: {path.name}, {files[path.name]['bytes'] / 1e3:.0f} kB", flush=True)
    manifest = {"kernel_family": kernel_family(), "files": dict(sorted(files.items()))}
    (out / cache.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for stale in set(p.name for p in out.glob("*.pt")) - files.keys():
        (out / stale).unlink()
    return manifest


def check(names: list[str]) -> list[str]:
    """Retrain ``names`` and return those whose tensors differ from the shipped ones."""
    shipped = {v["model"]: v for v in cache.shipped_manifest().values()}
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = build(name, Path(tmp))
            same = entry(name, path)["weights_sha256"] == shipped.get(name, {}).get("weights_sha256")
            print(f"{name}: {'same bits' if same else 'DIFFERENT from the shipped weights'}",
                  flush=True)
            differ += [] if same else [name]
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_widgets.zoo.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="retrain and compare, write nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(SHIPPED), default=list(SHIPPED))
    args = parser.parse_args(argv)
    if args.check:
        return 1 if check(args.only) else 0
    write(args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
