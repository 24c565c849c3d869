"""2-D maps of raw images and of their layer features (the clustering paper's Fig. 9).

The paper folds both with UMAP; that is used when ``umap-learn`` is installed, otherwise
scikit-learn's t-SNE (500 iterations; ``method="pca"`` for a quick linear map). The
silhouette scores (cosine, in the original spaces, by label) say in one number how much better
the features separate the classes than the pixels do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import validate as check
from ..core.control import NO_CONTROL, Control
from ..core.data import labelled_data
from ..core.errors import InvalidArgument
from ..core.model import ModelHost
from ..core.selection import default_layer_for
from ..core.types import Data, Seed
from .features import features

MIN_IMAGES = 3


@dataclass(frozen=True)
class Embedding:
    """pixels, features: (N, n_components) maps of the raw images and of ``layer``'s output;
    labels: (N,); silhouette_*: silhouette score by label (cosine, before the reduction);
    method: "umap", "tsne" or "pca"."""
    pixels: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    layer: str
    method: str
    silhouette_pixels: float
    silhouette_features: float


def _reducer(method: str, n_components: int, seed: int, n: int = 100):
    if method in ("auto", "umap"):
        try:
            import umap
            return "umap", umap.UMAP(n_components=n_components, random_state=seed, metric="cosine")
        except ImportError:
            if method == "umap":
                raise ImportError("method='umap' needs umap-learn (pip install umap-learn)") from None
    if method == "pca":
        from sklearn.decomposition import PCA
        return "pca", PCA(n_components=n_components, random_state=seed)
    if method not in ("auto", "tsne"):
        raise InvalidArgument(f"method must be 'auto', 'umap', 'tsne' or 'pca'; got {method!r}")
    if n_components > 3:
        raise InvalidArgument(f"t-SNE (Barnes-Hut) makes at most 3 components; got n_components="
                              f"{n_components} (use method='pca', or install umap-learn)")
    from sklearn.manifold import TSNE
    return "tsne", TSNE(n_components=n_components, random_state=seed, metric="cosine",
                        init="pca", max_iter=500, perplexity=float(min(30.0, max(2.0, (n - 1) / 3))))


def embedding(engine: ModelHost, layer: str | None = None, data: Data = None,
              max_images: int | None = None, n_components: int = 2, method: str = "auto",
              seed: Seed = 0,
              control: Control = NO_CONTROL) -> Embedding:
    """Embed the first ``max_images`` images of ``data`` (default: the engine's dataset) twice:
    their raw pixels and their ``layer`` features (default: the last (C, H, W) layer)."""
    from sklearn.metrics import silhouette_score

    layer = default_layer_for(engine, "features", layer)
    max_images = check.optional_count("max_images", max_images, MIN_IMAGES)
    n_components, seed = check.count("n_components", n_components), check.seed(seed)
    data = labelled_data(engine, data)
    n = len(data) if max_images is None else min(int(max_images), len(data))
    if n < MIN_IMAGES:
        raise InvalidArgument(f"an embedding needs at least {MIN_IMAGES} images (t-SNE's "
                              f"perplexity must lie between 2 and the number of images); the "
                              f"data has {n}")
    if n_components >= n:
        raise InvalidArgument(f"n_components must be below the number of images ({n}); got "
                              f"{n_components}")
    _reducer(method, n_components, seed, n)        # its errors before the features pass
    idx = np.arange(n)
    images, labels = data.images[:n], data.labels[:n].numpy()
    raw = images.reshape(n, -1).numpy().astype(np.float64)
    feat = features(engine, images, layer, control).reshape(n, -1).astype(np.float64)
    maps = []
    for i, x in enumerate((raw, feat)):
        name, reducer = _reducer(method, n_components, seed, n)      # a fresh one per space
        maps.append(reducer.fit_transform(x))
        control.step(i + 1, 2, f"{name} embedding")
    # the silhouette needs 2 <= classes <= images - 1: else it is undefined (NaN)
    sil = [float(silhouette_score(x, labels, metric="cosine")) if 1 < len(set(labels)) < n
           else np.nan for x in (raw, feat)]
    return Embedding(pixels=maps[0], features=maps[1], labels=labels, indices=idx, layer=layer,
                     method=name, silhouette_pixels=sil[0], silhouette_features=sil[1])
