"""The widgets on a ResNet (the digits ResNet of the zoo: torchvision BasicBlocks, one ReLU
module called twice per block, a residual add, BatchNorm, a global average pool), asserted on
state against the engine's own results.

FOVExplorer needs receptive fields and reconstructions through the ResNet's graph."""
import numpy as np
import pytest

from cnn_widgets import EtalonGrid, FOVExplorer, PredictionTreeView, objectives
from cnn_widgets.engine.core.selection import is_spatial
from cnn_widgets.zoo import resnet_digits


@pytest.fixture(scope="session")
def trained():
    """Trained once (about 10 s) if the zoo's cache does not have it yet, then loaded."""
    return resnet_digits()


@pytest.fixture
def resnet(trained):
    """A fresh engine (its own worker) around the trained digits ResNet."""
    return resnet_digits()


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def no_error(widget):
    assert widget.error.value == "", widget.error.value


def assert_exact(result, atol=1e-4):
    """⟨W, x⟩ + b is the network's value (the etalon identity), unit by unit."""
    linear = (result.W * result.x[:, None]).reshape(*result.b.shape, -1).sum(-1)
    np.testing.assert_allclose(linear + result.b, result.out, atol=atol)


def test_etalon_grid_on_the_logits_of_a_resnet_is_exact(resnet):
    g = EtalonGrid(resnet)
    assert g.wait(60)
    no_error(g)
    res = g.grid_result
    assert res.layer == resnet.default_layer == "fc" and res.exact
    assert res.W.shape == (10, 10, 1, 28, 28)
    assert resnet.dataset.labels[g.indices].tolist() == list(range(10))
    np.testing.assert_allclose(res.out, resnet.predict(resnet.dataset.images[g.indices]),
                               atol=1e-4)
    assert_exact(res)


def test_etalon_grid_on_a_conv_unit_of_the_last_stage(resnet):
    layer = "layer4.0.conv2"
    g = EtalonGrid(resnet, layer=layer, units=[(5, 1, 2), (11, 3, 0)])
    assert g.wait(60)
    no_error(g)
    res = g.grid_result
    assert res.layer == layer and res.units == ((5, 1, 2), (11, 3, 0)) and res.exact
    assert res.W.shape == (10, 2, 1, 28, 28)
    act = resnet.activations(resnet.dataset.images[g.indices], [layer])[layer]
    np.testing.assert_allclose(res.out, act[:, [5, 11], [1, 3], [2, 0]], atol=1e-4)
    assert_exact(res)
    # the unit sees only part of the image: a 49 px field (3x3 convs, strides 1, 2, 2, 2)
    # centred on input column 0 of the unit at x = 0: columns 0..24
    assert (res.W[:, 1, 0, :, 25:] == 0).all() and (res.W[:, 1, 0, :, :25] != 0).any()
    g.layer = "layer3.0.conv1"                        # a layer change picks that layer's units
    assert g.wait(60)
    no_error(g)
    assert g.grid_result.layer == "layer3.0.conv1"
    assert all(len(u) == 3 for u in g.grid_result.units)


def test_prediction_tree_view_on_a_resnet_uses_its_last_spatial_layer(resnet):
    v = PredictionTreeView(resnet)
    assert v.wait(120)
    no_error(v)
    layer = v.tree.layer
    assert layer == resnet.default_layer_for("features") != "avgpool"
    assert is_spatial(resnet.layer(layer).output_shape)
    labels = resnet.dataset.labels.numpy()
    np.testing.assert_array_equal(v.tree.images, np.flatnonzero(labels == 0))
    assert v.cat_tree.names == tuple(resnet.class_names)
    node = v.tree.n_nodes - 1                          # the root: every image
    x, y = v.node_pos[node]
    event(v.controls.tree_canvas, "mouse_down", x + 1, y - 1)
    assert v.selected == node and v.wait(60)
    f = v.tree.critical(node)
    want = resnet.top_images(objectives.channel(layer, f), k=6)
    np.testing.assert_array_equal(v.top.indices, want.indices)
    v.category = 7
    assert v.wait(120)
    no_error(v)
    np.testing.assert_array_equal(v.tree.images, np.flatnonzero(labels == 7))


def test_fov_explorer_on_a_resnet_reconstructs_a_clicked_unit(resnet):
    """Needs receptive fields and reconstructions through residual blocks."""
    w = FOVExplorer(resnet, image=3)
    assert w.wait(60)
    no_error(w)
    assert w.layer == resnet.default_layer_for("probing")
    layer = "layer3.0.conv1"
    w.layer = layer
    assert w.wait(60)
    no_error(w)
    ch, cw = w._grid().cell
    y, x = 2, 5
    event(w.controls.image_canvas, "mouse_down", (x + 0.5) * cw, (y + 0.5) * ch)
    assert w.wait(60)
    no_error(w)
    image = resnet.dataset.images[3]
    act = resnet.activations(image, [layer])[layer][0]
    c = int(np.argmax(act[:, y, x]))
    assert w.recon.layer == layer and w.recon.unit == (c, y, x)
    want = resnet.reconstruct(image, (layer, c, y, x), method="all")
    for m in want.images:
        np.testing.assert_array_equal(w.recon.images[m], want.images[m])
    f = resnet.receptive_field(layer, y, x)
    assert w.recon.field == f and f"rows {f.top}–{f.bottom - 1}" in w.controls.info.value
    outside = np.ones((28, 28), bool)
    outside[f.slices] = False
    for m in want.images:                               # nothing outside the field
        assert np.abs(np.asarray(want.images[m])[..., outside]).max() == 0
