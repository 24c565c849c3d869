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
from collections.abc import Mapping
from pathlib import Path


def load_engine(spec: str, device=None):
    """Call the engine factory ``module:function`` (or ``file.py:function``); a spec that does
    not name one, or a factory that returns no engine, is an InvalidArgument / InvalidType."""
    from .engine import Engine, InvalidArgument, InvalidType
    want = "expected module:function or file.py:function naming a function that returns an Engine"
    module_name, _, fn_name = spec.rpartition(":")
    if not module_name or not fn_name:
        raise InvalidArgument(f"--engine {spec!r}: {want}")
    if module_name.endswith(".py"):
        if not Path(module_name).is_file():
            raise InvalidArgument(f"--engine {spec!r}: there is no file {module_name}; {want}")
        loader = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        assert loader is not None and loader.loader is not None     # a .py file: source loader
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        try:
            found = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):       # a missing parent package, a relative name
            found = None
        if found is None:
            raise InvalidArgument(f"--engine {spec!r}: there is no module {module_name!r} (is "
                                  f"it on PYTHONPATH?); {want}")
        module = importlib.import_module(module_name)
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise InvalidType(f"--engine {spec!r}: {module_name} has no function {fn_name!r}; {want}")
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):             # a builtin without a signature
        params = {}
    kwargs = {"device": device} if "device" in params and device is not None else {}
    needed = [n for n, p in params.items() if p.default is p.empty and n not in kwargs
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if needed:
        raise InvalidType(f"--engine {spec!r} needs the arguments {needed}; {want}, called "
                          f"with none (or device=)")
    engine = factory(**kwargs)
    if not isinstance(engine, Engine):
        raise InvalidType(f"--engine {spec!r} returned a {type(engine).__name__}; {want}")
    return engine


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
    """Build the index; a CnnWidgetsError is printed (no traceback) with exit status 1."""
    from .engine import CnnWidgetsError
    from .engine.index import distributed
    p = parser()
    args = p.parse_args(argv)
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
    except CnnWidgetsError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
