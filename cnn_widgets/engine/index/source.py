"""What an index is built from and keyed by: the data as a map-style dataset, the engine's
preprocessing for image folders, and the fingerprint of weights, data, preprocessing, layers."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.fx

from ..core.change import plain_attributes
from ..core.data import ImageSet, as_image_set, as_images
from ..core.errors import InvalidArgument, InvalidType
from ..core.stamp import tensor_bytes, weights_stamp

SAMPLE = 16        # images hashed for the data fingerprint, evenly spaced


class Rows(torch.utils.data.Dataset):
    """An :class:`ImageSet` as a map-style dataset of (image (C, H, W), label)."""

    def __init__(self, images: ImageSet):
        self.set = images

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, i):
        return self.set.images[i], self.set.labels[i]


def engine_transform(engine, resize: int | None = None):
    """torchvision preprocessing into an engine's input space (``engine``: an engine or its
    (C, H, W); normalisation stays the engine's): resize the shorter side to ``resize``
    (default H * 256 / 224, as torchvision's weights' transforms), centre-crop to (H, W),
    grey for one-channel models, to [0, 1]."""
    from torchvision import transforms as T
    c, h, w = getattr(engine, "input_shape", engine)
    steps = [T.Resize(resize or round(min(h, w) * 256 / 224)), T.CenterCrop((h, w))]
    steps += [T.Grayscale(1)] if c == 1 else []     # ImageFolder's loader gives RGB already
    return T.Compose(steps + [T.ToTensor()])


def as_source(engine, data):
    """(map-style dataset, preprocessing description) for ``data``: None (the engine's
    dataset), ``(images, labels)``, images, a folder path (an ``ImageFolder`` with
    :func:`engine_transform`) or any map-style dataset of (image, label)."""
    if data is None:
        if engine.dataset is None:
            raise InvalidArgument("this engine has no dataset: pass data=(images, labels), a "
                                  "folder of images or a map-style dataset")
        return Rows(engine.dataset), "engine dataset"
    if isinstance(data, (str, Path)):
        ds = image_folder(Path(data).expanduser(), engine_transform(engine))
        return ds, f"ImageFolder {ds.transform!r}"
    if torch.is_tensor(data) or isinstance(data, np.ndarray):
        images = as_images(data, engine.input_shape, stack=True).cpu()
        return Rows(ImageSet(images, -torch.ones(len(images), dtype=torch.int64))), "images"
    if isinstance(data, ImageSet) or (isinstance(data, (tuple, list)) and len(data) == 2
                                      and hasattr(data[0], "shape")):
        return Rows(as_image_set(data, engine.input_shape)), "images and labels"
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        if len(data) == 0:
            raise InvalidArgument("the data set is empty; it needs at least one image")
        transform = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(getattr(data, "transform", None)))
        return data, f"{type(data).__name__} {transform}"
    raise InvalidType(f"data must be None, (images, labels), images, a folder path or a "
                      f"map-style dataset of (image, label); got {type(data).__name__}")


def image_folder(root: Path, transform):
    """torchvision's ``ImageFolder`` of ``root``; an empty folder, or an image that does not
    open, is an :class:`InvalidArgument` naming it."""
    from torchvision.datasets import ImageFolder
    if not root.is_dir():
        raise InvalidArgument(f"data={str(root)!r} is not a directory of class folders")
    try:
        return ImageFolder(str(root), transform=transform, loader=_load_image)
    except FileNotFoundError as exc:         # no class folder, or no image in any
        raise InvalidArgument(f"data={str(root)!r} holds no images ({exc}); expected one "
                              f"folder per class, each holding image files") from None


def _load_image(path: str):
    """ImageFolder's own loader; a file it cannot read is named."""
    from torchvision.datasets.folder import default_loader
    try:
        return default_loader(path)
    except Exception as exc:                # PIL: not an image, truncated, too large...
        raise InvalidArgument(f"the image {path} cannot be read ({type(exc).__name__}: {exc}); "
                              f"expected an image file: fix or remove it") from None


def _h(*parts) -> hashlib.blake2b:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return h


def weights_hash(model: torch.nn.Module) -> str:
    """blake2b of every parameter and buffer (names, dtypes, shapes, bytes)."""
    h = _h()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def engine_weights_hash(engine) -> str:
    """:func:`weights_hash` of the engine's model, hashed again only when the weights' content
    changed (:func:`~.stamp.weights_stamp`, taken once per engine call: ``.data`` edits too)."""
    cached = engine.__dict__.get("_index_weights")
    if cached is not None and cached[0] == engine._calls:
        return cached[2]
    stamp = weights_stamp(engine.model)
    digest = cached[2] if cached is not None and cached[1] == stamp else weights_hash(engine.model)
    engine._index_weights = (engine._calls, stamp, digest)
    return digest


def architecture_hash(engine) -> str:
    """blake2b of what the model computes besides its weights: the traced graph (every op and
    module call) and every module's class name and plain attributes (hyper-parameters);
    without a graph, the layers. Cached per graph (a change makes a new one)."""
    graph, cached = engine.graph, engine.__dict__.get("_index_architecture")
    key = graph if graph is not None else engine.layers
    if cached is not None and cached[0] is key:
        return cached[1]
    text = [_graph_text(graph.fx) if graph is not None else f"untraced {engine.layers}"]
    # classes by name: the same class imported in a notebook or loaded by the CLI from a file
    text += [f"{name}:{type(m).__qualname__}({plain_attributes(m)})"
             for name, m in engine.model.named_modules()]
    digest = _h(re.sub(r" at 0x[0-9a-fA-F]+", "", "|".join(text))).hexdigest()
    engine._index_architecture = (key, digest)
    return digest


def _graph_text(fx) -> str:
    """Every node of a torch.fx graph: op, name, target (module path, qualified function or
    method name), arguments (nodes by name, constants by repr)."""
    def target(t):
        return t if isinstance(t, str) else \
            f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', repr(t))}"

    def args(a):
        return repr(torch.fx.node.map_arg(a, lambda n: f"%{n.name}"))
    return "\n".join(f"{n.op} {n.name} {target(n.target)} {args(n.args)} {args(n.kwargs)}"
                     for n in fx.nodes)


def data_hash(ds) -> str:
    """blake2b of the length, every label when the dataset lists them, and every image of a
    dataset held in memory (an engine's), else ``SAMPLE`` evenly spaced (image, label) items
    and, for a dataset of files (``ImageFolder``: ``samples``), every file's path under its
    root, size and modification time (one ``stat`` each: an image rewritten anywhere counts)."""
    n = len(ds)
    h = _h(n)
    if isinstance(ds, Rows):                 # in memory: all of it, a change anywhere counts
        for t in (ds.set.images, ds.set.labels):
            # (type: ignore: an ndarray is a buffer; numpy's stubs say so from Python 3.12 on only)
            h.update(tensor_bytes(t.cpu()).numpy())  # type: ignore[arg-type]
        return h.hexdigest()
    labels = getattr(ds, "targets", None)
    if labels is not None:                   # every label when they are at hand
        h.update(np.asarray(labels, dtype=np.int64).tobytes())
    _hash_files(h, ds)
    for i in np.unique(np.linspace(0, n - 1, min(n, SAMPLE)).astype(np.int64)):
        img, label = ds[int(i)]
        img = torch.as_tensor(np.asarray(img)) if not torch.is_tensor(img) else img
        h.update(img.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
        h.update(str(int(label)).encode())
    return h.hexdigest()


def _hash_files(h, ds) -> None:
    """Add each file of a folder dataset (torchvision's ``samples``: (path, class) pairs) to
    ``h`` as its path relative to ``root``, size and mtime; nothing for other datasets."""
    samples = getattr(ds, "samples", None)
    if not isinstance(samples, list) or not samples or not isinstance(samples[0], tuple):
        return
    root = str(getattr(ds, "root", ""))
    for path, _ in samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, root) if root else path}|{st.st_size}|"
                 f"{st.st_mtime_ns}\n".encode())


def preprocessing(engine, description: str) -> str:
    return json.dumps({"input_shape": list(engine.input_shape),
                       "mean": engine.mean.flatten().tolist(), "std": engine.std.flatten().tolist(),
                       "eval_mode": engine.eval_mode, "transform": description})


def key_of(fingerprint: dict) -> str:
    """The directory name of an index: a hash of its fingerprint."""
    return _h(json.dumps(fingerprint, sort_keys=True)).hexdigest()[:20]
