"""Fig. 9 of the clustering paper: 2-D maps of raw images and of their layer features."""
import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from cnn_widgets.engine.clustering.embedding import embedding
from cnn_widgets.testing.data import labelled_engine
from cnn_widgets.testing.reference import reference_unit_values


@pytest.fixture
def setup():
    engine, model = labelled_engine(24, model_seed=2, image_seed=3)
    return model, engine.dataset.images, engine.dataset.labels, engine


def test_features_and_pixels_are_embedded_with_silhouettes(setup):
    model, x, y, engine = setup
    em = embedding(engine, method="pca", max_images=20)
    f = reference_unit_values(model, x[:20], "pool2")
    raw = x[:20].reshape(20, -1).numpy()
    assert em.layer == "pool2" and em.method == "pca" and em.features.shape == (20, 2)
    np.testing.assert_array_equal(em.labels, y[:20].numpy())
    # PCA keeps the two leading directions: the map's spread equals theirs
    for got, space in ((em.features, f), (em.pixels, raw)):
        sv = np.linalg.svd(space - space.mean(0), compute_uv=False)[:2]
        np.testing.assert_allclose(np.linalg.svd(got - got.mean(0), compute_uv=False), sv, rtol=1e-4)
    assert em.silhouette_features == pytest.approx(silhouette_score(f, y[:20], metric="cosine"), abs=1e-5)
    assert em.silhouette_pixels == pytest.approx(silhouette_score(raw, y[:20], metric="cosine"), abs=1e-5)


def test_default_method_without_umap_is_tsne(setup):
    _, _, _, engine = setup
    try:
        import umap  # noqa: F401
        pytest.skip("umap-learn is installed: the default is UMAP")
    except ImportError:
        pass
    em = embedding(engine)
    assert em.method == "tsne" and em.pixels.shape == (24, 2) and np.isfinite(em.pixels).all()
    with pytest.raises(ImportError, match="umap-learn"):
        embedding(engine, method="umap")
    with pytest.raises(ValueError, match="'auto', 'umap', 'tsne' or 'pca'"):
        embedding(engine, method="mds")
