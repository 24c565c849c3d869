"""Build an activation index from the command line, on one process or under torchrun.

    python -m cnn_widgets.index --engine cnn_widgets.zoo:lenet_digits --out /data/index
    torchrun --nproc-per-node 4 -m cnn_widgets.index --engine mypkg.models:engine \\
        --data /data/imagenet/val --layers layer3.5.relu:2,layer4.2.relu:2,fc --out /shared/index
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint node0.example:29500 --rdzv-id job42 -m cnn_widgets.index ...

``--engine`` names a function returning an :class:`~cnn_widgets.Engine` (``module:function``
or ``path/to/file.py:function``; it gets ``device=`` when it takes one). Each rank scans its
share of the chunks; rank 0 folds them and writes the index (put ``--out`` on a shared file
system, or copy rank 0's directory); ``engine.open_index(path)`` opens it anywhere.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path


def load_engine(spec: str, device=None):
    """Call the engine factory ``module:function`` (or ``file.py:function``)."""
    module_name, _, fn_name = spec.rpartition(":")
    if not module_name or not fn_name:
        raise SystemExit(f"--engine must be module:function or file.py:function; got {spec!r}")
    if module_name.endswith(".py"):
        loader = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    factory = getattr(module, fn_name)
    takes_device = "device" in inspect.signature(factory).parameters
    return factory(device=device) if takes_device and device is not None else factory()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cnn_widgets.index", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default="cnn_widgets.zoo:lenet_digits",
                   help="engine factory, module:function or file.py:function")
    p.add_argument("--data", default=None, help="a folder of class folders (default: the "
                   "engine's dataset)")
    p.add_argument("--layers", default=None, help="comma-separated layer names")
    p.add_argument("--out", default=None, help="index root (default ~/.cache/cnn_widgets/index)")
    p.add_argument("--k", type=int, default=64, help="top images kept per channel")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--chunk-size", type=int, default=None, help="images per resumable chunk")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--patterns", action="store_true", help="add activation-pattern digests "
                   "(count_regions)")
    p.add_argument("--no-class-sums", action="store_true", help="skip per-class sums")
    p.add_argument("--backend", default=None, help="gloo or nccl (default: nccl with CUDA)")
    return p


def main(argv=None) -> int:
    from .engine.index import distributed
    args = parser().parse_args(argv)
    rank, world, device = distributed.init_from_env(args.backend)
    try:
        engine = load_engine(args.engine, device)
        index = engine.index(args.data, args.layers.split(",") if args.layers else None,
                             path=args.out, k=args.k, batch_size=args.batch_size,
                             chunk_size=args.chunk_size, num_workers=args.workers,
                             patterns=args.patterns, class_sums=not args.no_class_sums,
                             progress=rank == 0 and sys.stderr.isatty())
        if rank == 0:
            print(f"index of {index.n} images, layers {', '.join(index.layers)}, "
                  f"{world} process(es): {index.path}")
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
