"""Text from data, a model or an exception is shown as text in every widget (defect 9).

The engine's class names and one layer name are ``<img src=x onerror=...>``; every widget is
built on it, its rendering and error paths are run (state level: jobs run, ``wait()``), and
every ``ipywidgets.HTML`` value in its widget tree must hold that text only escaped.
"""
from collections import OrderedDict

import ipywidgets as W
import pytest
import torch
from torch import nn

import cnn_widgets
from cnn_widgets import Engine
from cnn_widgets.engine import LayerNotFound
from cnn_widgets.testing.generators import TinyGenerator

CLASS_NAMES = [f"<img src=x onerror=alert({i})>" for i in range(10)]
LAYER = "<img src=x onerror=alert('layer')>"          # the last conv's module name
LAYER_ERROR = f"unknown layer '<b>bad</b>{LAYER}'"


@pytest.fixture
def engine():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        (LAYER, nn.Conv2d(4, 8, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(200, 32)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(32, 10))]))
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10
    return Engine(model, (1, 28, 28), dataset=(x, y), class_names=CLASS_NAMES, device="cpu")


def html_values(widget) -> list[str]:
    """The value of every ipywidgets.HTML in the tree under ``widget`` (children, recursively)."""
    out = [widget.value] if isinstance(widget, (W.HTML, W.HTMLMath)) else []
    for child in getattr(widget, "children", ()):
        out += html_values(child)
    return out


def fail_with_markup(monkeypatch, engine, method):
    def broken(*args, **kwargs):
        raise LayerNotFound(LAYER_ERROR)
    monkeypatch.setattr(engine, method, broken)


def event(canvas, kind, x, y):
    canvas._handle_frontend_event(None, {"event": kind, "x": x, "y": y}, [])


def attempt(action):
    """Run a UI action the way a click handler would: an exception it raises is lost."""
    try:
        action()
    except Exception:  # noqa: BLE001 - the widget must show it; the check below looks
        pass


# Each scenario builds one widget and yields (widget, the HTML that must now show the markup
# as text) after each step that shows data or an error.
def etalon_grid(engine, monkeypatch):
    g = cnn_widgets.EtalonGrid(engine)
    g.wait(60)
    g.count_regions()                                       # class names in the region table
    g.wait(60)
    h, w = g.cell
    event(g.controls.grid_canvas, "mouse_down", 2 * (w + 6) + 5, 18 + 1 * (h + 16) + 5)  # row 1, unit 1
    g.wait(60)
    yield g, g.controls.report
    yield g, g.controls.detail_text
    g.controls.units_box.value = CLASS_NAMES[1]             # a typo with markup
    yield g, g.error
    fail_with_markup(monkeypatch, engine, "etalons")        # a job's error
    g.indices = [1, 2]
    g.wait(60)
    yield g, g.error


def fov_explorer(engine, monkeypatch):
    f = cnn_widgets.FOVExplorer(engine, layer=LAYER)
    f.wait(60)
    yield f, f.controls.info                                # the layer name in the unit info
    fail_with_markup(monkeypatch, engine, "reconstruct")
    f.select(1, 1, channel=3)
    f.wait(60)
    yield f, f.error


def maximizer_panel(engine, monkeypatch):
    m = cnn_widgets.MaximizerPanel(engine)
    m.wait(60)
    m.set_objective((LAYER, 0))                             # the layer name in the objective
    yield m, m.controls.objective_label
    m.fool_rows = CLASS_NAMES[1]                            # fooling with images "<img ...>"
    attempt(m.run_fooling)
    m.wait(60)
    yield m, m.error
    fail_with_markup(monkeypatch, engine, "maximize")
    attempt(m.run)
    m.wait(60)
    yield m, m.error


def prediction_tree_view(engine, monkeypatch):
    v = cnn_widgets.PredictionTreeView(engine, layer=LAYER)
    v.wait(120)
    yield v, v.controls.path_text                           # the class label of the path
    fail_with_markup(monkeypatch, engine, "prediction_tree")
    v.category = 2
    v.wait(60)
    yield v, v.error


def inverse_set_gallery(engine, monkeypatch):
    s = cnn_widgets.InverseSetGallery(engine, TinyGenerator(), layer=LAYER, unit=2, K=5, n=20)
    s.wait(60)
    yield s, s.controls.constraints_html                    # the layer name in the constraints
    s.controls.unit_box.value = CLASS_NAMES[1]
    yield s, s.error
    fail_with_markup(monkeypatch, engine, "inverse_set")
    attempt(s.run)
    s.wait(60)
    yield s, s.error


@pytest.mark.parametrize("scenario", [
    etalon_grid, fov_explorer, maximizer_panel, prediction_tree_view, inverse_set_gallery,
])
def test_markup_from_data_is_shown_as_text(engine, monkeypatch, scenario):
    for step, (widget, shown) in enumerate(scenario(engine, monkeypatch)):
        raw = [t for t in html_values(widget) if "<img" in t or "<b>bad" in t]
        assert not raw, (step, raw)
        assert "&lt;img src=x onerror=alert(" in shown.value, (step, shown.value)
